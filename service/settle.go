package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// A held batch waits for an operator, who looks at LivePerson's list and settles it: with the
// request that holds it, or as never created.

// heldError is the last_error of an erasure holding records of a held batch.
const heldError = "LivePerson may or may not have created a deletion request for these records; held until an operator settles it"

// heldUnlistedError is the last_error of an erasure holding records of a batch held because
// LivePerson's list of deletion requests could not be read.
const heldUnlistedError = "LivePerson's list of deletion requests could not be read, so whether a deletion request was created for these records is unknown; held until an operator settles it"

// hold stops batch b for an operator: it will not be sent again by itself. Its candidates stay
// reserved for it, and it gives up its account's send turn, so the account's next batch goes
// on (see reconcile.go for why that is sound). Its erasures show the hold; it is logged once,
// with the candidate requests (LivePerson ids, not personal data). unlisted, when set, is why
// LivePerson's list could not be read: the batch has no candidates.
func (p *Pipeline) hold(ctx context.Context, b *batch, candidates []int64, unlisted error) error {
	now := p.s.now()
	held := false
	err := p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *batch) error {
		held = false
		if cur.State != batchIntent || cur.Sends != b.Sends {
			return errStale
		}
		sib, err := scanSiblings(tx, cur.Account, cur.ID)
		if err != nil {
			return err
		}
		if err := pipeline.ReleaseSendTurn(tx, cur, now); err != nil {
			return err
		}
		cur.State, cur.Candidates, cur.Rivals, cur.Failures = batchHeld, candidates, sib.inFlight, 0
		cur.Unlisted, cur.ListFailures = unlisted != nil, 0
		if err := tx.Put(schema.Ledger, schema.HeldKey(cur.Account, cur.ID), nil); err != nil {
			return err
		}
		err = p.s.forMembers(tx, cur, func(r *record, ts []Target) error {
			h := HeldBatch{BatchID: cur.ID, Kind: TargetKind(cur.Kind), Candidates: candidates, SendTime: cur.FirstSend}
			for _, t := range ts {
				if t.Batch == cur.ID {
					h.RecordCount++
				}
			}
			r.HeldBatches = append(slices.DeleteFunc(r.HeldBatches, func(x HeldBatch) bool { return x.BatchID == cur.ID }), h)
			r.BlockedOn, r.LastError = BlockedDeletionOutcomeUnknown, heldError
			if unlisted != nil {
				r.LastError = heldUnlistedError
			}
			return p.s.transition(tx, r, erasureChange{from: r.State, now: now})
		})
		if err != nil {
			return err
		}
		held = true
		return pipeline.PollNext(tx, cur, time.Time{})
	})
	if err == nil && held {
		attrs := []any{"account", b.Account, "batch", b.ID, "candidates", candidates}
		if unlisted != nil {
			attrs = append(attrs, "list_error", describe(unlisted))
		}
		p.s.log.Error("deletion batch held: LivePerson may or may not have created its request; settle it with SettleBatch", attrs...)
	}
	return err
}

// clearHeld removes batch id from r's held batches; once none is left, r is no longer blocked
// on the outcome.
func clearHeld(r *record, ts []Target, id uint64) {
	n := len(r.HeldBatches)
	r.HeldBatches = slices.DeleteFunc(r.HeldBatches, func(h HeldBatch) bool { return h.BatchID == id })
	if len(r.HeldBatches) == n || len(r.HeldBatches) > 0 {
		return
	}
	r.HeldBatches = nil
	if r.BlockedOn == BlockedDeletionOutcomeUnknown {
		r.BlockedOn = BlockedNone
		if hasStatus(ts, TargetDeferredOpen) {
			r.BlockedOn = BlockedOpenConversations
		}
	}
	if r.LastError == heldError || r.LastError == heldUnlistedError {
		r.LastError = ""
	}
}

// heldFirst is what r shows it is blocked on when something else would block it: a held batch
// outranks every other reason, since only an operator can move it on.
func heldFirst(r *record, other BlockedOn) BlockedOn {
	if len(r.HeldBatches) > 0 {
		return BlockedDeletionOutcomeUnknown
	}
	return other
}

// SettleResult is what SettleBatch did.
type SettleResult struct {
	BatchID uint64
	// LPRequestID is the LivePerson request the batch now follows; 0 when it is to be sent.
	LPRequestID int64
	// Erasures are the open erasures holding records of the batch, after the change.
	Erasures []Erasure
}

// SettleBatch settles a held batch of account with what an operator found at LivePerson:
// either the LivePerson request that holds it (lpRequestID), which the batch then follows as if
// its create had answered, or that no request was created (notCreated), and the batch is sent
// once more without reconciling first.
func (s *Service) SettleBatch(ctx context.Context, account string, batchID uint64, lpRequestID int64, notCreated bool) (SettleResult, error) {
	if lpRequestID < 0 || (lpRequestID > 0) == notCreated {
		return SettleResult{}, newError(KindInvalid, "INVALID_OUTCOME", "give either a LivePerson request id or not_created")
	}
	lp := s.livePerson()
	if lp == nil {
		return SettleResult{}, &Error{Kind: KindUnavailable, Reason: "NO_PIPELINE", Message: "the pipeline is not running"}
	}
	var ids []string
	var kind TargetKind
	err := s.db.View(func(tx store.Tx) error {
		b, err := heldBatch(tx, account, batchID)
		if err != nil {
			return err
		}
		if !notCreated {
			if err := notClaimed(tx, b, lpRequestID); err != nil {
				return err
			}
		}
		kind = TargetKind(b.Kind)
		ids, err = s.batchIDs(tx, b)
		return err
	})
	if err != nil {
		return SettleResult{}, s.storeError(err)
	}
	var d Deletion
	if !notCreated {
		if d, err = lp.GetDeletion(ctx, account, lpRequestID); err != nil || d.ID != lpRequestID {
			s.reportAuth(account, "settle", err)
			return SettleResult{}, lookupError(err, lpRequestID)
		}
		if echoed(d) && !sameIntent(d, kind, ids) {
			return SettleResult{}, &Error{Kind: KindFailedPrecondition, Reason: "LIVEPERSON_REQUEST_MISMATCH",
				Message:  fmt.Sprintf("LivePerson request %d holds other records than batch %d", lpRequestID, batchID),
				Metadata: map[string]string{"liveperson_request_id": strconv.FormatInt(lpRequestID, 10)}}
		}
	}
	now := s.now()
	who := Principal(ctx)
	audit := s.audited(ctx, "SettleBatch", AuditSettle, now)
	audit.Account, audit.BatchID = account, batchID
	audit.Detail = "liveperson_request " + strconv.FormatInt(lpRequestID, 10)
	if notCreated {
		audit.Detail = "not_created"
	}
	var members []string
	err = s.db.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
		b, err := heldBatch(tx, account, batchID)
		if err != nil {
			return err
		}
		members = b.Erasures
		b.SettledBy = who
		if err := tx.Delete(schema.Ledger, schema.HeldKey(account, batchID)); err != nil {
			return err
		}
		if notCreated {
			err = s.unhold(tx, b, now)
		} else if err = notClaimed(tx, b, lpRequestID); err == nil {
			err = s.follow(tx, b, d, "settled", now)
		}
		if err != nil {
			return err
		}
		if err := pipeline.PutBatch(tx, b); err != nil {
			return err
		}
		// One entry for the call, found under each erasure the batch holds records of.
		return appendAuditFor(tx, audit, members)
	})
	if transitionRefused(err) {
		// The operator sees the refusal; the incident makes the gap in the table visible.
		s.report(Incident{Kind: IncidentTransitionRefused, Account: account, Step: "settle", Reason: "state_transition_not_allowed"}, "batch", batchID)
	}
	if err != nil {
		return SettleResult{}, s.storeError(err)
	}
	s.log.WarnContext(ctx, "deletion batch settled by an operator", "account", account, "batch", batchID,
		"liveperson_request", lpRequestID, "not_created", notCreated, "by", who)
	s.wakePipeline()
	res := SettleResult{BatchID: batchID, LPRequestID: lpRequestID}
	err = s.db.View(func(tx store.Tx) error {
		for _, id := range members {
			r, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			if r != nil {
				res.Erasures = append(res.Erasures, r.Erasure)
			}
		}
		return nil
	})
	return res, s.storeError(err)
}

// unhold sends a held batch back to INTENT to be sent once, without reconciling: the operator
// found nothing at LivePerson. Its candidates are no longer reserved, and no longer its own
// candidates either, should its next answer be lost too. It takes the account's
// send turn like any other batch, waiting if another batch is in flight.
func (s *Service) unhold(tx store.Tx, b *batch, now time.Time) error {
	err := s.forMembers(tx, b, func(r *record, ts []Target) error {
		clearHeld(r, ts, b.ID)
		return s.transition(tx, r, erasureChange{from: r.State, now: now})
	})
	if err != nil {
		return err
	}
	b.Dismissed = append(b.Dismissed, b.Candidates...)
	b.State, b.Resend, b.Candidates, b.Rivals, b.Failures = batchIntent, true, nil, nil, 0
	b.Unlisted, b.ListFailures = false, 0
	return pipeline.PollNext(tx, b, now)
}

// heldBatch reads batch id of account, which must be held.
func heldBatch(tx store.Tx, account string, id uint64) (*batch, error) {
	b, err := pipeline.GetBatch(tx, id)
	if err != nil {
		return nil, err
	}
	if b == nil || b.Account != account {
		return nil, &Error{Kind: KindNotFound, Reason: "BATCH_NOT_FOUND",
			Message:  fmt.Sprintf("account %s has no batch %d", account, id),
			Metadata: map[string]string{"batch_id": strconv.FormatUint(id, 10)}}
	}
	if b.State != batchHeld {
		return nil, &Error{Kind: KindFailedPrecondition, Reason: "BATCH_NOT_HELD",
			Message:  fmt.Sprintf("batch %d is %s, not held: only a held batch can be settled", id, b.State),
			Metadata: map[string]string{"batch_id": strconv.FormatUint(id, 10), "state": b.State}}
	}
	return b, nil
}

// notClaimed fails if another batch of b's account already follows LivePerson request lpID.
func notClaimed(tx store.Tx, b *batch, lpID int64) error {
	sib, err := scanSiblings(tx, b.Account, b.ID)
	if err != nil || !sib.claimed[lpID] {
		return err
	}
	return &Error{Kind: KindFailedPrecondition, Reason: "LIVEPERSON_REQUEST_CLAIMED",
		Message:  fmt.Sprintf("LivePerson request %d already belongs to another batch", lpID),
		Metadata: map[string]string{"liveperson_request_id": strconv.FormatInt(lpID, 10)}}
}

// lookupError is the error for a LivePerson request that could not be read.
func lookupError(err error, lpID int64) error {
	meta := map[string]string{"liveperson_request_id": strconv.FormatInt(lpID, 10)}
	if err == nil || errors.Is(err, ErrRejected) {
		return &Error{Kind: KindFailedPrecondition, Reason: "LIVEPERSON_REQUEST_NOT_FOUND",
			Message: fmt.Sprintf("LivePerson has no deletion request %d for this account", lpID), Metadata: meta}
	}
	return &Error{Kind: KindUnavailable, Reason: "LIVEPERSON_UNAVAILABLE",
		Message: "could not read the request at LivePerson (" + describe(err) + "); try again", Metadata: meta}
}

// HeldBatchCounts counts held batches per account (every configured account appears, held or
// not): each waits for an operator to settle it with SettleBatch.
func (s *Service) HeldBatchCounts() (map[string]int, error) {
	counts := map[string]int{}
	for _, a := range s.cfg.Accounts {
		counts[a] = 0
	}
	err := s.db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Ledger, schema.HeldPrefix, func(k, _ []byte) (bool, error) {
			rest, ok := bytes.CutPrefix(k, schema.HeldPrefix)
			if !ok {
				return false, nil
			}
			if i := bytes.IndexByte(rest, 0); i >= 0 {
				counts[string(rest[:i])]++
			}
			return true, nil
		})
	})
	return counts, s.storeError(err)
}

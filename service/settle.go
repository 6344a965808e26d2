package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

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
		if pipeline.OtherRecords(d, kind, ids) {
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
			err = s.changes().Unhold(tx, b, now)
		} else if err = notClaimed(tx, b, lpRequestID); err == nil {
			err = s.changes().Follow(tx, b, d, "settled", now)
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
	claimed, err := pipeline.Claimed(tx, b.Account, b.ID, lpID)
	if err != nil || !claimed {
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

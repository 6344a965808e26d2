package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/erasured/erasured/store"
)

// What became of a create whose answer was lost. LivePerson documents its list and get answers
// as request_id, siteId, request_time, requested_by and status only: the body (delete_json) may
// be missing, so a lost answer cannot always be matched by content. What the list does give is
// who created each request and when. Three things make that enough in the usual case:
//
//   - who we are at LivePerson: every create answer carries requested_by, remembered per account;
//   - when the batch's first POST was attempted, committed before the POST;
//   - at most one batch per account with an unknown outcome at a time (its "send turn"), so a
//     request of ours created after that POST and claimed by no other batch can only be its own.
//
// When the list still cannot tell (two requests could be it), the batch is held: never sent by
// itself, its erasures blocked on DELETION_OUTCOME_UNKNOWN, until an operator settles it.

// requestTimeSkew is how much earlier than our first POST LivePerson's clock may stamp the
// request that POST created.
const requestTimeSkew = 10 * time.Minute

// heldError is the last_error of an erasure holding records of a held batch.
const heldError = "LivePerson may or may not have created a deletion request for these records; held until an operator settles it"

// reconciled is what LivePerson's list says about a batch whose create outcome is unknown:
// claim request, hold with candidates, or neither (nothing was created: send).
type reconciled struct {
	claim      bool
	request    Deletion
	hold       bool
	candidates []int64
}

// reconcile looks for the batch's request among LivePerson's requests. A candidate is a
// request no other batch of ours has claimed, stamped no earlier than the batch's first POST
// (less requestTimeSkew), created by us when we know who we are, and, if LivePerson echoes its
// body, with the batch's kind and ids; a request whose echoed body differs is never one.
func (p *Pipeline) reconcile(ctx context.Context, b *batch, ids []string) (reconciled, error) {
	sent := b.FirstSend
	if sent.IsZero() {
		sent = b.Created // stored before first sends were recorded: the intent came first
	}
	// Open-ended towards the future: LivePerson's clock, not ours, stamps request_time, and a
	// request missed here would be created a second time.
	list, err := p.lp.ListDeletions(ctx, b.Account, sent.Add(-24*time.Hour), time.Time{})
	if err != nil {
		return reconciled{}, err
	}
	var claimed map[int64]bool
	var others int
	var ours string
	err = p.s.db.View(func(tx *store.Tx) error {
		if claimed, others, err = scanBatches(tx, b.Account, b.ID); err != nil {
			return err
		}
		ours = string(tx.Get(store.Ledger, requestedByKey(b.Account)))
		return nil
	})
	if err != nil {
		return reconciled{}, err
	}
	var candidates []Deletion
	seen := map[int64]bool{}
	for _, d := range list {
		if claimed[d.ID] || seen[d.ID] {
			continue
		}
		seen[d.ID] = true
		if !d.Created.IsZero() && d.Created.Before(sent.Add(-requestTimeSkew)) {
			continue
		}
		// An answer without requested_by cannot rule a request out: excluding it could
		// create the batch a second time.
		if ours != "" && d.RequestedBy != "" && d.RequestedBy != ours {
			continue
		}
		if echoed(d) {
			if sameIntent(d, b.Kind, ids) {
				return reconciled{claim: true, request: d}, nil
			}
			continue
		}
		candidates = append(candidates, d)
	}
	switch {
	case len(candidates) == 0:
		return reconciled{}, nil
	case len(candidates) == 1 && others == 0:
		// The only request that can be this batch's, and no other batch of the account might
		// have created it. Should it still be someone else's, verification re-reads every
		// record after LivePerson reports DONE, so a wrong claim cannot end in a false receipt.
		return reconciled{claim: true, request: candidates[0]}, nil
	}
	out := reconciled{hold: true}
	for _, d := range candidates {
		out.candidates = append(out.candidates, d.ID)
	}
	slices.Sort(out.candidates)
	return out, nil
}

// echoed reports whether LivePerson's answer carried the request's body.
func echoed(d Deletion) bool { return d.Kind != KindUnspecified || len(d.IDs) > 0 }

// sameIntent reports whether d's echoed body is kind with exactly ids (sorted).
func sameIntent(d Deletion, kind TargetKind, ids []string) bool {
	return d.Kind == kind && slices.Equal(slices.Sorted(slices.Values(d.IDs)), ids)
}

// scanBatches reads every batch once: the LivePerson requests claimed by batches of account
// other than self, and how many of those others have an unknown outcome.
func scanBatches(tx *store.Tx, account string, self uint64) (claimed map[int64]bool, unknown int, err error) {
	claimed = map[int64]bool{}
	err = tx.Scan(store.Batches, nil, func(_, v []byte) (bool, error) {
		var other batch
		if err := json.Unmarshal(v, &other); err != nil {
			return false, err
		}
		if other.Account != account || other.ID == self {
			return true, nil
		}
		if other.LPID != 0 {
			claimed[other.LPID] = true
		}
		if outcomeUnknown(&other) {
			unknown++
		}
		return true, nil
	})
	return claimed, unknown, err
}

// outcomeUnknown reports whether b may exist at LivePerson without our knowing its request.
func outcomeUnknown(b *batch) bool {
	return b.State == batchHeld || (b.State == batchIntent && b.Sends > 0)
}

// hold stops batch b for an operator: it will not be sent again by itself. Its erasures show
// the hold; it is logged once, with the candidate requests (LivePerson ids, not personal data).
func (p *Pipeline) hold(ctx context.Context, b *batch, candidates []int64) error {
	now := p.s.now()
	held := false
	err := p.updateBatch(ctx, b.ID, func(tx *store.Tx, cur *batch) error {
		held = false
		if cur.State != batchIntent || cur.Sends != b.Sends {
			return errStale
		}
		cur.State, cur.Candidates, cur.Failures = batchHeld, candidates, 0
		if err := tx.Put(store.Ledger, heldKey(cur.Account, cur.ID), nil); err != nil {
			return err
		}
		err := p.forMembers(tx, cur, func(r *record, ts []Target) error {
			h := HeldBatch{BatchID: cur.ID, Kind: cur.Kind, Candidates: candidates, SendTime: cur.FirstSend}
			for _, t := range ts {
				if t.Batch == cur.ID {
					h.RecordCount++
				}
			}
			r.HeldBatches = append(slices.DeleteFunc(r.HeldBatches, func(x HeldBatch) bool { return x.BatchID == cur.ID }), h)
			r.BlockedOn, r.LastError = BlockedDeletionOutcomeUnknown, heldError
			return p.s.save(tx, r, nil, r.State, now)
		})
		if err != nil {
			return err
		}
		held = true
		return p.pollNext(tx, cur, time.Time{})
	})
	if err == nil && held {
		p.s.log.Error("deletion batch held: LivePerson may or may not have created its request; settle it with SettleBatch",
			"account", b.Account, "batch", b.ID, "candidates", candidates)
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
	if r.LastError == heldError {
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
	p := s.currentPipeline()
	if p == nil {
		return SettleResult{}, &Error{Kind: KindUnavailable, Reason: "NO_PIPELINE", Message: "the pipeline is not running"}
	}
	var ids []string
	var kind TargetKind
	err := s.db.View(func(tx *store.Tx) error {
		b, err := heldBatch(tx, account, batchID)
		if err != nil {
			return err
		}
		if !notCreated {
			if err := notClaimed(tx, b, lpRequestID); err != nil {
				return err
			}
		}
		kind = b.Kind
		ids, err = s.batchIDs(tx, b)
		return err
	})
	if err != nil {
		return SettleResult{}, s.storeError(err)
	}
	var d Deletion
	if !notCreated {
		if d, err = p.lp.GetDeletion(ctx, account, lpRequestID); err != nil || d.ID != lpRequestID {
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
	var members []string
	err = s.db.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		b, err := heldBatch(tx, account, batchID)
		if err != nil {
			return err
		}
		members = b.Erasures
		b.SettledBy = who
		if err := tx.Delete(store.Ledger, heldKey(account, batchID)); err != nil {
			return err
		}
		if notCreated {
			err = p.unhold(tx, b, now)
		} else if err = notClaimed(tx, b, lpRequestID); err == nil {
			err = p.follow(tx, b, d, now)
		}
		if err != nil {
			return err
		}
		return putBatch(tx, b)
	})
	if err != nil {
		return SettleResult{}, s.storeError(err)
	}
	s.log.Warn("deletion batch settled by an operator", "account", account, "batch", batchID,
		"liveperson_request", lpRequestID, "not_created", notCreated, "by", who)
	s.wakePipeline()
	res := SettleResult{BatchID: batchID, LPRequestID: lpRequestID}
	err = s.db.View(func(tx *store.Tx) error {
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
// found nothing at LivePerson. It keeps the account's send turn, so it goes before any other.
func (p *Pipeline) unhold(tx *store.Tx, b *batch, now time.Time) error {
	err := p.forMembers(tx, b, func(r *record, ts []Target) error {
		clearHeld(r, ts, b.ID)
		return p.s.save(tx, r, nil, r.State, now)
	})
	if err != nil {
		return err
	}
	b.State, b.Resend, b.Candidates, b.Failures = batchIntent, true, nil, 0
	if _, err := takeSendTurn(tx, b); err != nil {
		return err
	}
	return p.pollNext(tx, b, now)
}

// heldBatch reads batch id of account, which must be held.
func heldBatch(tx *store.Tx, account string, id uint64) (*batch, error) {
	b, err := getBatch(tx, id)
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
func notClaimed(tx *store.Tx, b *batch, lpID int64) error {
	claimed, _, err := scanBatches(tx, b.Account, b.ID)
	if err != nil || !claimed[lpID] {
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

// sendTurn is an account's turn to send, persisted: the batch whose outcome may be unknown (in
// flight or held), and the batches waiting for it to settle.
type sendTurn struct {
	Batch   uint64   `json:"batch"`
	Waiting []uint64 `json:"waiting,omitempty"`
}

func sendTurnKey(account string) []byte { return []byte("send_turn/" + account) }

// takeSendTurn gives b its account's send turn, unless another batch holds it with an unknown
// outcome: then b joins the waiters, woken when that batch settles.
func takeSendTurn(tx *store.Tx, b *batch) (bool, error) {
	var t sendTurn
	if v := tx.Get(store.Ledger, sendTurnKey(b.Account)); v != nil {
		if err := json.Unmarshal(v, &t); err != nil {
			return false, err
		}
	}
	ok := true
	if t.Batch != 0 && t.Batch != b.ID {
		holder, err := getBatch(tx, t.Batch)
		if err != nil {
			return false, err
		}
		ok = holder == nil || !outcomeUnknown(holder)
	}
	if ok {
		t.Batch = b.ID
		t.Waiting = slices.DeleteFunc(t.Waiting, func(id uint64) bool { return id == b.ID })
	} else if !slices.Contains(t.Waiting, b.ID) {
		t.Waiting = append(t.Waiting, b.ID)
	}
	v, err := json.Marshal(t)
	if err != nil {
		return false, err
	}
	return ok, tx.Put(store.Ledger, sendTurnKey(b.Account), v)
}

// releaseSendTurn ends b's send turn (its outcome is known now) and schedules the batches that
// waited for it at once.
func (p *Pipeline) releaseSendTurn(tx *store.Tx, b *batch, now time.Time) error {
	v := tx.Get(store.Ledger, sendTurnKey(b.Account))
	if v == nil {
		return nil
	}
	var t sendTurn
	if err := json.Unmarshal(v, &t); err != nil {
		return err
	}
	if t.Batch != b.ID {
		return nil
	}
	for _, id := range t.Waiting {
		w, err := getBatch(tx, id)
		if err != nil {
			return err
		}
		if w == nil || w.State != batchIntent {
			continue
		}
		if err := p.pollNext(tx, w, now); err != nil {
			return err
		}
		if err := putBatch(tx, w); err != nil {
			return err
		}
	}
	return tx.Delete(store.Ledger, sendTurnKey(b.Account))
}

func requestedByKey(account string) []byte { return []byte("requested_by/" + account) }

// putRequestedBy remembers who we are at LivePerson for account, as its create answers say.
func putRequestedBy(tx *store.Tx, account, who string) error {
	return tx.Put(store.Ledger, requestedByKey(account), []byte(who))
}

var heldPrefix = []byte("held/")

// heldKey marks a held batch in the ledger, so held batches are counted without reading every
// batch.
func heldKey(account string, id uint64) []byte {
	return append(append(append(bytes.Clone(heldPrefix), account...), 0), store.U64(id)...)
}

// HeldBatchCounts counts held batches per account (every configured account appears, held or
// not): each waits for an operator to settle it with SettleBatch.
func (s *Service) HeldBatchCounts() (map[string]int, error) {
	counts := map[string]int{}
	for _, a := range s.cfg.Accounts {
		counts[a] = 0
	}
	err := s.db.View(func(tx *store.Tx) error {
		return tx.Scan(store.Ledger, heldPrefix, func(k, _ []byte) (bool, error) {
			rest, ok := bytes.CutPrefix(k, heldPrefix)
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

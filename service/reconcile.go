package service

import (
	"context"
	"encoding/json"
	"slices"
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
// When the list still cannot tell (two requests could be it, or two batches could own one), the
// batch is held: never sent by itself, its erasures blocked on DELETION_OUTCOME_UNKNOWN, until
// an operator settles it.

// requestTimeSkew is how much earlier than our first POST LivePerson's clock may stamp the
// request that POST created.
const requestTimeSkew = 10 * time.Minute

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

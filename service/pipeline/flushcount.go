package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The backlog: per account, how many erasures are still on their way to the queue, and when
// new erasures arrived. The FlushPack policy reads it to tell whether more records may still
// join a part-full batch.
//
// It is a count kept in the store (one ledger entry per account), changed in the transaction
// that changes an erasure (CountBacklog, which the domain's Transition calls for every change
// it stores). flushQueues runs every round of the scheduler and reads one entry per account
// with a queue; nothing scans the erasures for it. Kept in the store, it commits with the change
// or not at all, so no crash can leave it apart from the records, and every process sharing the
// store reads the same figure. A cache in memory would have to be rebuilt by a scan of every
// erasure at each start, and be wrong for a while on a replica that took over.
//
// A store written before the backlog was kept has no marker (backlogMarkerKey): the first
// flushQueues counts every stored erasure once, in one transaction, and sets the marker
// (ensureBacklog). Until then the counts may be off (they never read as negative); after, they
// are exact. A store changed in between by a binary that does not keep them (a downgrade and
// upgrade again) would drift; a drift only moves when a part-full batch leaves, never past its
// members' latest safe submit time, so it cannot make an erasure miss its deadline.

// Backlog is an account's erasures on their way to the queue, and its arrivals.
type Backlog struct {
	// Resolving counts open erasures whose records are not planned yet and that wait for no
	// person: RECEIVED, RESOLVING (not blocked on an unsearchable identifier). Any kind of
	// record may still come of them.
	Resolving int `json:"resolving,omitempty"`
	// Open counts open erasures holding records on open conversations: once closed, those are
	// queued as conversations.
	Open int `json:"open,omitempty"`
	// Arrivals counts new erasures (capped); Last is when the latest arrived.
	Arrivals int       `json:"arrivals,omitempty"`
	Last     time.Time `json:"last,omitzero"`
	// Gap is the longest recent gap between two arrivals: the largest gap seen, decaying by
	// half every gapHalfLife, so that one long holiday is forgotten within weeks.
	Gap time.Duration `json:"gap,omitempty"`
}

// backlogPrefix starts the Ledger keys of the accounts' backlogs; backlogMarkerKey says they
// are kept (every stored erasure was counted once).
var (
	backlogPrefix    = []byte("backlog/")
	backlogMarkerKey = []byte("counts/backlog/2") // 2: erasures waiting for a person no longer count
)

// BacklogKey holds account's Backlog in the Ledger.
func BacklogKey(account string) []byte { return append(bytes.Clone(backlogPrefix), account...) }

// GetBacklog reads account's backlog (all zero when none is stored). A count is never negative.
func GetBacklog(tx store.Tx, account string) (Backlog, error) {
	var b Backlog
	if v := tx.Get(schema.Ledger, BacklogKey(account)); v != nil {
		if err := json.Unmarshal(v, &b); err != nil {
			return b, fmt.Errorf("decode the backlog of account %s: %w", account, err)
		}
	}
	b.Resolving, b.Open = max(b.Resolving, 0), max(b.Open, 0)
	return b, nil
}

func putBacklog(tx store.Tx, account string, b Backlog) error {
	if b == (Backlog{}) {
		return tx.Delete(schema.Ledger, BacklogKey(account))
	}
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return tx.Put(schema.Ledger, BacklogKey(account), v)
}

// onTheWay reports how erasure e counts in its account's backlog (nil: not stored).
func onTheWay(e *model.Erasure) (resolving, open bool) {
	if e == nil || e.State.Final() {
		return false, false
	}
	// An erasure waiting for a person (an approver's confirmation, or a decision on an
	// identifier that may be unsearchable) may wait for days: it does not hold the account's
	// part-full batches back.
	switch e.State {
	case model.StateReceived:
		resolving = true
	case model.StateResolving:
		resolving = e.BlockedOn != model.BlockedIdentifierUnsearchable
	}
	for _, c := range e.TargetCounts {
		open = open || (c.Status == model.TargetDeferredOpen && c.Count > 0)
	}
	return resolving, open
}

// CountBacklog moves an erasure in its account's backlog from how it counted as stored (was;
// nil when the change creates it) to how it counts as cur, changed at now: in the caller's
// transaction, which stores cur. A new open erasure is an arrival. It writes only when the
// erasure's count changes or it is new.
func CountBacklog(tx store.Tx, was, cur *model.Erasure, now time.Time) error {
	r0, o0 := onTheWay(was)
	r1, o1 := onTheWay(cur)
	arrival := was == nil && !cur.State.Final()
	if r0 == r1 && o0 == o1 && !arrival {
		return nil
	}
	b, err := GetBacklog(tx, cur.AccountID)
	if err != nil {
		return err
	}
	b.Resolving = max(b.Resolving+step(r0, r1), 0)
	b.Open = max(b.Open+step(o0, o1), 0)
	if arrival {
		b.arrive(now)
	}
	return putBacklog(tx, cur.AccountID, b)
}

// step is how a count moves when a flag goes from a to b.
func step(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return 1
	}
	return -1
}

// gapHalfLife is how fast Backlog.Gap forgets a long gap: a week, so that a weekend without
// erasures is remembered until the next one comes, and an account whose rate rose is trusted
// to be quick again within a few weeks.
const gapHalfLife = 7 * 24 * time.Hour

// arrive counts an erasure that arrived at now.
func (b *Backlog) arrive(now time.Time) {
	if b.Arrivals > 0 && now.After(b.Last) {
		gap := now.Sub(b.Last)
		decayed := time.Duration(float64(b.Gap) * math.Exp2(-float64(gap)/float64(gapHalfLife)))
		b.Gap = max(gap, decayed)
	}
	if now.After(b.Last) {
		b.Last = now
	}
	b.Arrivals = min(b.Arrivals+1, 1<<20)
}

// ensureBacklog counts every stored erasure into the backlogs once, if the store has no
// marker: in one transaction, which serializes with every change of an erasure, so the counts
// it writes are exact. Arrivals are not known for erasures stored before: those accounts start
// with no arrival history.
func ensureBacklog(ctx context.Context, db DB) error {
	var ok bool
	if err := db.View(func(tx store.Tx) error { ok = tx.Get(schema.Ledger, backlogMarkerKey) != nil; return nil }); err != nil || ok {
		return err
	}
	err := db.Update(ctx, func(tx store.Tx) error {
		if tx.Get(schema.Ledger, backlogMarkerKey) != nil {
			return nil
		}
		counts := map[string]Backlog{}
		var old [][]byte
		err := tx.Scan(schema.Ledger, backlogPrefix, func(k, v []byte) (bool, error) {
			if !bytes.HasPrefix(k, backlogPrefix) {
				return false, nil
			}
			var b Backlog
			if err := json.Unmarshal(v, &b); err == nil { // arrivals since the store was opened are kept
				counts[string(k[len(backlogPrefix):])] = Backlog{Arrivals: b.Arrivals, Last: b.Last, Gap: b.Gap}
			}
			old = append(old, bytes.Clone(k))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.Delete(schema.Ledger, k); err != nil {
				return err
			}
		}
		err = tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
			var e struct { // only what onTheWay reads
				State        model.State         `json:"state"`
				AccountID    string              `json:"account_id"`
				BlockedOn    model.BlockedOn     `json:"blocked_on"`
				TargetCounts []model.TargetCount `json:"target_counts"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode erasure %s: %w", k, err)
			}
			resolving, open := onTheWay(&model.Erasure{State: e.State, AccountID: e.AccountID, BlockedOn: e.BlockedOn, TargetCounts: e.TargetCounts})
			if !resolving && !open {
				return true, nil
			}
			b := counts[e.AccountID]
			b.Resolving += step(false, resolving)
			b.Open += step(false, open)
			counts[e.AccountID] = b
			return true, nil
		})
		if err != nil {
			return err
		}
		for account, b := range counts {
			if err := putBacklog(tx, account, b); err != nil {
				return err
			}
		}
		return tx.Put(schema.Ledger, backlogMarkerKey, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("count the erasures on their way to the queue: %w", err)
	}
	return nil
}

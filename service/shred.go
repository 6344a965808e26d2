package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Crypto-shredding and the key keeper.
//
// An erasure's personal data (subject, aliases, LivePerson record ids, followed consumers) is
// sealed with its data key, and a deletion batch's record ids with the batch's data key. Data
// keys are wrapped by period keys, which live outside the database in the key directory
// (keystore.go) — or, on a store shared by replicas, in the store itself, where destroying one
// takes the store's own compaction too (keystore_shared.go). A copy of the database (a backup, or freed pages bbolt has not overwritten)
// keeps every wrapped data key it ever held; it becomes unreadable once the period keys that
// wrapped them are destroyed. The keeper, run by the pipeline every KeepInterval, does three
// things:
//
//  1. Re-wrap. Every data key still needed is wrapped by the key it must stay under: the key of
//     the current period while its erasure is open (a batch's while the batch is INTENT or
//     HELD, the only states its ids are read in); once final, the key of the period the
//     erasure became final in, or the current key if that one was never made. Keys wrapped
//     directly by the master key (databases written before the key directory) and erasure keys
//     still in the Keys bucket are moved the same way. A data key that does not open (its
//     period key was destroyed: a database restored from a backup older than the retention,
//     next to the current key directory) is passed over, counted and logged; the run goes on.
//  2. Shred. An erasure final for longer than the retention loses its data key and everything
//     sealed with it (its subject, record ids, consumers, and the root fingerprints and request
//     hashes of the Submit index), in one transaction with an event (its public fingerprints
//     empty, and it shows purged). The sealed request hashes of the Submits deduplicated onto
//     it go too, and in a shared store the copies of the Submit index there (shared.go). A
//     batch loses its key and sealed ids as soon as nothing can read them: once it is neither
//     INTENT nor HELD (batchIDsNeeded), or once all its erasures are shredded.
//  3. Destroy. A period key no data key in the database is wrapped by any more, and that stopped
//     being current at least the retention ago, is overwritten and removed; never the current
//     key nor one current within the last keeper interval, and never one a data key on its way
//     into the database is wrapped by (keydestroy.go). A key stops being current when its
//     successor is made, and at the latest when its own period (recorded in its file) ends.
//
// The bound. Let an erasure become final at T, in period m (which began at t_m <= T). Its data key
// was wrapped, in some copy of the database, only by keys of periods it was open in or became
// final in: keys k_j with j <= m. For each such k_j, every data key wrapped by it is, within one
// keeper interval after k_j stopped being current (at t_{j+1}), either re-wrapped under a later
// key (open data) or belongs to an erasure that became final in period j, or later if a late
// keeper put it there, and so is shredded by t_{j+1} + retention (plus an interval); a batch's
// key is shredded once the batch is sent and created (or refused). So
// k_j is destroyed by t_{j+1} + retention + one keeper interval <= T + period + retention +
// interval, since t_{j+1} <= t_{m+1} <= T + period. From then on no copy of the database, with the
// master key and the key directory, yields the erasure's data key: it is unrecoverable by
// T + retention + key period + keep interval. This assumes the keeper runs at least once per
// period (the service is up); a key whose period ended while the service was down is handled at
// the next run, and the bound moves by the downtime.
//
// The clock. Periods and retention go by the service's clock. A clock that goes back keeps the
// newest key current until its period. A wall clock set forward while the service runs would
// make the key of a far future period, which would then stay current (keys are ordered by their
// start) until real time reached it, with every data key it wraps readable in old copies: so
// while the host's wall clock is ahead of what its monotonic clock measured since start, keys
// roll by the latter (Keyring.effectiveNow), and an error is logged. What this does not cover: a
// clock already far ahead when the service starts (the key it makes is current until real time
// reaches its period; a key of a future period found at start is logged as an error, naming
// it), and a forward step the host's monotonic clock also saw. Ordering keys by a sequence
// number instead of their start would cover both, at the price of changing every key name.
//
// Waiting for the retention after a key stops being current (not just for its last reference to
// go) keeps a backup younger than the retention minus one period fully readable: its open
// erasures are wrapped by keys that still exist.
//
// Keys wrapped directly by the master key in copies taken before the key directory existed stay
// readable with that master key: rotate the master key (erasured keys rotate) once the keeper has
// moved them, and destroy the old one.
//
// Fingerprints. The fingerprints the Submit index compares are HMACs under a key derived from the
// root secret, kept for the service's life: with the master key they could be matched against
// guessed identifiers (a phone number's space is small enough to try in full). They are never
// stored in the clear but sealed with the erasure's data key, like its subject; what events,
// Status and receipts show are HMACs under a key derived from that data key (sealedindex.go).
// Destroying the data key makes both unreadable. Not covered: a database written before, whose
// change history (until compacted) and signed receipts keep the root fingerprints they were
// written with.

// shreddedHash replaced a shredded erasure's request hash in records and entries written before
// the hashes were sealed; it matches no payload. Shredding now removes the hash and keeps the
// request_id, which the index load reads as the zero hash (index.go).
var shreddedHash = strings.Repeat("0", 64)

// KeepStats says what one run of the key keeper did. It holds no personal data.
type KeepStats struct {
	CurrentKey      string   // the current period key ("" without a key directory)
	Rewrapped       int      // data keys wrapped again (erasures and batches)
	Migrated        int      // of those, keys the master key wrapped directly
	Shredded        int      // erasures whose sealed data and data key were destroyed
	BatchesShredded int      // batches whose sealed ids and data key were destroyed
	Destroyed       []string // period keys destroyed
	// Unreadable counts the data keys that needed re-wrapping but do not open (their period
	// key is destroyed: a database restored from a backup older than the retention, say).
	// They are passed over; the rest of the run goes on.
	Unreadable int
}

func (st KeepStats) changed() bool {
	return st.Rewrapped+st.Shredded+st.BatchesShredded+len(st.Destroyed)+st.Unreadable > 0
}

// keeperState schedules the keeper.
type keeperState struct {
	mu      sync.Mutex
	last    time.Time
	running bool
}

// keepDue reports whether the keeper should run now, and if so marks it running.
func (s *Service) keepDue(now time.Time) bool {
	s.keeper.mu.Lock()
	defer s.keeper.mu.Unlock()
	if s.keeper.running || (!s.keeper.last.IsZero() && now.Sub(s.keeper.last) < s.cfg.KeepInterval) {
		return false
	}
	s.keeper.running, s.keeper.last = true, now
	return true
}

// runKeeper runs the keeper once and logs what it did.
func (s *Service) runKeeper(ctx context.Context) {
	defer func() {
		s.keeper.mu.Lock()
		s.keeper.running = false
		s.keeper.mu.Unlock()
	}()
	st, err := s.Keep(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Error("key keeper", "err", err)
	}
	if st.changed() {
		s.log.Info("key keeper", "current_key", st.CurrentKey, "rewrapped", st.Rewrapped, "migrated", st.Migrated,
			"shredded", st.Shredded, "batches_shredded", st.BatchesShredded, "keys_destroyed", st.Destroyed,
			"unreadable", st.Unreadable)
	}
}

// Keep runs the key keeper once: it makes the current period key, re-wraps data keys, shreds
// what is past retention and destroys period keys nothing needs.
func (s *Service) Keep(ctx context.Context) (KeepStats, error) { return s.keep(ctx, false) }

// MigrateKeys only moves the data keys the master key wraps directly under the current period
// key (before a master-key rotation). Without a key directory it does nothing.
func (s *Service) MigrateKeys(ctx context.Context) (KeepStats, error) { return s.keep(ctx, true) }

// keepPlan is what one keeper run found to do.
type keepPlan struct {
	rewrap  []rewrapTask
	shred   []string            // erasure ids
	batches []uint64            // batches to shred
	unlink  []uint64            // DONE batches whose erasures are all final: their links go
	dedups  map[string][]string // shredded erasure id → keys of its deduplicated Submits in Requests
	// counted is the erasure counts as stored, seen those of the erasures the plan read, at
	// revision rev: checkCounts compares them.
	counted, seen Stats
	rev           uint64
}

type rewrapTask struct {
	erasure string // or
	batch   uint64
	target  string
}

func finalTimeOf(r *record) time.Time {
	if !r.FinalTime.IsZero() {
		return r.FinalTime
	}
	return r.UpdateTime
}

// needsRewrap says whether a data key wrapped by `by` must move to `target`: keys the master key
// wraps always move (when there is a key directory); period keys move only forward.
func needsRewrap(by, target string, migrateOnly bool) bool {
	switch {
	case target == "":
		return false
	case by == "":
		return true
	case migrateOnly:
		return false
	}
	return by < target // period key names sort as their start times
}

func (s *Service) keep(ctx context.Context, migrateOnly bool) (KeepStats, error) {
	now := s.now().UTC()
	cur, err := s.keys.roll(now)
	st := KeepStats{CurrentKey: cur}
	if err != nil {
		return st, err
	}
	var plan keepPlan
	if err := s.db.View(func(tx store.Tx) (err error) {
		plan, err = s.planKeep(ctx, tx, now, cur, migrateOnly)
		return err
	}); err != nil {
		return st, err
	}
	if err := s.checkCounts(ctx, plan.counted, plan.seen, plan.rev); err != nil {
		return st, err
	}
	if err := s.applyRewraps(ctx, plan.rewrap, &st); err != nil {
		return st, err
	}
	if migrateOnly {
		return st, nil
	}
	if err := s.shredErasures(ctx, plan, now, &st); err != nil {
		return st, err
	}
	if err := s.shredBatches(ctx, plan.batches, &st); err != nil {
		return st, err
	}
	for _, id := range plan.unlink {
		if err := pipeline.DropLinksOf(ctx, s.db, id); err != nil {
			return st, s.storeError(err)
		}
	}
	return st, s.destroyUnused(ctx, now, &st)
}

// planKeep reads what the keeper must do, in one read of the store. It stops when ctx ends: on
// a large store the read takes seconds, and a stopping process must not wait for it.
func (s *Service) planKeep(ctx context.Context, tx store.Tx, now time.Time, cur string, migrateOnly bool) (keepPlan, error) {
	plan := keepPlan{dedups: map[string][]string{}, seen: Stats{ByState: map[State]int{}}, rev: tx.Rev()}
	var err error
	if plan.counted, _, err = getCounts(tx); err != nil {
		return plan, err
	}
	gone := map[string]bool{}   // erasure id → shredded, or shredded in this run
	finals := map[string]bool{} // erasure id → final
	shredding := map[string]bool{}
	err = tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		r := new(record)
		if err := json.Unmarshal(v, r); err != nil {
			return false, fmt.Errorf("decode erasure %s: %w", k, err)
		}
		plan.seen.add(tallyOf(r.State, r.AtRisk), 1)
		final, ft := r.State.Final(), finalTimeOf(r)
		gone[r.ID] = !r.ShredTime.IsZero()
		finals[r.ID] = final
		switch {
		case gone[r.ID]:
		case final && !now.Before(ft.Add(s.cfg.Retention)) && !migrateOnly:
			gone[r.ID] = true
			shredding[r.ID] = true
			plan.shred = append(plan.shred, r.ID)
		default:
			w := wrappedKey(tx, r)
			if w == nil {
				break
			}
			target := cur
			if final {
				target = s.keys.keyFor(ft)
			}
			if needsRewrap(wrappedBy(w), target, migrateOnly) || (r.DataKey == nil && target != "") {
				plan.rewrap = append(plan.rewrap, rewrapTask{erasure: r.ID, target: target})
			}
		}
		return true, nil
	})
	if err != nil {
		return plan, err
	}
	err = tx.Scan(schema.Batches, nil, func(k, v []byte) (bool, error) {
		var b batch
		if err := json.Unmarshal(v, &b); err != nil {
			return false, fmt.Errorf("decode batch: %w", err)
		}
		if !migrateOnly && (b.State == LPDone || pipeline.LinksEnded(b.State)) {
			// A batch that ended (refused, dissolved, cancelled) is not joined any more; a DONE
			// one keeps its links while an erasure may still join it, and loses them once every
			// erasure it holds is final. Their links are dropped here, in transactions of their
			// own, not in the change that ended the batch: a store on etcd bounds a
			// transaction's operations, and a batch has up to 100 links of two keys each.
			ended := true
			for _, id := range b.Erasures {
				if f, ok := finals[id]; ok {
					ended = ended && f
				}
			}
			if (ended || b.State != LPDone) && pipeline.HasLinks(tx, b.ID) {
				plan.unlink = append(plan.unlink, b.ID)
			}
		}
		w := tx.Get(schema.Keys, schema.BatchKeyName(b.ID))
		if w == nil {
			return true, nil
		}
		allGone := true
		for _, id := range b.Erasures {
			if g, ok := gone[id]; ok { // no such erasure any more: nothing of it to keep
				allGone = allGone && g
			}
		}
		switch {
		case migrateOnly:
			if !allGone && needsRewrap(wrappedBy(w), cur, true) {
				plan.rewrap = append(plan.rewrap, rewrapTask{batch: b.ID, target: cur})
			}
		case allGone || !batchIDsNeeded(b.State):
			plan.batches = append(plan.batches, b.ID)
		case needsRewrap(wrappedBy(w), cur, false):
			plan.rewrap = append(plan.rewrap, rewrapTask{batch: b.ID, target: cur})
		}
		return true, nil
	})
	if err != nil || len(shredding) == 0 {
		return plan, err
	}
	err = tx.Scan(schema.Requests, nil, func(k, v []byte) (bool, error) {
		var e requestEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("decode idempotency record: %w", err)
		}
		if shredding[e.ErasureID] && e.hashed() {
			plan.dedups[e.ErasureID] = append(plan.dedups[e.ErasureID], string(k))
		}
		return true, nil
	})
	return plan, err
}

// batchIDsNeeded reports whether a batch in state may still need its sealed record ids. They are
// read to send it and, while a send's outcome is unknown, to match LivePerson's requests against
// its intent (INTENT), and to check an operator's settlement of a held batch, which may then be
// sent again (HELD). No state leads back to these two, and nothing else reads them: a cancel or
// a dissolved batch requeues its records from each erasure's own sealed targets, and
// verification re-reads them from there too.
func batchIDsNeeded(state string) bool { return state == batchIntent || state == batchHeld }

// keepChunk is how many records one keeper transaction changes: the committer runs every
// transaction one after another, and a long one would hold up Submits.
const keepChunk = 128

// inChunks runs fn over items, keepChunk at a time, one transaction each.
func inChunks[T any](ctx context.Context, s *Service, items []T, fn func(tx store.Tx, item T) error) error {
	for len(items) > 0 {
		n := min(len(items), keepChunk)
		chunk := items[:n]
		items = items[n:]
		err := s.db.Update(ctx, func(tx store.Tx) error {
			for _, it := range chunk {
				if err := fn(tx, it); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return s.storeError(err)
		}
	}
	return nil
}

// putQuiet stores r as it is, with its revision and without an event: for changes of the private
// part only, which no watcher sees.
func putQuiet(tx store.Tx, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(schema.Erasures, []byte(r.ID), v)
}

// applyRewraps re-wraps the data keys of the plan. A data key that does not open is passed over,
// counted and logged (by erasure and batch id): stopping there would stop every shred and key
// destruction after it, for every erasure, for as long as that key stays in the database.
func (s *Service) applyRewraps(ctx context.Context, tasks []rewrapTask, st *KeepStats) error {
	var rewrapped, migrated int
	unreadable := map[rewrapTask]bool{} // a set: a re-run transaction adds the same again
	err := inChunks(ctx, s, tasks, func(tx store.Tx, t rewrapTask) error {
		if t.erasure != "" {
			r, err := getRecord(tx, t.erasure)
			if err != nil || r == nil || !r.ShredTime.IsZero() {
				return err
			}
			w := wrappedKey(tx, r)
			if w == nil {
				return nil
			}
			by := wrappedBy(w)
			if by != "" && by >= t.target && r.DataKey != nil {
				return nil // moved on since the plan
			}
			nw, err := s.keys.rewrap(r.ID, w, t.target)
			if errors.Is(err, errUnreadable) {
				unreadable[t] = true
				return nil
			}
			if err != nil {
				return fmt.Errorf("re-wrap the data key of erasure %s: %w", r.ID, err)
			}
			r.DataKey = nw
			if err := tx.Delete(schema.Keys, []byte(r.ID)); err != nil {
				return err
			}
			rewrapped++
			if by == "" {
				migrated++
			}
			return putQuiet(tx, r)
		}
		name := schema.BatchKeyName(t.batch)
		w := tx.Get(schema.Keys, name)
		if w == nil {
			return nil
		}
		by := wrappedBy(w)
		if by != "" && by >= t.target {
			return nil
		}
		nw, err := s.keys.rewrap(string(name), w, t.target)
		if errors.Is(err, errUnreadable) {
			unreadable[t] = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("re-wrap the data key of batch %d: %w", t.batch, err)
		}
		rewrapped++
		if by == "" {
			migrated++
		}
		return tx.Put(schema.Keys, name, nw)
	})
	// A re-run transaction counts again; the counts are for the log only.
	st.Rewrapped += min(rewrapped, len(tasks))
	st.Migrated += min(migrated, len(tasks))
	st.Unreadable += len(unreadable)
	if len(unreadable) > 0 {
		var erasures []string
		var batches []uint64
		for t := range unreadable {
			if t.erasure != "" {
				erasures = append(erasures, t.erasure)
			} else {
				batches = append(batches, t.batch)
			}
		}
		slices.Sort(erasures)
		slices.Sort(batches)
		const most = 20 // of each, for the log
		s.log.Error("key keeper: data keys that do not open cannot be re-wrapped (their period keys are destroyed; "+
			"was the database restored from an old backup?): their erasures and batches cannot be worked on",
			"count", len(unreadable), "erasures", erasures[:min(len(erasures), most)], "batches", batches[:min(len(batches), most)])
	}
	return err
}

// shredErasures destroys the data key and sealed data of each erasure of the plan, with an event.
func (s *Service) shredErasures(ctx context.Context, plan keepPlan, now time.Time, st *KeepStats) error {
	n := 0
	err := inChunks(ctx, s, plan.shred, func(tx store.Tx, id string) error {
		r, err := getRecord(tx, id)
		if err != nil || r == nil || !r.ShredTime.IsZero() || !r.State.Final() || now.Before(finalTimeOf(r).Add(s.cfg.Retention)) {
			return err
		}
		if err := tx.Delete(schema.Keys, []byte(r.ID)); err != nil {
			return err
		}
		r.DataKey, r.Sealed, r.SealedTargets, r.SealedConsumers, r.Index = nil, nil, nil, nil, nil
		r.Fingerprint = ""
		for i := range r.Aliases {
			r.Aliases[i].Fingerprint = ""
		}
		r.ShredTime, r.Purged = now, true
		if r.PurgeTime.IsZero() {
			r.PurgeTime = finalTimeOf(r).Add(s.cfg.Retention)
		}
		// The request_id stays known, with no hash: a retry is refused (see index.go).
		r.PayloadHash = ""
		scrubbed := []requestEntry{{RequestID: r.RequestID, ErasureID: r.ID}}
		for _, key := range plan.dedups[id] {
			v := tx.Get(schema.Requests, []byte(key))
			var e requestEntry
			if v == nil || json.Unmarshal(v, &e) != nil {
				continue
			}
			e.PayloadHash, e.SealedHash = "", nil
			if v, err = json.Marshal(e); err != nil {
				return err
			}
			if err := tx.Put(schema.Requests, []byte(key), v); err != nil {
				return err
			}
			scrubbed = append(scrubbed, e)
		}
		if s.cfg.Shared {
			if err := storeShredded(tx, r.ID, scrubbed); err != nil {
				return err
			}
		}
		refs := make(map[string]requestRef, len(scrubbed))
		for _, e := range scrubbed {
			if refs[e.RequestID], err = e.ref([32]byte{}); err != nil {
				return err
			}
		}
		if err := tx.OnCommit(func() {
			for rid, ref := range refs {
				s.index.addRequest(rid, ref)
			}
		}); err != nil {
			return err
		}
		n++
		// The state stays; the event shows the fingerprint gone. UpdateTime moves to now.
		return s.transition(tx, r, erasureChange{from: r.State, now: now})
	})
	st.Shredded += min(n, len(plan.shred))
	return err
}

// shredBatches destroys the data key and sealed ids of each batch.
func (s *Service) shredBatches(ctx context.Context, ids []uint64, st *KeepStats) error {
	n := 0
	err := inChunks(ctx, s, ids, func(tx store.Tx, id uint64) error {
		b, err := pipeline.GetBatch(tx, id)
		if err != nil || b == nil {
			return err
		}
		if err := tx.Delete(schema.Keys, schema.BatchKeyName(id)); err != nil {
			return err
		}
		b.Sealed = nil
		n++
		return pipeline.PutBatch(tx, b)
	})
	st.BatchesShredded += min(n, len(ids))
	return err
}

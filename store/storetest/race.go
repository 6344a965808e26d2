package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
)

// testWatchReplayLiveRace runs writers non-stop while watchers start at assorted revisions, with and
// without a key, read for a while at assorted speeds, and stop. Each must have seen exactly the
// contiguous history (or its key's subset) from where it started to where its Progress ended. Slow
// watchers fall behind the live stream and catch up while the writers go on.
func testWatchReplayLiveRace(t *testing.T, open Open) {
	const (
		writers  = 3
		watchers = 24
		parallel = 4  // watchers running at once
		span     = 60 // revisions each watcher follows
	)
	keys := []string{"k0", "k1", "k2", "k3"}
	ctx := Context(t)
	db := openFresh(t, open)

	writeCtx, stopWriters := context.WithCancel(ctx)
	var writersWG sync.WaitGroup
	for i := range writers {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		writersWG.Go(func() {
			for writeCtx.Err() == nil {
				n := 1 + r.IntN(3)
				err := db.Update(writeCtx, func(tx store.Tx) error {
					for range n {
						k := keys[r.IntN(len(keys))]
						if _, err := tx.Append(k, fmt.Appendf(nil, "%s@%d", k, tx.Rev()+1)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil && writeCtx.Err() == nil {
					t.Errorf("writer Update = %v", err)
					return
				}
			}
		})
	}

	type result struct {
		from, progress uint64
		key            string
		got            []store.Event
		err            error
	}
	results := make([]result, watchers)
	sem := make(chan struct{}, parallel)
	var watchWG sync.WaitGroup
	for i := range watchers {
		sem <- struct{}{}
		r := rand.New(rand.NewPCG(uint64(i), 2))
		key := []string{"", "", keys[0], keys[1]}[i%4]
		var from uint64
		switch i % 3 {
		case 0:
			from = 0
		case 1:
			from = 1 + db.Rev()/2
		case 2:
			from = max(1, db.Rev()+1-min(db.Rev(), uint64(r.IntN(40))))
		}
		slow := i%5 == 0
		watchWG.Go(func() {
			defer func() { <-sem }()
			res := &results[i]
			res.key = key
			w, err := db.Watch(from, key)
			if err != nil {
				res.err = fmt.Errorf("Watch(%d, %q) = %w", from, key, err)
				return
			}
			defer w.Close()
			// A watch from a given revision must start exactly there: a backend that starts
			// late (after writes that committed meanwhile) would pass the comparison below
			// if the test took its word for where it starts. A watch from 0 starts at the
			// current revision, whatever it is by then.
			if from > 0 && w.Progress() != from-1 {
				res.err = fmt.Errorf("Watch(%d, %q).Progress() = %d before the first Next, want %d", from, key, w.Progress(), from-1)
				return
			}
			res.from = w.Progress() + 1
			for w.Progress() < res.from+span {
				evs, err := w.Next(ctx)
				if err != nil {
					res.err = fmt.Errorf("Next() = %w", err)
					return
				}
				res.got = append(res.got, evs...)
				if slow {
					// Let the writers get ahead: wait for a few commits of our own.
					for range 3 {
						if err := db.Update(ctx, func(store.Tx) error { return nil }); err != nil {
							res.err = err
							return
						}
					}
				} else if r.IntN(2) == 0 {
					runtime.Gosched()
				}
			}
			res.progress = w.Progress()
		})
	}
	watchWG.Wait()
	stopWriters()
	writersWG.Wait()

	history, err := db.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, rev := 0, uint64(1); i < len(history); i, rev = i+1, rev+1 {
		if history[i].Rev != rev {
			t.Fatalf("history[%d].Rev = %d, want %d", i, history[i].Rev, rev)
		}
	}
	for i, res := range results {
		if res.err != nil {
			t.Errorf("watcher %d: %v", i, res.err)
			continue
		}
		var want []store.Event
		for _, ev := range history {
			if ev.Rev >= res.from && ev.Rev <= res.progress && (res.key == "" || ev.Key == res.key) {
				want = append(want, ev)
			}
		}
		if diff := cmp.Diff(want, res.got); diff != "" {
			t.Errorf("watcher %d (revisions %d..%d, key %q) mismatch (-want +got):\n%s", i, res.from, res.progress, res.key, diff)
		}
	}
	t.Logf("%d revisions", len(history))
}

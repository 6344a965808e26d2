package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
)

var errBoom = errors.New("boom")

// testAtomicity: a function that fails or panics after writing, appending and registering a hook
// leaves nothing behind, not even a gap in the revisions.
func testAtomicity(t *testing.T, open Open) {
	ctx := Context(t)
	db := openFresh(t, open)
	var hooked atomic.Int32
	for _, tc := range []struct {
		name  string
		end   func() error
		check func(error) bool
	}{
		{"fails", func() error { return errBoom }, func(err error) bool { return errors.Is(err, errBoom) }},
		{"panics", func() error { panic("kaboom") }, func(err error) bool {
			return errors.Is(err, store.ErrPanic) && strings.Contains(err.Error(), "kaboom") && strings.Contains(err.Error(), "goroutine")
		}},
	} {
		err := db.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(bucketA, []byte(tc.name), []byte("v")); err != nil {
				return err
			}
			if _, err := tx.Append(tc.name, []byte("v")); err != nil {
				return err
			}
			if err := tx.OnCommit(func() { hooked.Add(1) }); err != nil {
				return err
			}
			return tc.end()
		})
		if !tc.check(err) {
			t.Errorf("Update(%s) = %v", tc.name, err)
		}
		var got []byte
		db.View(func(tx store.Tx) error { got = tx.Get(bucketA, []byte(tc.name)); return nil })
		if got != nil {
			t.Errorf("after Update(%s): Get = %q, want nil", tc.name, got)
		}
	}
	if got := db.Rev(); got != 0 {
		t.Errorf("Rev() after failed updates = %d, want 0", got)
	}
	if evs, err := db.Events(1, 0); err != nil || len(evs) != 0 {
		t.Errorf("Events(1, 0) after failed updates = %v, %v; want none", evs, err)
	}
	if n := hooked.Load(); n != 0 {
		t.Errorf("hooks of failed updates ran %d times, want 0", n)
	}
	AppendEvents(t, db, "after")
	if evs, err := db.Events(1, 0); err != nil || !cmp.Equal(evs, []store.Event{WantEvent(1, "after")}) {
		t.Errorf("Events(1, 0) = %v, %v; want the one event at revision 1", evs, err)
	}
}

func testRevisionsContiguous(t *testing.T, open Open) {
	const writers, each, perCall = 16, 20, 3
	ctx := Context(t)
	db := openFresh(t, open)
	revs := make([][]uint64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d-%d", w, i)
				var got []uint64
				err := db.Update(ctx, func(tx store.Tx) error {
					got = got[:0] // overwritten by every run; read only after a nil Update
					if err := tx.Put(ascending, []byte(key), []byte(key)); err != nil {
						return err
					}
					for range perCall {
						r, err := tx.Append(key, []byte(key))
						if err != nil {
							return err
						}
						got = append(got, r)
					}
					return nil
				})
				if err != nil {
					t.Errorf("Update(%s) = %v", key, err)
					return
				}
				for j := 1; j < len(got); j++ {
					if got[j] != got[j-1]+1 {
						t.Errorf("revisions of one update %v are not consecutive", got)
					}
				}
				revs[w] = append(revs[w], got...)
			}
		})
	}
	wg.Wait()

	const total = writers * each * perCall
	all := slices.Sorted(slices.Values(slices.Concat(revs...)))
	want := make([]uint64, total)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("revisions returned by Append mismatch (-want +got):\n%s", diff)
	}
	if got := db.Rev(); got != total {
		t.Errorf("Rev() = %d, want %d", got, total)
	}
	evs, err := db.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	db.View(func(tx store.Tx) error { count = tx.Count(ascending); return nil })
	if len(evs) != total || count != writers*each {
		t.Errorf("len(Events(1, 0)), Count = %d, %d; want %d, %d", len(evs), count, total, writers*each)
	}
	for i, ev := range evs {
		if ev.Rev != uint64(i+1) || ev.Key != string(ev.Value) {
			t.Errorf("Events(1, 0)[%d] = %+v, want Rev %d with Value == Key", i, ev, i+1)
		}
	}
}

// testFailureIsolation runs concurrent updates of which some fail, with or without having written,
// or panic. Only the successful ones leave a trace, with gap-free revisions, and only their
// OnCommit hooks run: once each, even if the backend ran them more than once, in commit order.
// A first update holds the backend for a moment so that the others likely share a commit; what
// the test checks holds however they are grouped.
func testFailureIsolation(t *testing.T, open Open) {
	type kind int
	const (
		ok kind = iota
		failClean
		failDirty
		panicClean
		panicDirty
	)
	kinds := []kind{ok, failDirty, ok, failClean, ok, panicDirty, ok, failDirty, panicClean, ok, ok}
	ctx := Context(t)
	db := openFresh(t, open)
	AppendEvents(t, db, "before") // rev 1

	started := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		var once sync.Once
		holder <- db.Update(ctx, func(store.Tx) error {
			once.Do(func() { close(started) })
			time.Sleep(20 * time.Millisecond)
			return nil
		})
	}()
	<-started

	errs := make([]error, len(kinds))
	revs := make([]uint64, len(kinds))
	var mu sync.Mutex
	var hooked []string
	var wg sync.WaitGroup
	for i, k := range kinds {
		key := fmt.Sprintf("k%d", i)
		wg.Go(func() {
			var rev uint64
			errs[i] = db.Update(ctx, func(tx store.Tx) error {
				rev = 0
				if err := tx.OnCommit(func() { mu.Lock(); hooked = append(hooked, key); mu.Unlock() }); err != nil {
					return err
				}
				switch k {
				case failClean:
					return errBoom
				case panicClean:
					panic("clean kaboom")
				}
				if err := tx.Put(bucketA, []byte(key), []byte(key)); err != nil {
					return err
				}
				r, err := tx.Append(key, []byte(key))
				if err != nil {
					return err
				}
				rev = r
				switch k {
				case failDirty:
					return errBoom
				case panicDirty:
					panic("dirty kaboom")
				}
				return nil
			})
			revs[i] = rev
		})
	}
	wg.Wait()
	if err := <-holder; err != nil {
		t.Fatal(err)
	}

	type survivor struct {
		rev uint64
		key string
	}
	var survivors []survivor
	for i, k := range kinds {
		key := fmt.Sprintf("k%d", i)
		switch k {
		case ok:
			if errs[i] != nil {
				t.Errorf("Update(%s, succeeds) = %v, want nil", key, errs[i])
			}
			survivors = append(survivors, survivor{revs[i], key})
		case failClean, failDirty:
			if !errors.Is(errs[i], errBoom) {
				t.Errorf("Update(%s, fails) = %v, want %v", key, errs[i], errBoom)
			}
		case panicClean, panicDirty:
			if !errors.Is(errs[i], store.ErrPanic) || !strings.Contains(errs[i].Error(), "kaboom") {
				t.Errorf("Update(%s, panics) = %v, want %v with the panic value", key, errs[i], store.ErrPanic)
			}
		}
		var got []byte
		db.View(func(tx store.Tx) error { got = tx.Get(bucketA, []byte(key)); return nil })
		if k == ok && string(got) != key {
			t.Errorf("Get(%s) = %q, want %q", key, got, key)
		}
		if k != ok && got != nil {
			t.Errorf("Get(%s) = %q, want nil: a failed update left a write", key, got)
		}
	}
	slices.SortFunc(survivors, func(a, b survivor) int { return int(a.rev) - int(b.rev) })
	var wantHooked []string
	var wantEvents []store.Event
	for i, s := range survivors {
		if want := uint64(2 + i); s.rev != want {
			t.Errorf("revision of %s = %d, want %d: the survivors' revisions must follow one another", s.key, s.rev, want)
		}
		wantHooked = append(wantHooked, s.key)
		wantEvents = append(wantEvents, store.Event{Rev: s.rev, Key: s.key, Value: []byte(s.key)})
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(wantHooked, hooked); diff != "" {
		t.Errorf("OnCommit hooks run, in revision order (-want +got):\n%s", diff)
	}
	evs, err := db.Events(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantEvents, evs); diff != "" {
		t.Errorf("Events(2, 0) mismatch (-want +got):\n%s", diff)
	}
}

// testOnCommitOrder: hooks run in registration order, after the commit (a hook registered before
// the function's writes still runs once they are committed) and before Update returns.
func testOnCommitOrder(t *testing.T, open Open) {
	ctx := Context(t)
	db := openFresh(t, open)
	var order []int
	err := db.Update(ctx, func(tx store.Tx) error {
		order = order[:0]
		for i := range 3 {
			if err := tx.OnCommit(func() { order = append(order, i) }); err != nil {
				return err
			}
		}
		if err := tx.Put(bucketA, []byte("k"), []byte("v")); err != nil {
			return err
		}
		return tx.OnCommit(func() { order = append(order, 3) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{0, 1, 2, 3}, order); diff != "" {
		t.Errorf("hooks run when Update returns (-want +got):\n%s", diff)
	}
	// A hook that sees the commit through another goroutine's View: the commit is done, and the
	// hook must not wait for it.
	seen := make(chan []byte, 1)
	err = db.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put(bucketA, []byte("k"), []byte("w")); err != nil {
			return err
		}
		return tx.OnCommit(func() {
			go func() {
				var v []byte
				_ = db.View(func(tx store.Tx) error { v = tx.Get(bucketA, []byte("k")); return nil })
				seen <- v
			}()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := <-seen; string(v) != "w" {
		t.Errorf("View started by a hook read %q, want the committed %q", v, "w")
	}
}

func testContextDoneBeforeStart(t *testing.T, open Open) {
	db := openFresh(t, open)
	var ran atomic.Bool
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Update(done, func(store.Tx) error { ran.Store(true); return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update(cancelled ctx) = %v, want %v", err, context.Canceled)
	}
	if ran.Load() {
		t.Errorf("an update whose ctx was done before it started ran")
	}
}

func testContextDoneAfterStartWaits(t *testing.T, open Open) {
	db := openFresh(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	err := db.Update(ctx, func(tx store.Tx) error {
		cancel() // the caller is now waiting on a done ctx; the outcome still wins
		_, err := tx.Append("k", nil)
		return err
	})
	if err != nil {
		t.Errorf("Update(ctx cancelled during fn) = %v, want nil", err)
	}
	if got := db.Rev(); got != 1 {
		t.Errorf("Rev() = %d, want 1", got)
	}
}

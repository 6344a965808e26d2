package etcdstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// appendTxn commits one update appending the events named keys, one transaction.
func appendTxn(t *testing.T, db store.DB, keys ...string) {
	t.Helper()
	if err := db.Update(storetest.Context(t), func(tx store.Tx) error {
		for _, k := range keys {
			if _, err := tx.Append(k, []byte("v-"+k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// eventKeys lists the etcd keys of db's events.
func eventKeys(t *testing.T, db *DB) []string {
	t.Helper()
	resp, err := rawClient(t).Get(storetest.Context(t), db.lay.key(eventsDir), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, kv := range resp.Kvs {
		ks = append(ks, string(kv.Key[len(db.lay.key(eventsDir)):]))
	}
	return ks
}

// checkRun checks that evs are the events from..to of names (names[i] at revision i+1).
func checkRun(t *testing.T, what string, evs []store.Event, from, to int, names []string) {
	t.Helper()
	if len(evs) != to-from+1 {
		t.Fatalf("%s: %d events, want %d to %d: %v", what, len(evs), from, to, evs)
	}
	for i, ev := range evs {
		rev := from + i
		if ev.Rev != uint64(rev) || ev.Key != names[rev-1] || string(ev.Value) != "v-"+names[rev-1] {
			t.Errorf("%s: [%d] = %d %s %q, want %d %s", what, i, ev.Rev, ev.Key, ev.Value, rev, names[rev-1])
		}
	}
}

// TestEventsOfOneTxnInOneKey: the events of one transaction (a group of updates) are one ev/
// key; they read back in order, from the ring and from etcd, and a read or watch that starts
// inside a transaction resumes there, with no event before it and none twice.
func TestEventsOfOneTxnInOneKey(t *testing.T) {
	ctx := storetest.Context(t)
	prefix := newPrefix(t)
	db := openTest(t, testOptions(prefix, testBuckets))
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("k%d", i%3))
	}
	// Four updates of three events each, queued behind a blocked committer: one transaction.
	release := blockCommitter(t, db)
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := []error{}
	for i := range 4 {
		wg.Go(func() {
			err := db.Update(ctx, func(tx store.Tx) error {
				for j := range 3 {
					if _, err := tx.Append(fmt.Sprintf("k%d", j), nil); err != nil {
						return err
					}
				}
				return nil
			})
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
		waitQueued(t, db, i+1)
	}
	release()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if ks := eventKeys(t, db); len(ks) != 1 || ks[0] != fmt.Sprintf("%016x", 12) {
		t.Fatalf("event keys %v, want one named by revision 12", ks)
	}
	appendTxn(t, db, "x", "y", "z") // revisions 13..15, a second key, with values
	names = append(names, "x", "y", "z")
	if ks := eventKeys(t, db); len(ks) != 2 {
		t.Fatalf("event keys %v, want 2", ks)
	}
	// Another process has nothing in its ring: it reads etcd.
	other := openTest(t, testOptions(prefix, testBuckets))
	evs, err := other.Events(14, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, "Events(14) from etcd", evs, 14, 15, names)
	for _, from := range []int{1, 5, 12, 13} {
		evs, err := other.Events(uint64(from), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 15-from+1 {
			t.Fatalf("Events(%d): %d events, want %d", from, len(evs), 15-from+1)
		}
		for i, ev := range evs {
			if ev.Rev != uint64(from+i) || ev.Key != names[from+i-1] {
				t.Errorf("Events(%d)[%d] = %d %s, want %d %s", from, i, ev.Rev, ev.Key, from+i, names[from+i-1])
			}
		}
		lim, err := other.Events(uint64(from), 2)
		if err != nil || len(lim) != min(2, 15-from+1) || lim[0].Rev != uint64(from) {
			t.Errorf("Events(%d, 2) = %v, %v", from, lim, err)
		}
	}
	// A watch resumed mid-transaction, unfiltered and filtered, then live.
	w, err := other.Watch(7, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := storetest.Collect(t, w, 9)
	for i, ev := range got {
		if ev.Rev != uint64(7+i) {
			t.Fatalf("watch from 7: [%d] has revision %d", i, ev.Rev)
		}
	}
	wf, err := other.Watch(5, "k2")
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	for i, ev := range storetest.Collect(t, wf, 3) {
		if want := uint64(6 + 3*i); ev.Rev != want || ev.Key != "k2" {
			t.Errorf("watch k2 from 5: [%d] = %d %s, want %d k2", i, ev.Rev, ev.Key, want)
		}
	}
	appendTxn(t, db, "live")
	if live := storetest.Collect(t, w, 1); live[0].Rev != 16 || live[0].Key != "live" {
		t.Errorf("live event after the replay = %+v, want 16 live", live[0])
	}
}

// TestCompactInsideTxn: compaction to a revision inside a transaction's events keeps that
// transaction's key, and reads answer as with one key per event: the revisions below are
// compacted (a *store.CompactedError naming the new oldest), those from it on are all there. A
// compaction past the transaction's last revision deletes its key.
func TestCompactInsideTxn(t *testing.T) {
	ctx := storetest.Context(t)
	prefix := newPrefix(t)
	db := openTest(t, testOptions(prefix, testBuckets))
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	appendTxn(t, db, names[:6]...) // 1..6
	appendTxn(t, db, names[6:]...) // 7..8
	if err := db.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if ks := eventKeys(t, db); len(ks) != 2 {
		t.Fatalf("after Compact(4): event keys %v, want both", ks)
	}
	other := openTest(t, testOptions(prefix, testBuckets)) // reads etcd, not a ring
	for _, d := range []*DB{db, other} {
		if d.Oldest() != 4 {
			t.Errorf("Oldest() = %d, want 4", d.Oldest())
		}
		var ce *store.CompactedError
		if _, err := d.Events(3, 0); !errors.As(err, &ce) || ce.Oldest != 4 {
			t.Errorf("Events(3) = %v, want a CompactedError naming 4", err)
		}
		if _, err := d.Watch(2, ""); !errors.As(err, &ce) || ce.Oldest != 4 {
			t.Errorf("Watch(2) = %v, want a CompactedError naming 4", err)
		}
		evs, err := d.Events(4, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRun(t, "Events(4) after Compact(4)", evs, 4, 8, names)
	}
	if err := db.Compact(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if ks := eventKeys(t, db); len(ks) != 1 || ks[0] != fmt.Sprintf("%016x", 8) {
		t.Errorf("after Compact(7): event keys %v, want the second transaction's alone", ks)
	}
	evs, err := other.Events(7, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, "Events(7) after Compact(7)", evs, 7, 8, names)
}

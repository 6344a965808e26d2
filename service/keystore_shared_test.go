package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// openBolt opens a store with the service's buckets, closed when the test ends.
func openBolt(t *testing.T) store.DB {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openReplicas opens n keyrings over one shared store, as n replicas do.
func openReplicas(t *testing.T, db Store, n int, now time.Time) []*Keyring {
	t.Helper()
	out := make([]*Keyring, n)
	for i := range out {
		out[i] = mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, now))
	}
	return out
}

// wantOpens checks that every keyring of ks opens what each of them wraps.
func wantOpens(t *testing.T, ks []*Keyring) {
	t.Helper()
	plain := bytes.Repeat([]byte{3}, 32)
	for i, a := range ks {
		w, err := a.wrapKey("erasure-1", plain)
		if err != nil {
			t.Fatal(err)
		}
		for j, b := range ks {
			if got, err := b.unwrap("erasure-1", w); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("replica %d does not open a data key replica %d wrapped (by %s): %v", j, i, wrappedBy(w), err)
			}
		}
	}
}

// TestReplicasRollToTheSameKey: replicas that start a new period at the same moment all wrap by
// one key of it, whoever made it, and each opens what the others wrap.
func TestReplicasRollToTheSameKey(t *testing.T) {
	db := openBolt(t)
	ks := openReplicas(t, db, 4, testNow)
	next := testNow.Add(testPeriod)
	errs := make(chan error, len(ks))
	for _, k := range ks {
		go func() {
			_, err := k.roll(next)
			errs <- err
		}()
	}
	for range ks {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range ks {
		if got, want := k.PeriodKeys(), ks[0].PeriodKeys(); !slices.Equal(got, want) || len(got) != 2 {
			t.Errorf("replica %d holds period keys %v, replica 0 %v; want the same two", i, got, want)
		}
	}
	wantOpens(t, ks)
}

// TestRollRerunAfterAnotherReplicaMadeTheKey: a replica's transaction that found no key of the
// new period, run again after another replica made it, keeps that replica's key instead of
// storing its own under the same name.
func TestRollRerunAfterAnotherReplicaMadeTheKey(t *testing.T) {
	db := openBolt(t)
	racing := &rerunStore{DB: db}
	a := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, testNow))
	b := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, racing, testPeriod, testNow))
	next := testNow.Add(testPeriod)
	racing.setBetween(func() {
		if _, err := a.roll(next); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := b.roll(next); err != nil {
		t.Fatal(err)
	}
	if racing.between != nil {
		t.Fatal("the roll made no transaction")
	}
	wantOpens(t, []*Keyring{a, b, mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, next))})
}

// TestReplicaReadsAPeriodKeyItDoesNotHold: a replica meets a data key wrapped by a period key
// another replica made after it started: it reads the key from the store, in a View or inside
// the transaction at hand, and keeps it. A key found destroyed there is shredded.
func TestReplicaReadsAPeriodKeyItDoesNotHold(t *testing.T) {
	db := openBolt(t)
	ks := openReplicas(t, db, 2, testNow)
	leader, follower := ks[0], ks[1]
	next := testNow.Add(testPeriod)
	if _, err := leader.roll(next); err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte{5}, 32)
	w, err := leader.wrapKey("erasure-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(follower.PeriodKeys(), wrappedBy(w)) {
		t.Fatal("the follower holds the new key already: nothing to test")
	}
	var inTx []byte
	if err := db.View(func(tx store.Tx) (err error) {
		inTx, err = follower.unwrapIn(tx, "erasure-1", w)
		return err
	}); err != nil || !bytes.Equal(inTx, plain) {
		t.Errorf("unwrapIn on the follower: %v", err)
	}
	if !slices.Contains(follower.PeriodKeys(), wrappedBy(w)) {
		t.Error("the follower did not keep the key it read")
	}
	other := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, testNow))
	if _, err := leader.roll(next.Add(testPeriod)); err != nil {
		t.Fatal(err)
	}
	if got, err := other.unwrap("erasure-1", w); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("unwrap on another follower: %v", err)
	}
	if err := leader.destroyPeriod(context.Background(), wrappedBy(w)); err != nil {
		t.Fatal(err)
	}
	late := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, next.Add(testPeriod)))
	if _, err := late.unwrap("erasure-1", w); !errors.Is(err, errShredded) {
		t.Errorf("a data key wrapped by a key destroyed in the store: %v, want it shredded", err)
	}
}

// TestDestroyOnOneReplicaReachesTheOthers: once the leader destroys a period key, another replica
// opens nothing with it after it reloads the keys: at once when asked to, and by itself before
// its next new data key once it met a newer period key.
func TestDestroyOnOneReplicaReachesTheOthers(t *testing.T) {
	for _, by := range []string{"reload", "a newer period met"} {
		t.Run(by, func(t *testing.T) {
			db := openBolt(t)
			ks := openReplicas(t, db, 2, testNow)
			leader, follower := ks[0], ks[1]
			old := leader.PeriodKeys()[0]
			w, err := follower.wrapKey("erasure-1", bytes.Repeat([]byte{5}, 32))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leader.roll(testNow.Add(testPeriod)); err != nil {
				t.Fatal(err)
			}
			if err := leader.destroyPeriod(context.Background(), old); err != nil {
				t.Fatal(err)
			}
			switch by {
			case "reload":
				follower.changeMu.Lock()
				err = follower.reload()
				follower.changeMu.Unlock()
			default:
				err = db.Update(context.Background(), func(tx store.Tx) error {
					if follower.committableIn(tx, w) {
						t.Error("a data key wrapped by a destroyed key is committable")
					}
					return nil
				})
				if err == nil {
					_, err = follower.newDataKey("erasure-2")
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(follower.PeriodKeys(), old) {
				t.Errorf("the follower still holds the destroyed key %s", old)
			}
			if _, err := follower.unwrap("erasure-1", w); !errors.Is(err, errShredded) {
				t.Errorf("the follower opens a data key wrapped by a destroyed key: %v", err)
			}
		})
	}
}

// TestFollowerWrapRacingADestroy: a follower wraps a data key by the period key it holds, then
// commits it in a transaction; meanwhile the leader rolls to a new key and destroys the old one
// (between a first run of the transaction and the run that commits, as on a shared store, or
// before the transaction). The committed key is never wrapped by the destroyed key: the check
// in the transaction finds the store's newest key and the key is wrapped again by that one. The
// check of the follower's memory alone (committable) commits a key nobody can open: the control.
func TestFollowerWrapRacingADestroy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rerun   bool // the leader's work comes between two runs of the transaction
		inStore bool // the check reads the store (committableIn), not memory only (committable)
	}{
		{"between two runs", true, true},
		{"before the transaction", false, true},
		{"between two runs, memory only (control)", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openBolt(t)
			racing := &rerunStore{DB: db}
			leader := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, testNow))
			follower := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, racing, testPeriod, testNow))
			old := leader.PeriodKeys()[0]
			dk, err := follower.newDataKey("erasure-1")
			if err != nil {
				t.Fatal(err)
			}
			leaderWork := func() {
				if _, err := leader.roll(testNow.Add(testPeriod)); err != nil {
					t.Fatal(err)
				}
				if err := leader.destroyPeriod(context.Background(), old); err != nil {
					t.Fatal(err)
				}
			}
			if tc.rerun {
				racing.setBetween(leaderWork)
			} else {
				leaderWork()
			}
			w := dk.wrapped
			if err := racing.Update(context.Background(), func(tx store.Tx) error {
				ok := follower.committable(w)
				if tc.inStore {
					ok = follower.committableIn(tx, w)
				}
				if !ok {
					if w, err = follower.wrapKey("erasure-1", dk.plain); err != nil {
						return err
					}
				}
				return tx.Put(schema.Keys, []byte("erasure-1"), w)
			}); err != nil {
				t.Fatal(err)
			}
			var stored []byte
			if err := db.View(func(tx store.Tx) error {
				stored = tx.Get(schema.Keys, []byte("erasure-1"))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			fresh := mustKeyring(t)(OpenSharedKeyring(context.Background(), "test", testKey, db, testPeriod, testNow.Add(testPeriod)))
			_, err = fresh.unwrap("erasure-1", stored)
			if broken := wrappedBy(stored) == old || err != nil; broken == tc.inStore {
				t.Errorf("committed a data key wrapped by %s (destroyed: %s), which opens: %v; want it broken only without the check in the store",
					wrappedBy(stored), old, err)
			}
		})
	}
}

// TestSharedStoreKeepsTheNewestKey: the newest period key of a shared store is the one every
// replica's new data keys are committed under; a replica whose memory is behind (it does not
// know that key is current) cannot destroy it.
func TestSharedStoreKeepsTheNewestKey(t *testing.T) {
	db := openBolt(t)
	ks := openReplicas(t, db, 2, testNow)
	leader, behind := ks[0], ks[1]
	newest, err := leader.roll(testNow.Add(testPeriod))
	if err != nil {
		t.Fatal(err)
	}
	if err := behind.destroyPeriod(context.Background(), newest); err == nil {
		t.Fatal("a replica destroyed the newest period key of the store")
	}
	wantOpens(t, ks)
}

// TestReplicasKeepErasuresReadable: two services over one store, each with a keyring of its own
// over the store's keys, as two replicas. Erasures submitted on the follower, in the first
// period and after the leader rolled to the next (the follower still wraps by the first key),
// are wrapped again by the leader's keeper; once the leader has destroyed the first key, both
// replicas still open them.
func TestReplicasKeepErasuresReadable(t *testing.T) {
	db := openBolt(t)
	clock := &fakeClock{t: testNow}
	cfg := Config{Now: clock.Now, Retention: testRetention, Shared: true, Logger: slog.New(slog.DiscardHandler)}
	rings := openReplicas(t, db, 2, testNow)
	leader, err := New(db, rings[0], cfg)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := New(db, rings[1], cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first := rings[0].PeriodKeys()[0]
	var ids []string
	for i, sub := range []string{"ABC-123", "DEF-456"} {
		if i == 1 {
			clock.Advance(testPeriod)
			if _, err := leader.Keep(ctx); err != nil {
				t.Fatal(err)
			}
		}
		res, err := follower.Submit(ctx, submitReq(fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i+1), "1234", customer(sub)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Erasure.ID)
	}
	for range 13 { // past the retention after the first key stopped being current
		clock.Advance(testPeriod)
		if _, err := leader.Keep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Contains(rings[0].PeriodKeys(), first) {
		t.Fatalf("the leader's keeper did not destroy %s", first)
	}
	if err := db.View(func(tx store.Tx) error {
		if tx.Get(schema.WrappingKeys, []byte(first)) != nil {
			t.Errorf("the store still holds the destroyed key %s", first)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if held := rings[1].PeriodKeys(); slices.Contains(held, rings[0].PeriodKeys()[0]) {
		t.Fatalf("the follower holds the leader's keys %v already: nothing to test", held)
	}
	for name, svc := range map[string]*Service{"leader": leader, "follower": follower} {
		for _, id := range ids {
			if _, err := svc.identities(id); err != nil {
				t.Errorf("the %s does not open erasure %s: %v", name, id, err)
			}
		}
	}
}

// TestSharedStoreRefusesAKeyDirectory: a service told that its store is shared refuses a keyring
// whose period keys are in a key directory of this host, which the other replicas cannot read.
func TestSharedStoreRefusesAKeyDirectory(t *testing.T) {
	db := openBolt(t)
	dirRing := mustKeyring(t)(OpenKeyring("test", testKey, filepath.Join(t.TempDir(), "keys"), testPeriod, testNow))
	if _, err := New(db, dirRing, Config{Shared: true}); err == nil {
		t.Error("a shared store was served with a key directory")
	}
	if _, err := New(db, openReplicas(t, db, 1, testNow)[0], Config{Shared: true}); err != nil {
		t.Errorf("a shared store with its keys in the store: %v", err)
	}
}

// TestRotateSharedKeys: a master-key rotation seals every key of a shared store again under the
// new master key, in one transaction (run again, it finds nothing left to do); the old master
// key opens none of them afterwards, and the new one opens every data key and keeps the receipt
// key.
func TestRotateSharedKeys(t *testing.T) {
	db := openBolt(t)
	ctx := context.Background()
	k := openReplicas(t, db, 1, testNow)[0]
	if _, err := k.roll(testNow.Add(testPeriod)); err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte{9}, 32)
	w, err := k.wrapKey("erasure-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	st, err := RotateSharedKeys(ctx, db, "test", testKey, "new", otherMaster)
	if err != nil || st.Rewrapped != 3 || st.AlreadyNew != 0 { // the root secret and two period keys
		t.Fatalf("RotateSharedKeys: %+v, %v; want 3 keys sealed again", st, err)
	}
	if again, err := RotateSharedKeys(ctx, db, "test", testKey, "new", otherMaster); err != nil || again.Rewrapped != 0 || again.AlreadyNew != 3 {
		t.Errorf("a second RotateSharedKeys: %+v, %v", again, err)
	}
	if _, err := OpenSharedKeyring(ctx, "test", testKey, db, testPeriod, testNow.Add(testPeriod)); !errors.Is(err, ErrOtherMasterKey) {
		t.Errorf("the old master key opens the store's keys: %v", err)
	}
	oldWrap, err := newGCM(derive(testKey, wrapLabel))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx store.Tx) error {
		return tx.Scan(schema.WrappingKeys, nil, func(name, raw []byte) (bool, error) {
			if _, _, err := openKeyFile("record", string(name), raw, oldWrap, "test"); err == nil {
				t.Errorf("the old master key opens the record %s", name)
			}
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	nk := mustKeyring(t)(OpenSharedKeyring(ctx, "new", otherMaster, db, testPeriod, testNow.Add(testPeriod)))
	if got, err := nk.unwrap("erasure-1", w); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("after the rotation a data key does not open: %v", err)
	}
	rk, err := ReadSharedReceiptKey("new", otherMaster, db)
	if err != nil || rk.ID != k.SigningKeyID() || nk.SigningKeyID() != k.SigningKeyID() {
		t.Errorf("receipt key after the rotation: %s, %v; keyring %s; want %s", rk.ID, err, nk.SigningKeyID(), k.SigningKeyID())
	}
}

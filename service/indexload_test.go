package service

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// readCounter counts what transactions over a store read of the Erasures bucket: records got
// one by one, and scans.
type readCounter struct {
	Store
	gets, scans atomic.Int64
}

func (c *readCounter) View(fn func(tx store.Tx) error) error {
	return c.Store.View(func(tx store.Tx) error { return fn(countingTx{tx, c}) })
}

func (c *readCounter) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return c.Store.Update(ctx, func(tx store.Tx) error { return fn(countingTx{tx, c}) })
}

type countingTx struct {
	store.Tx
	c *readCounter
}

func (t countingTx) Get(b store.Bucket, key []byte) []byte {
	if b == schema.Erasures {
		t.c.gets.Add(1)
	}
	return t.Tx.Get(b, key)
}

func (t countingTx) Scan(b store.Bucket, start []byte, fn func(k, v []byte) (bool, error)) error {
	if b == schema.Erasures {
		t.c.scans.Add(1)
	}
	return t.Tx.Scan(b, start, fn)
}

// reopenCounting restarts e's service over a store that counts what New reads of the erasures.
func (e *env) reopenCounting() *readCounter {
	e.t.Helper()
	e.restart()
	c := &readCounter{Store: e.db}
	svc, err := New(c, e.svc.keys, Config{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	return c
}

// TestStartReadsOnlyOpenErasures: once a store has been opened by this binary, a start reads the
// open marks and nothing of the final erasures, shredded or not: it scans no erasures and reads
// no record, however many there are.
func TestStartReadsOnlyOpenErasures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	for i := range 30 {
		ids = append(ids, e.submit(submitReq(rid(100+i), "1234", customer(fmt.Sprintf("C-%d", i)))).Erasure.ID)
	}
	for _, id := range ids[:20] { // 10 open: the last ones
		if _, err := e.svc.Cancel(ctx, NamePrefix+id, "test"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(e.svc.cfg.Retention + 1)
	if st, err := e.svc.Keep(ctx); err != nil || st.Shredded != 20 {
		t.Fatalf("Keep = %+v, %v; want 20 shredded", st, err)
	}
	for i := range 5 { // 5 final, within the retention
		id := e.submit(submitReq(rid(200+i), "1234", customer(fmt.Sprintf("D-%d", i)))).Erasure.ID
		if _, err := e.svc.Cancel(ctx, NamePrefix+id, "test"); err != nil {
			t.Fatal(err)
		}
	}

	c := e.reopenCounting()
	if got := c.scans.Load(); got != 0 {
		t.Errorf("New scanned the erasures %d times, want 0", got)
	}
	if got := c.gets.Load(); got != 0 {
		t.Errorf("New read %d erasure records, want none: the open marks hold what it needs", got)
	}
	// What it loaded is what Submit needs: a new Submit for an open subject is deduplicated,
	// one for a final one's subject is not.
	if res := e.submit(submitReq(rid(300), "1234", customer("C-25"))); !res.Deduplicated || res.Erasure.ID != ids[25] {
		t.Errorf("Submit for an open erasure's subject = %s dedup=%v, want %s", res.Erasure.ID, res.Deduplicated, ids[25])
	}
	if res := e.submit(submitReq(rid(301), "1234", customer("C-5"))); res.Deduplicated || res.Erasure.ID == ids[5] {
		t.Errorf("Submit for a shredded erasure's subject = %s dedup=%v, want a new erasure", res.Erasure.ID, res.Deduplicated)
	}

	// A mark whose data key no longer unwraps (the keeper wrapped the record's again, and its
	// period key is gone) sends New to that one record.
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		r, err := getRecord(tx, ids[27])
		if err != nil {
			return err
		}
		stale := openMark(indexFields{RequestID: r.RequestID, AccountID: r.AccountID, DataKey: []byte("p-19990101T000000Z:gone"), Index: r.Index})
		return tx.Put(schema.SubmitIndex, openKey(r.ID), stale)
	}); err != nil {
		t.Fatal(err)
	}
	c = e.reopenCounting()
	if got := c.gets.Load(); got != 1 {
		t.Errorf("New read %d erasure records, want the 1 whose mark's key does not unwrap", got)
	}
	if res := e.submit(submitReq(rid(302), "1234", customer("C-27"))); !res.Deduplicated || res.Erasure.ID != ids[27] {
		t.Errorf("Submit for the subject of the erasure read from its record = %s dedup=%v, want %s", res.Erasure.ID, res.Deduplicated, ids[27])
	}
}

// TestRetriesOfFinalErasuresAfterRestart: memory holds open erasures only, yet after a restart a
// retry of the Submit that created a final erasure, or of one deduplicated onto it, still gets
// that erasure (from the store's entry), another payload under its request_id is refused, and
// once the erasure is shredded every retry is refused. No retry creates an erasure.
func TestRetriesOfFinalErasuresAfterRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.submit(submitReq(rid(1), "1234", customer("ABC-123"))).Erasure
	dup := e.submit(submitReq(rid(2), "1234", customer("ABC-123")))
	if !dup.Deduplicated || dup.Erasure.ID != first.ID {
		t.Fatalf("second Submit = %s dedup=%v, want deduplicated onto %s", dup.Erasure.ID, dup.Deduplicated, first.ID)
	}
	if _, err := e.svc.Cancel(ctx, first.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if n := len(e.svc.index.requests); n != 0 {
		t.Fatalf("after restart memory holds %d request_ids, want none (no erasure is open)", n)
	}

	countErasures := func() int {
		n := 0
		if err := e.db.View(func(tx store.Tx) error {
			return tx.Scan(schema.Erasures, nil, func(_, _ []byte) (bool, error) { n++; return true, nil })
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range []struct {
		name  string
		req   SubmitRequest
		dedup bool
	}{
		{"the creating Submit", submitReq(rid(1), "1234", customer("ABC-123")), false},
		{"the deduplicated Submit", submitReq(rid(2), "1234", customer("ABC-123")), true},
	} {
		res := e.submit(c.req)
		if res.Erasure.ID != first.ID || res.Deduplicated != c.dedup || res.Erasure.State != StateCancelled {
			t.Errorf("retry of %s = %s %s dedup=%v, want %s CANCELLED dedup=%v", c.name, res.Erasure.ID, res.Erasure.State, res.Deduplicated, first.ID, c.dedup)
		}
		other := c.req
		other.Subject = customer("OTHER-1")
		var apiErr *Error
		if _, err := e.svc.Submit(ctx, other); !asError(err, &apiErr) || apiErr.Reason != "REQUEST_ID_REUSED" {
			t.Errorf("%s's request_id with another payload: %v, want REQUEST_ID_REUSED", c.name, err)
		}
	}
	if n := countErasures(); n != 1 {
		t.Errorf("%d erasures stored, want 1", n)
	}

	e.clock.Advance(e.svc.cfg.Retention + 1)
	if st, err := e.svc.Keep(ctx); err != nil || st.Shredded != 1 {
		t.Fatalf("Keep = %+v, %v; want 1 shredded", st, err)
	}
	e.restart()
	for _, r := range []string{rid(1), rid(2)} {
		var apiErr *Error
		if _, err := e.svc.Submit(ctx, submitReq(r, "1234", customer("ABC-123"))); !asError(err, &apiErr) || apiErr.Reason != "REQUEST_ID_REUSED" {
			t.Errorf("retry of %s once the erasure is shredded: %v, want REQUEST_ID_REUSED", r, err)
		}
	}
	if n := countErasures(); n != 1 {
		t.Errorf("%d erasures stored, want 1", n)
	}
	// The entries the store keeps under request_ids hold no hash: nothing to scrub at shredding.
	if err := e.db.View(func(tx store.Tx) error {
		return tx.Scan(schema.SubmitIndex, []byte("r/"), func(k, v []byte) (bool, error) {
			if !bytes.HasPrefix(k, []byte("r/")) {
				return false, nil
			}
			if bytes.Contains(v, []byte("hash")) {
				t.Errorf("entry %q holds a hash: %s", k, v)
			}
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOpenMarksFollowErasures: the open marks list exactly the open erasures, through creation,
// joins, the end of an erasure and restarts; the first open of a store without them writes them.
func TestOpenMarksFollowErasures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.submit(submitReq(rid(1), "1234", customer("A-1"))).Erasure
	b := e.submit(submitReq(rid(2), "1234", customer("B-1"))).Erasure
	e.submit(submitReq(rid(3), "1234", customer("A-1"))) // deduplicated onto a
	if _, err := e.svc.Cancel(ctx, b.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	marks := func() []string {
		var out []string
		if err := e.db.View(func(tx store.Tx) error {
			return tx.Scan(schema.SubmitIndex, []byte(openPrefix), func(k, _ []byte) (bool, error) {
				if !bytes.HasPrefix(k, []byte(openPrefix)) {
					return false, nil
				}
				out = append(out, string(k[len(openPrefix):]))
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := marks(); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("open marks %v, want [%s]", got, a.ID)
	}
	// A store written before the marks: they, their mark and the request_id entries are gone.
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		var keys [][]byte
		if err := tx.Scan(schema.SubmitIndex, nil, func(k, _ []byte) (bool, error) {
			keys = append(keys, bytes.Clone(k))
			return true, nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(schema.SubmitIndex, k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if got := marks(); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("open marks after the first open %v, want [%s]", got, a.ID)
	}
	for _, c := range []struct {
		rid  string
		want string
	}{{rid(1), a.ID}, {rid(2), b.ID}, {rid(3), a.ID}} {
		if res := e.submit(submitReq(c.rid, "1234", customer(map[string]string{a.ID: "A-1", b.ID: "B-1"}[c.want]))); res.Erasure.ID != c.want {
			t.Errorf("retry of %s = %s, want %s", c.rid, res.Erasure.ID, c.want)
		}
	}
	e.restart()
	if res := e.submit(submitReq(rid(4), "1234", customer("A-1"))); !res.Deduplicated || res.Erasure.ID != a.ID {
		t.Errorf("Submit for an open subject after restarts = %s dedup=%v, want %s", res.Erasure.ID, res.Deduplicated, a.ID)
	}
}

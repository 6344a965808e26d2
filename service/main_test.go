package service

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKey is a fixed master key for tests (never used outside them).
var testKey = []byte("0123456789abcdef0123456789abcdef")

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// env is a service over a fresh store in a temporary directory.
type env struct {
	t     *testing.T
	path  string
	db    store.DB
	svc   *Service
	clock *fakeClock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "erasure.db"),
		clock: &fakeClock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	t.Cleanup(e.checkHistory) // runs first: cleanups run last registered first
	return e
}

// open (re)opens the store and builds a service over it: a restart.
func (e *env) open() {
	e.t.Helper()
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		e.t.Fatalf("boltstore.Open: %v", err)
	}
	keys, err := NewKeyring("test", testKey)
	if err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(db, keys, Config{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.svc = db, svc
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.open()
}

func (e *env) submit(req SubmitRequest) SubmitResult {
	e.t.Helper()
	res, err := e.svc.Submit(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Submit(%s): %v", req.RequestID, err)
	}
	return res
}

func customer(id string) Subject { return Subject{Kind: SubjectCustomerID, Value: id} }

func submitReq(rid, account string, s Subject) SubmitRequest {
	return SubmitRequest{RequestID: rid, AccountID: account, Subject: s}
}

func asError(err error, target **Error) bool { return errors.As(err, target) }

type storeTx = store.Tx

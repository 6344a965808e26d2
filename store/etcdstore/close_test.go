package etcdstore

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestCloseLeavesNothing: after Close (with a term held, a campaign waiting, a watcher blocked)
// no goroutine of the store is left, the term's lease is revoked, and the blocked calls end.
func TestCloseLeavesNothing(t *testing.T) {
	ctx := storetest.Context(t)
	prefix := newPrefix(t)
	a := openTest(t, testOptions(prefix, testBuckets))
	b := openTest(t, testOptions(prefix, testBuckets))
	l, err := a.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	campaignErr := make(chan error, 1)
	go func() { _, err := b.Campaign(ctx, "b"); campaignErr <- err }()
	w, err := b.Watch(0, "")
	if err != nil {
		t.Fatal(err)
	}
	nextErr := make(chan error, 1)
	go func() { _, err := w.Next(ctx); nextErr <- err }()
	storetest.AppendEvents(t, a, "x")
	time.Sleep(50 * time.Millisecond)
	if storeGoroutines() == "" {
		t.Fatal("no goroutine of the store found while it is open: the check below cannot fail")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-campaignErr; !errors.Is(err, store.ErrClosed) {
		t.Errorf("Campaign waiting during Close = %v, want %v", err, store.ErrClosed)
	}
	if err := <-nextErr; err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("Next blocked during Close = %v, want events or %v", err, store.ErrClosed)
	}
	lease := l.(*term).lease
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := rawClient(t).TimeToLive(ctx, lease); err != nil || resp.TTL != -1 {
		t.Errorf("lease of the closed DB's term: TTL %d, %v; want revoked (-1)", resp.TTL, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := storeGoroutines()
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of the store left after Close:\n%s", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storeGoroutines returns the stacks of goroutines running the store's code (but this test's).
func storeGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "store/etcdstore.(*") && !strings.Contains(g, "etcdstore.Test") {
			left = append(left, g)
		}
	}
	return strings.Join(left, "\n\n")
}

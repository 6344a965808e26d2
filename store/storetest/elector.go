package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

// RunElector runs the tests of leader election among the handles of a shared store: one leader
// at a time; the other is elected once the first resigns, closes, or is cut off (and then only
// after the first's ValidUntil); a fenced Update of an ended term fails with ErrNotLeader and
// writes nothing, while an unfenced one beside it commits. A backend that only one process can
// open (a bbolt file) elects its only user at once and has its own test; these need two openers.
func RunElector(t *testing.T, open OpenPair) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, OpenPair)
	}{
		{"OneLeaderAtATime", testOneLeaderAtATime},
		{"FencedUpdateOfEndedTerm", testFencedUpdateOfEndedTerm},
		{"CutLeaderReplacedAfterValidUntil", testCutLeaderReplacedAfterValidUntil},
		{"CloseResigns", testCloseResigns},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// campaign runs Campaign in the background; the result arrives on the channel, with the time it
// returned.
type elected struct {
	l   store.Leadership
	err error
	at  time.Time
}

func campaign(ctx context.Context, e store.Elector, id string) <-chan elected {
	c := make(chan elected, 1)
	go func() {
		l, err := e.Campaign(ctx, id)
		c <- elected{l, err, time.Now()}
	}()
	return c
}

func mustCampaign(t *testing.T, e store.Elector, id string) store.Leadership {
	t.Helper()
	l, err := e.Campaign(Context(t), id)
	if err != nil {
		t.Fatalf("Campaign(%s) = %v", id, err)
	}
	return l
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// testOneLeaderAtATime: while A leads, B's campaign waits and both name A; once A resigns, B is
// elected with a later term, and A's term is over.
func testOneLeaderAtATime(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	if who, err := p.B.Leader(ctx); err != nil || who != "" {
		t.Errorf("Leader() before any campaign = %q, %v; want none", who, err)
	}
	la := mustCampaign(t, p.A, "a")
	for name, e := range map[string]store.Elector{"A": p.A, "B": p.B} {
		if who, err := e.Leader(ctx); err != nil || who != "a" {
			t.Errorf("%s.Leader() = %q, %v; want a", name, who, err)
		}
	}
	if !strings.Contains(la.ValidUntil().String(), " m=") {
		// Without a monotonic reading, a wall clock stepped back would lengthen the term.
		t.Errorf("ValidUntil %v carries no monotonic clock reading", la.ValidUntil())
	}
	if !la.ValidUntil().After(time.Now()) {
		t.Errorf("ValidUntil of a new term = %v, already past", la.ValidUntil())
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := p.B.Campaign(short, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("B.Campaign while A leads = %v, want the deadline", err)
	}
	cancel()
	cb := campaign(ctx, p.B, "b")
	select {
	case r := <-cb:
		t.Fatalf("B elected while A leads: %v, %v", r.l, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if !closed(la.Done()) {
		t.Error("Done of a resigned term is open")
	}
	if until := la.ValidUntil(); until.After(time.Now()) {
		// Another process may lead from now on: work outside the store must not go on.
		t.Errorf("ValidUntil of a resigned term is %v in the future", time.Until(until))
	}
	r := <-cb
	if r.err != nil {
		t.Fatalf("B.Campaign after A resigned = %v", r.err)
	}
	if r.l.Term() <= la.Term() {
		t.Errorf("B's term %d is not after A's %d", r.l.Term(), la.Term())
	}
	if who, err := p.A.Leader(ctx); err != nil || who != "b" {
		t.Errorf("A.Leader() after B won = %q, %v; want b", who, err)
	}
	if closed(r.l.Done()) {
		t.Error("Done of B's new term is closed")
	}
	_ = r.l.Resign(ctx)
}

// testFencedUpdateOfEndedTerm: updates fenced with a term that ends while they wait in the
// queue (behind a slow one, so that they likely share a commit with an unfenced one) fail with
// ErrNotLeader and write nothing; the unfenced update commits. One fenced after the end fails
// at once. A fenced update of a live term commits.
func testFencedUpdateOfEndedTerm(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	l := mustCampaign(t, p.A, "a")
	if err := p.A.Update(l.Fence(ctx), func(tx store.Tx) error { return tx.Put(bucketA, []byte("live"), []byte("v")) }); err != nil {
		t.Fatalf("fenced Update of a live term = %v", err)
	}

	release := make(chan struct{})
	started := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		var once sync.Once
		holder <- p.A.Update(ctx, func(store.Tx) error {
			once.Do(func() { close(started) })
			<-release
			return nil
		})
	}()
	<-started
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, key := range []string{"fenced-1", "unfenced", "fenced-2"} {
		uctx := ctx
		if key != "unfenced" {
			uctx = l.Fence(ctx)
		}
		wg.Go(func() {
			errs[i] = p.A.Update(uctx, func(tx store.Tx) error {
				if err := tx.Put(bucketA, []byte(key), []byte("v")); err != nil {
					return err
				}
				_, err := tx.Append(key, nil)
				return err
			})
		})
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"fenced-1", "unfenced", "fenced-2"} {
		want := key == "unfenced"
		if want && errs[i] != nil {
			t.Errorf("unfenced Update = %v, want nil", errs[i])
		}
		if !want && !errors.Is(errs[i], store.ErrNotLeader) {
			t.Errorf("Update(%s) of an ended term = %v, want %v", key, errs[i], store.ErrNotLeader)
		}
		var got []byte
		if err := p.A.View(func(tx store.Tx) error { got = tx.Get(bucketA, []byte(key)); return nil }); err != nil {
			t.Fatal(err)
		}
		if (got != nil) != want {
			t.Errorf("after Update(%s): Get = %q, want written %t", key, got, want)
		}
	}
	if got := p.A.Rev(); got != 1 {
		t.Errorf("Rev() = %d, want 1: only the unfenced update appends", got)
	}
	err := p.A.Update(l.Fence(ctx), func(tx store.Tx) error { return tx.Put(bucketA, []byte("late"), []byte("v")) })
	if !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("Update fenced with a resigned term = %v, want %v", err, store.ErrNotLeader)
	}
	if l2 := store.LeadershipOf(l.Fence(ctx)); l2 != l {
		t.Errorf("LeadershipOf(Fence(ctx)) = %v, want the term", l2)
	}
}

// testCutLeaderReplacedAfterValidUntil: once A is cut off, its term ends (Done) no later than
// shortly after its ValidUntil, and B is elected, never before that ValidUntil: whatever A still
// does before its ValidUntil happens while no other process leads.
func testCutLeaderReplacedAfterValidUntil(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	la := mustCampaign(t, p.A, "a")
	cb := campaign(ctx, p.B, "b")
	time.Sleep(100 * time.Millisecond)
	p.CutA()
	cutAt := time.Now()
	r := <-cb
	if r.err != nil {
		t.Fatalf("B.Campaign after A was cut off = %v", r.err)
	}
	defer r.l.Resign(ctx)
	until := la.ValidUntil()
	if !r.at.After(until) {
		t.Errorf("B elected at %v, before A's ValidUntil %v", r.at.Format(time.StampMicro), until.Format(time.StampMicro))
	}
	if !closed(la.Done()) { // ValidUntil may be past already: the time the term ended
		select {
		case <-la.Done():
		case <-time.After(time.Until(until) + time.Second):
			t.Errorf("A's Done still open a second past its ValidUntil")
		}
	}
	if r.l.Term() <= la.Term() {
		t.Errorf("B's term %d is not after A's %d", r.l.Term(), la.Term())
	}
	t.Logf("cut at %v; A valid until +%v; B elected at +%v", cutAt.Format(time.StampMilli), until.Sub(cutAt), r.at.Sub(cutAt))
}

// testCloseResigns: closing A ends its term and lets B in at once, without waiting for A's lease
// to run out.
func testCloseResigns(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	la := mustCampaign(t, p.A, "a")
	cb := campaign(ctx, p.B, "b")
	time.Sleep(100 * time.Millisecond)
	until := la.ValidUntil() // before Close, which ends the term and so its ValidUntil
	if err := p.A.Close(); err != nil {
		t.Fatal(err)
	}
	if !closed(la.Done()) {
		t.Error("Done of A's term is open after A.Close")
	}
	r := <-cb
	if r.err != nil {
		t.Fatalf("B.Campaign after A closed = %v", r.err)
	}
	defer r.l.Resign(ctx)
	if !r.at.Before(until) {
		t.Errorf("B elected at %v, after A's ValidUntil %v: Close did not resign", r.at, until)
	}
	if la.ValidUntil().After(r.at) {
		t.Errorf("A's ValidUntil %v is after B was elected (%v)", la.ValidUntil(), r.at)
	}
	if _, err := p.A.Campaign(ctx, "a"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Campaign after Close = %v, want %v", err, store.ErrClosed)
	}
}

package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/store"
)

// fakeTerm is a term of leadership whose end and ValidUntil a test sets.
type fakeTerm struct {
	term     int64
	done     chan struct{}
	endOnce  sync.Once
	mu       sync.Mutex
	until    time.Time
	resigned atomic.Bool
}

func newFakeTerm(term int64, until time.Time) *fakeTerm {
	return &fakeTerm{term: term, done: make(chan struct{}), until: until}
}

func (l *fakeTerm) Done() <-chan struct{}                     { return l.done }
func (l *fakeTerm) Fence(ctx context.Context) context.Context { return store.WithFence(ctx, l) }
func (l *fakeTerm) Term() int64                               { return l.term }
func (l *fakeTerm) end()                                      { l.endOnce.Do(func() { close(l.done) }) }

func (l *fakeTerm) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

func (l *fakeTerm) Resign(context.Context) error {
	l.resigned.Store(true)
	l.end()
	return nil
}

// recordingTransport records the deadline of each request it passes on.
type recordingTransport struct {
	next      http.RoundTripper
	mu        sync.Mutex
	deadlines []time.Time // zero: none
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	dl, _ := req.Context().Deadline()
	r.mu.Lock()
	r.deadlines = append(r.deadlines, dl)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// TestSendGuard: a request made under a term that has lapsed, or is within the margin of
// lapsing, or has ended, is refused and never reaches the server; one under a live term goes
// out with a deadline at ValidUntil minus the margin; one without a term goes out as it was.
func TestSendGuard(t *testing.T) {
	var reached atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		w.Write([]byte("ok"))
	}))
	defer ts.Close()
	now := time.Now()
	ended := newFakeTerm(3, now.Add(time.Hour))
	ended.end()
	live := newFakeTerm(4, now.Add(time.Hour))
	for _, tc := range []struct {
		name     string
		term     *fakeTerm // nil: no term
		refused  bool
		deadline time.Time // zero: none
	}{
		{"ValidUntil past", newFakeTerm(1, now.Add(-time.Second)), true, time.Time{}},
		{"ValidUntil within the margin", newFakeTerm(2, now.Add(sendMargin/2)), true, time.Time{}},
		{"term ended", ended, true, time.Time{}},
		{"live term", live, false, now.Add(time.Hour - sendMargin)},
		{"no term", nil, false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTransport{next: http.DefaultTransport}
			g := newSendGuard(rec)
			ctx := context.Background()
			if tc.term != nil {
				ctx = tc.term.Fence(ctx)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			before := reached.Load()
			resp, err := (&http.Client{Transport: g}).Do(req)
			if tc.refused {
				if !errors.Is(err, errTermLapsing) {
					t.Errorf("err = %v, want the request refused (%v)", err, errTermLapsing)
				}
				if resp != nil {
					resp.Body.Close()
				}
				if n := reached.Load() - before; n != 0 || len(rec.deadlines) != 0 {
					t.Errorf("a refused request reached the server %d times, the transport below %d", n, len(rec.deadlines))
				}
				return
			}
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			resp.Body.Close()
			if n := reached.Load() - before; n != 1 {
				t.Errorf("the request reached the server %d times, want 1", n)
			}
			if len(rec.deadlines) != 1 {
				t.Fatalf("the transport below saw %d requests, want 1", len(rec.deadlines))
			}
			if got := rec.deadlines[0]; !got.Equal(tc.deadline) {
				t.Errorf("deadline = %v, want %v", got, tc.deadline)
			}
		})
	}
}

// TestWiredClientGuardsTerms: the LivePerson client erasured wires sends nothing for a call
// made under a lapsed term (a deposed leader's pipeline), while the same call without a term (an
// RPC's) and under a live term reach LivePerson.
func TestWiredClientGuardsTerms(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	lp, _ := e.wire(t)
	list := func(ctx context.Context) error {
		// A short deadline: a refused call is not retried past it.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := lp.client.ListDeletions(ctx, a.ID, liveperson.DeletionFilter{})
		return err
	}
	calls := func() int { return len(e.sim.CallsTo(lpsim.ServiceRTBF, "")) }

	if err := list(newFakeTerm(1, time.Now().Add(-time.Second)).Fence(context.Background())); err == nil {
		t.Error("a call under a lapsed term succeeded")
	}
	if n := calls(); n != 0 {
		t.Errorf("a call under a lapsed term reached LivePerson %d times", n)
	}
	if err := list(context.Background()); err != nil {
		t.Errorf("a call without a term: %v", err)
	}
	if err := list(newFakeTerm(2, time.Now().Add(time.Hour)).Fence(context.Background())); err != nil {
		t.Errorf("a call under a live term: %v", err)
	}
	if n := calls(); n != 2 {
		t.Errorf("LivePerson saw %d deletion list calls, want 2 (without a term, and under the live one)", n)
	}
}

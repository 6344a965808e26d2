package main

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// submitBook hands out the subjects the multi-replica tests submit and keeps every Submit a
// replica acknowledged: the final checks find each of them again.
type submitBook struct {
	mu        sync.Mutex
	found     []*erasurev1.SubmitRequest // subjects with records in LivePerson
	nextFound int
	nextCheap int
	acked     map[string]string // request_id → erasure name
	reqs      map[string]*erasurev1.SubmitRequest
}

func newSubmitBook() *submitBook {
	return &submitBook{found: crashSubjects(150), acked: map[string]string{}, reqs: map[string]*erasurev1.SubmitRequest{}}
}

// withRecords is the next subject with records in LivePerson (its erasure creates deletion
// requests), or a cheap one once they are all used.
func (b *submitBook) withRecords() *erasurev1.SubmitRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nextFound < len(b.found) {
		b.nextFound++
		return b.found[b.nextFound-1]
	}
	b.nextCheap++
	return cheapSubject(b.nextCheap)
}

// cheap is the next subject without records: one lookup, then COMPLETED.
func (b *submitBook) cheap() *erasurev1.SubmitRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextCheap++
	return cheapSubject(b.nextCheap)
}

// submit submits req through c and records the answer if it is an acknowledgement.
func (b *submitBook) submit(ctx context.Context, c erasurev1.ErasureServiceClient, req *erasurev1.SubmitRequest) (*erasurev1.SubmitResponse, error) {
	res, err := c.Submit(ctx, req)
	if err == nil {
		b.mu.Lock()
		b.acked[req.GetRequestId()] = res.GetErasure().GetName()
		b.reqs[req.GetRequestId()] = req
		b.mu.Unlock()
	}
	return res, err
}

// submitSure submits req, first on replica prefer, then on the others in turn (the same
// request_id, as a client retries), until one acknowledges it within d; it fails the test
// otherwise.
func (b *submitBook) submitSure(e *procReplicas, prefer int, req *erasurev1.SubmitRequest, d time.Duration) string {
	e.t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for i := prefer; time.Now().Before(deadline); i++ {
		c := e.client(i % len(e.reps))
		if c == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		res, err := b.submit(ctx, c, req)
		cancel()
		if err == nil {
			return res.GetErasure().GetName()
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("Submit %s not acknowledged by any replica within %s: %v", req.GetRequestId(), d, last)
	return ""
}

// ackedNames is a copy of the acknowledged Submits.
func (b *submitBook) ackedNames() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(b.acked))
	for k, v := range b.acked {
		out[k] = v
	}
	return out
}

// waitTerminal waits until every erasure listed on a running replica is terminal, and
// returns them; it fails the test after d, listing the open ones.
func (e *procReplicas) waitTerminal(ctx context.Context, d time.Duration) []*erasurev1.Erasure {
	e.t.Helper()
	start := time.Now()
	for {
		var all []*erasurev1.Erasure
		var err error
		for i := range e.reps {
			if c := e.client(i); c != nil {
				all, err = listAll(ctx, c)
				break
			}
		}
		if err != nil {
			e.t.Fatalf("List: %v", err)
		}
		var open []*erasurev1.Erasure
		for _, x := range all {
			if !terminal(x.GetState()) {
				open = append(open, x)
			}
		}
		if len(open) == 0 {
			return all
		}
		if time.Since(start) > d {
			for _, x := range open {
				e.t.Logf("open: %s %s blocked %s next %v error %q requests %v held %v", x.GetName(), x.GetState(), x.GetBlockedOn(),
					x.GetNextAttemptTime().AsTime(), x.GetLastError(), x.GetLivepersonRequests(), x.GetHeldBatches())
			}
			e.t.Fatalf("%d of %d erasures not terminal after %s; lpsim seed=%d", len(open), len(all), d, e.seed)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// finalChecks are the checks every multi-replica run ends with: every acknowledged Submit is
// listed on every running replica and a retry of it on any replica answers the same erasure;
// every erasure reaches COMPLETED (within wait); no LivePerson deletion request was created
// twice; every replica's Watch history holds only allowed moves; no subject identifier reached
// a log.
func (e *procReplicas) finalChecks(b *submitBook, wait time.Duration) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
	defer cancel()
	acked := b.ackedNames()
	for i := range e.reps {
		c := e.client(i)
		if c == nil {
			continue
		}
		all, err := listAll(ctx, c)
		if err != nil {
			t.Fatalf("%s: List: %v", e.reps[i].name, err)
		}
		listed := map[string]bool{}
		for _, x := range all {
			listed[x.GetName()] = true
		}
		lost := 0
		for _, name := range acked {
			if !listed[name] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of the %d acknowledged erasures are not listed", e.reps[i].name, lost, len(acked))
		}
	}
	running := []int{}
	for i := range e.reps {
		if e.client(i) != nil {
			running = append(running, i)
		}
	}
	for id, name := range acked {
		c := e.client(running[rand.IntN(len(running))])
		b.mu.Lock()
		req := b.reqs[id]
		b.mu.Unlock()
		res, err := c.Submit(ctx, req)
		if err != nil || res.GetErasure().GetName() != name {
			t.Errorf("a retry of acknowledged request %s (%s): %s, %v", id, name, res.GetErasure().GetName(), err)
		}
	}
	all := e.waitTerminal(ctx, wait)
	states := map[erasurev1.State]int{}
	for _, x := range all {
		states[x.GetState()]++
	}
	if n := states[erasurev1.State_STATE_COMPLETED]; n != len(all) || len(all) < len(acked) {
		t.Errorf("states %v of %d erasures (%d acknowledged): want every one COMPLETED", states, len(all), len(acked))
	}
	stats := simStats(t, e.simAddr)
	if len(stats.Duplicates) > 0 {
		t.Errorf("LivePerson deletion requests created twice: %d bodies (of %d created); lpsim seed=%d",
			len(stats.Duplicates), stats.DeletionsCreated, e.seed)
	}
	for _, i := range running {
		checkHistoryOver(t, ctx, e.client(i))
	}
	logs := e.logs()
	for _, req := range b.found {
		if id := req.GetSubject().GetCustomerId(); strings.Contains(logs, id) {
			t.Errorf("a replica's log contains subject identifier %q", id)
		}
	}
	t.Logf("%d erasures (%d acknowledged), states %v; %d LivePerson deletion requests created (%d answers lost), %d twice; lpsim seed=%d",
		len(all), len(acked), states, stats.DeletionsCreated, lostCreates(t, e.simAddr), len(stats.Duplicates), e.seed)
}

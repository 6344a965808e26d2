package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// TestReplicasEndToEnd runs three replicas of the built binary, each its own process, over a
// three-member etcd cluster, with the pipeline against the standalone simulator (30% of create
// answers lost), and checks in turn:
//
//  1. a Submit on one replica is visible (Status, List) on the two others;
//  2. the same request_id sent to two replicas at the same moment, for 50 pairs, makes one
//     erasure per pair, both answers naming it;
//  3. the leader SIGKILLed while a create is on its way to LivePerson is replaced by another
//     replica;
//  4. a leader SIGSTOPped past its lease and then resumed sends nothing to LivePerson from its
//     resumption on, and no create after its lease ran out, while another replica took over;
//  5. with one etcd member stopped, Submits are acknowledged and their erasures complete;
//  6. a Watch read up to revision R on one replica and resumed on another from R+1 shows no gap
//     and no repeat, and equals a full read on the first.
//
// Then: every acknowledged Submit listed on every replica, every erasure COMPLETED, no deletion
// request created twice, every replica's Watch history allowed.
func TestReplicasEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas over an etcd cluster")
	}
	begin := time.Now()
	e := newProcReplicas(t, 3)
	b := newSubmitBook()
	t.Logf("three replicas and etcd up in %v; replica-%d leads", time.Since(begin).Round(time.Millisecond), e.leader(-1))

	// 1. A Submit on replica 0 is visible on 1 and 2.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := b.submit(ctx, e.client(0), b.withRecords())
	if err != nil {
		t.Fatalf("Submit on replica-0: %v", err)
	}
	name := res.GetErasure().GetName()
	for _, i := range []int{1, 2} {
		got, err := e.client(i).Status(ctx, &erasurev1.StatusRequest{Name: name})
		if err != nil || got.GetErasure().GetName() != name {
			t.Errorf("replica-%d: Status(%s) = %s, %v; want the erasure submitted on replica-0", i, name, got.GetErasure().GetName(), err)
		}
		all, err := listAll(ctx, e.client(i))
		if err != nil || !listed(all, name) {
			t.Errorf("replica-%d: List does not hold %s (err %v)", i, name, err)
		}
	}

	// 2. The same request_id on replicas 0 and 1 at once, for many pairs.
	racePairs(t, ctx, e, b, 50)

	// 3. The leader dies while a create is in flight; another replica leads.
	l := e.leader(-1)
	release := e.reps[l].proxy.holdCreates()
	for k := range 12 {
		b.submitSure(e, k, b.withRecords(), 10*time.Second)
	}
	waitCreate(t, e.reps[l].proxy, 60*time.Second)
	e.kill(l)
	release()
	killedAt := time.Now()
	next := e.waitLeader(30*time.Second, -1)
	t.Logf("3: replica-%d SIGKILLed with a create in flight; replica-%d leads after %v", l, next, time.Since(killedAt).Round(time.Millisecond))
	e.start(l)

	// 4. The leader is paused past its lease, then resumed.
	paused := e.waitLeader(10*time.Second, -1)
	release = e.reps[paused].proxy.holdCreates()
	for k := range 8 {
		b.submitSure(e, paused+1+k, b.withRecords(), 10*time.Second)
	}
	waitCreate(t, e.reps[paused].proxy, 60*time.Second)
	e.signal(paused, syscall.SIGSTOP)
	stoppedAt := time.Now()
	release()
	leaseEnd := stoppedAt.Add(replicaLease)
	next = e.waitLeader(30*time.Second, paused)
	// Let the new leader's pipeline start (after its take-over wait) before the old one runs.
	time.Sleep(takeoverWait + time.Second)
	e.signal(paused, syscall.SIGCONT)
	resumedAt := time.Now()
	t.Logf("4: replica-%d SIGSTOPped with a create in flight, replica-%d leads, resumed after %v",
		paused, next, resumedAt.Sub(stoppedAt).Round(time.Millisecond))
	waitFor(t, 15*time.Second, fmt.Sprintf("replica-%d to log the end of its term", paused), func() bool {
		for _, ll := range e.leaderships(paused) {
			if !ll.acquired && ll.at.After(stoppedAt) {
				return true
			}
		}
		return false
	})

	// 5. One etcd member down: Submits are acknowledged, their erasures complete (checked below,
	// before the member is back).
	e.etcd.Stop(0)
	var during []string
	for k := range 4 {
		during = append(during, b.submitSure(e, k, b.withRecords(), 20*time.Second))
	}
	for k := range 10 {
		during = append(during, b.submitSure(e, k, b.cheap(), 20*time.Second))
	}

	// 6. A Watch resumed on another replica.
	watchResume(t, ctx, e.client(0), e.client(1))

	waitFor(t, 2*time.Minute, "the erasures submitted with an etcd member down to complete", func() bool {
		for _, n := range during {
			x, err := e.client(2).Status(ctx, &erasurev1.StatusRequest{Name: n})
			if err != nil || x.GetErasure().GetState() != erasurev1.State_STATE_COMPLETED {
				return false
			}
		}
		return true
	})
	e.etcd.Restart(0)

	e.finalChecks(b, 2*time.Minute)
	checkPausedSentNothing(t, e, paused, resumedAt, leaseEnd)
	e.stopAll()
	t.Logf("done in %v", time.Since(begin).Round(time.Second))
}

func listed(all []*erasurev1.Erasure, name string) bool {
	for _, x := range all {
		if x.GetName() == name {
			return true
		}
	}
	return false
}

// waitCreate waits until a create arrives at the proxy (since holdCreates).
func waitCreate(t *testing.T, p *lpProxy, d time.Duration) {
	t.Helper()
	select {
	case <-p.creates:
	case <-time.After(d):
		t.Fatalf("no deletion request created through the leader within %s", d)
	}
}

// racePairs sends each of n new requests to replicas 0 and 1 at the same moment (a barrier
// releases all 2n calls together) and checks that both answers of a pair name the same erasure,
// and that n erasures were added.
func racePairs(t *testing.T, ctx context.Context, e *procReplicas, b *submitBook, n int) {
	t.Helper()
	before, err := listAll(ctx, e.client(0))
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		name string
		err  error
	}
	answers := make([][2]answer, n)
	barrier := make(chan struct{})
	var wg sync.WaitGroup
	for p := range n {
		req := b.cheap()
		for side := range 2 {
			c := e.client(side)
			wg.Go(func() {
				<-barrier
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				res, err := b.submit(cctx, c, req)
				answers[p][side] = answer{res.GetErasure().GetName(), err}
			})
		}
	}
	close(barrier)
	wg.Wait()
	names := map[string]bool{}
	for p, a := range answers {
		if a[0].err != nil || a[1].err != nil || a[0].name != a[1].name {
			t.Errorf("pair %d: replica-0 answered %q (%v), replica-1 %q (%v); want both to name one erasure", p, a[0].name, a[0].err, a[1].name, a[1].err)
		}
		names[a[0].name] = true
	}
	after, err := listAll(ctx, e.client(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != n || len(after) != len(before)+n {
		t.Errorf("%d pairs sent to two replicas at once: %d names answered, %d erasures added; want %d and %d", n, len(names), len(after)-len(before), n, n)
	}
}

// watchResume reads the change history from revision 1 on a until about half of it, then
// resumes on b from the last revision read plus one, up to the end; the revisions must follow
// each other with neither gap nor repeat, and the whole equal a full read on a.
func watchResume(t *testing.T, ctx context.Context, a, b erasurev1.ErasureServiceClient) {
	t.Helper()
	end := lastRevision(t, ctx, a)
	first, err := readWatch(ctx, a, 1, end/2)
	if err != nil {
		t.Fatalf("Watch on replica-0: %v", err)
	}
	r := first[len(first)-1].GetRevision()
	end = lastRevision(t, ctx, b)
	rest, err := readWatch(ctx, b, r+1, end)
	if err != nil {
		t.Fatalf("Watch on replica-1 from %d: %v", r+1, err)
	}
	joined := append(first, rest...)
	for i, ev := range joined {
		if ev.GetRevision() != int64(i+1) {
			t.Fatalf("resumed Watch: event %d has revision %d, want %d (read up to %d on replica-0, then from %d on replica-1)",
				i, ev.GetRevision(), i+1, r, r+1)
		}
	}
	full, err := readWatch(ctx, a, 1, end)
	if err != nil {
		t.Fatalf("full Watch on replica-0: %v", err)
	}
	full = full[:min(len(full), len(joined))]
	if len(full) != len(joined) {
		t.Fatalf("full Watch on replica-0 has %d events up to %d, the resumed one %d", len(full), end, len(joined))
	}
	var evs []service.Event
	for i, ev := range joined {
		f := full[i]
		if f.GetRevision() != ev.GetRevision() || f.GetErasure().GetName() != ev.GetErasure().GetName() ||
			f.GetErasure().GetState() != ev.GetErasure().GetState() || f.GetPreviousState() != ev.GetPreviousState() {
			t.Fatalf("revision %d: resumed Watch %s %s→%s, full read %s %s→%s", ev.GetRevision(),
				ev.GetErasure().GetName(), ev.GetPreviousState(), ev.GetErasure().GetState(),
				f.GetErasure().GetName(), f.GetPreviousState(), f.GetErasure().GetState())
		}
		evs = append(evs, eventFromProto(ev))
	}
	if err := service.CheckHistory(evs); err != nil {
		t.Errorf("the resumed Watch history holds a move the transition table does not allow: %v", err)
	}
	t.Logf("6: Watch read up to revision %d on replica-0, resumed on replica-1 up to %d: consecutive, equal to a full read", r, end)
}

// lastRevision is the newest revision any erasure listed on c carries.
func lastRevision(t *testing.T, ctx context.Context, c erasurev1.ErasureServiceClient) int64 {
	t.Helper()
	all, err := listAll(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for _, x := range all {
		last = max(last, x.GetRevision())
	}
	return last
}

// readWatch watches every erasure from revision from until a response reaches revision until
// (in its events or its progress), and returns the events read.
func readWatch(ctx context.Context, c erasurev1.ErasureServiceClient, from, until int64) ([]*erasurev1.WatchEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &erasurev1.WatchRequest{StartRevision: from})
	if err != nil {
		return nil, err
	}
	var out []*erasurev1.WatchEvent
	for {
		res, err := w.Recv()
		if err != nil {
			return out, err
		}
		out = append(out, res.GetEvents()...)
		reached := res.GetProgressRevision()
		if n := len(out); n > 0 {
			reached = max(reached, out[n-1].GetRevision())
		}
		if reached >= until && len(out) > 0 {
			return out, nil
		}
	}
}

// checkPausedSentNothing: the replica paused past its lease sent LivePerson no request after it
// was resumed, and no create after its lease ran out, unless it led again later (then up to
// that term's start only).
func checkPausedSentNothing(t *testing.T, e *procReplicas, i int, resumedAt, leaseEnd time.Time) {
	t.Helper()
	until := time.Now()
	for _, ll := range e.leaderships(i) {
		if ll.acquired && ll.at.After(resumedAt) {
			until = ll.at
			t.Logf("replica-%d led again from %v after its resumption (term %s)", i, ll.at.Sub(resumedAt).Round(time.Millisecond), ll.term)
			break
		}
	}
	sent, creates := 0, 0
	for _, r := range e.reps[i].proxy.since(leaseEnd) {
		if !r.at.Before(until) {
			continue
		}
		if r.create() {
			creates++
		}
		if r.at.After(resumedAt) {
			sent++
			t.Logf("replica-%d after its resumption: %s %s at +%v", i, r.method, r.path, r.at.Sub(resumedAt).Round(time.Millisecond))
		}
	}
	if sent > 0 || creates > 0 {
		t.Errorf("replica-%d, paused past its lease: %d requests to LivePerson after its resumption, %d creates after its lease ran out; want none",
			i, sent, creates)
	}
}

package main

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// The replica crash harness: three replicas of the built binary over a three-member etcd
// cluster, with the pipeline against the standalone simulator (30% of create answers lost), as
// TestReplicasEndToEnd sets them up. Submits go to the running replicas throughout, while
// replicas are SIGKILLed at random moments, the leader or a follower chosen at random, each
// restarted at once. Then: every acknowledged Submit listed on every replica and answered again
// by a retry, every erasure COMPLETED, no LivePerson deletion request created twice, every
// Watch history allowed.
//
//	ERASURED_CRASH_REPLICA_CYCLES  kills (default 6; `make crash-replicas` runs 30)
//	ERASURED_CRASH_REPLICA_SEED    the choice of victims and moments (else random; logged)
//	ERASURED_LPSIM_SEED            the simulator's readings (see e2e_variants_test.go)

func TestCrashReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas over an etcd cluster")
	}
	cycles := envCycles("ERASURED_CRASH_REPLICA_CYCLES", 6)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("ERASURED_CRASH_REPLICA_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ERASURED_CRASH_REPLICA_SEED must be an unsigned integer: %v", err)
		}
		seed = s
	}
	t.Logf("replica crash seed=%d (ERASURED_CRASH_REPLICA_SEED), %d kills", seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 0x7e91))
	begin := time.Now()
	e := newProcReplicas(t, 3)
	b := newSubmitBook()

	// Submitters: each Submit goes to a running replica chosen at random; one not acknowledged
	// is sent again later, with its request_id, maybe to another replica.
	var mu sync.Mutex
	var retry []*erasurev1.SubmitRequest
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wrng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				var req *erasurev1.SubmitRequest
				if len(retry) > 0 {
					req, retry = retry[0], retry[1:]
				}
				mu.Unlock()
				if req == nil {
					// One in eight has records in LivePerson: deletion requests are created
					// (and answers lost) throughout the run.
					if wrng.IntN(8) == 0 {
						req = b.withRecords()
					} else {
						req = b.cheap()
					}
				}
				ok := false
				if c := e.client(wrng.IntN(len(e.reps))); c != nil {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err := b.submit(ctx, c, req)
					cancel()
					ok = err == nil
				}
				if !ok {
					mu.Lock()
					retry = append(retry, req)
					mu.Unlock()
				}
				time.Sleep(time.Duration(20+wrng.IntN(60)) * time.Millisecond)
			}
		})
	}

	leaders := 0
	for c := range cycles {
		// A leader is elected (after a leader's kill, its lease runs out first), then the kill
		// comes at a random moment of its term: often within its take-over wait, or while it
		// works.
		e.waitLeader(30*time.Second, -1)
		time.Sleep(time.Duration(300+rng.IntN(2700)) * time.Millisecond)
		l := e.leader(-1)
		victim, what := rng.IntN(len(e.reps)), "follower"
		switch {
		case l >= 0 && rng.IntN(2) == 0:
			victim = l
		case l >= 0 && victim == l:
			victim = (l + 1 + rng.IntN(len(e.reps)-1)) % len(e.reps)
		case l < 0:
			what = "replica (no leader known)"
		}
		if victim == l {
			what = "leader"
			leaders++
		}
		e.kill(victim)
		e.start(victim)
		t.Logf("kill %d: replica-%d, the %s, at %v; %d Submits acknowledged", c+1, victim, what,
			time.Since(begin).Round(time.Millisecond), len(b.ackedNames()))
	}
	close(stop)
	wg.Wait()
	for _, req := range retry {
		b.submitSure(e, rng.IntN(len(e.reps)), req, 20*time.Second)
	}
	t.Logf("%d kills (%d of the leader) in %v", cycles, leaders, time.Since(begin).Round(time.Second))
	e.finalChecks(b, 3*time.Minute)
	e.stopAll()
	t.Logf("done in %v; replica crash seed=%d", time.Since(begin).Round(time.Second), seed)
}

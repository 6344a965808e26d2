package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/port"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// monthAccount is the month scenario's one LivePerson account.
const monthAccount = "90210013"

// monthOutcome is what one run of a month (one demand level, one flush policy) left behind:
// erasured's view of every erasure and LivePerson's record of every deletion request.
type monthOutcome struct {
	Policy    pipeline.FlushPolicy
	Demand    *monthDemand
	Erasures  []service.Erasure // the i-th for the i-th subject, read by Status at the end
	Submitted int
	// From Watch, per erasure id: when it left RESOLVING (its records queued), and when it
	// was first shown at risk.
	Queued, AtRiskSeen map[string]time.Time
	Deletions          []lpsim.Deletion    // what LivePerson saw, oldest first
	Formed             map[int64]time.Time // when erasured formed each request's batch, by LivePerson id
	Duplicates         int                 // deletion bodies created more than once
	Erased, Records    int                 // subjects' records the simulator shows masked, of all
	WronglyErased      int                 // other people's records masked
	Real               time.Duration       // real time the run took
	End                time.Time           // the clock when it stopped
	Unfinished         int                 // erasures not final when it stopped
	Warnings           map[string]int
}

// runMonth runs one month of d's arrivals against a fresh simulator and store under dir, with
// the given flush policy, until every erasure is final or the clock passes bound after the
// month's start.
func runMonth(ctx context.Context, dir string, cfg MonthConfig, d *monthDemand, policy pipeline.FlushPolicy) (monthOutcome, error) {
	out := monthOutcome{Policy: policy, Demand: d, Queued: map[string]time.Time{}, AtRiskSeen: map[string]time.Time{}}
	began := time.Now()
	clock := lpsim.NewFastClock(monthStart, cfg.Speed)

	// LivePerson: the simulator on loopback, on the fast clock, its quota the month's, its
	// searches fast and their rate limit high: the month measures the quota, not searching.
	acct := lpsim.DefaultAccount(monthAccount, "us")
	acct.MonthlyQuota = d.Quota
	limits := map[string]float64{}
	for _, s := range searchServices {
		limits[s] = cfg.SearchRate
	}
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}, Clock: clock, Seed: cfg.Seed,
		TokenTTL: time.Duration(float64(time.Hour) * cfg.Speed), RateLimits: limits})
	defer sim.Close()
	background := lpsim.Generate(cfg.Seed, lpsim.GenOptions{Now: clock.Now(), Accounts: []string{acct.ID}, Consumers: cfg.Background})
	if err := sim.Load(background); err != nil {
		return out, err
	}
	if cfg.Latency > 0 {
		for _, s := range searchServices {
			sim.AddFault(lpsim.Fault{Service: s, Kind: lpsim.FaultLatency, Probability: 1, Latency: cfg.Latency})
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return out, err
	}
	handler := sim.Handler()
	if cfg.HoldSearches {
		handler = holdDuringSearches(clock, handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	defer func() {
		sim.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()

	// erasured as the pipeline scenario wires it, on the same clock, with the production
	// defaults except the quota, the flush policy and the clock; the retention is long so that
	// nothing is shredded before it is read.
	db, keys, err := openScratch(dir)
	if err != nil {
		return out, err
	}
	defer db.Close()
	logs := &countingHandler{counts: map[string]int{}}
	var sdb service.Store = db
	if cfg.HoldSearches {
		sdb = holdingDB{DB: db, clock: clock}
	}
	svc, err := service.New(sdb, keys, service.Config{
		DefaultConfirmation: service.ConfirmationAutomatic,
		Now:                 clock.Now,
		Logger:              slog.New(logs),
		Accounts:            []string{acct.ID},
		Retention:           365 * 24 * time.Hour,
	})
	if err != nil {
		return out, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	client, err := newPipelineClient("http://"+lis.Addr().String(), acct,
		PipelineConfig{SearchRate: cfg.SearchRate, Concurrency: cfg.Workers}, &http.Client{Transport: transport}, nil)
	if err != nil {
		return out, err
	}
	var maxWait time.Duration // the production default, no bound, except for the fixed 6 h flush
	if policy == pipeline.FlushMaxWait {
		maxWait = 6 * time.Hour
	}
	pipe := svc.NewPipeline(port.New(client), service.PipelineConfig{
		BatchMaxWait: maxWait,
		Quota:        func(string) int { return d.Quota },
		Workers:      cfg.Workers,
		Flush:        policy,
		After:        clock.After,
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := svc.Watch(ctx, "", 0)
	if err != nil {
		return out, err
	}
	tr := &monthTracker{queued: out.Queued, atRisk: out.AtRiskSeen, final: map[string]bool{}, waits: map[string]time.Time{}}
	watchDone := make(chan error, 1)
	go func() { watchDone <- tr.follow(ctx, svc, w) }()
	work, stopWork := context.WithCancel(context.Background())
	pipeDone := make(chan struct{})
	go func() { defer close(pipeDone); _ = pipe.Run(work) }()
	stop := func() { stopWork(); <-pipeDone }
	defer stop()

	// Arrivals: each subject's records appear in the simulator when it arrives, then it is
	// submitted, received now.
	ids := make([]string, len(d.Subjects))
	for i := range d.Subjects {
		s := &d.Subjects[i]
		for wait := monthStart.Add(s.arrive).Sub(clock.Now()); wait > 0; wait = monthStart.Add(s.arrive).Sub(clock.Now()) {
			select {
			case <-clock.After(wait):
			case <-ctx.Done():
				return out, ctx.Err()
			}
		}
		if err := s.create(sim, clock.Now()); err != nil {
			return out, fmt.Errorf("subject %d: %w", i, err)
		}
		r, err := svc.Submit(ctx, service.SubmitRequest{RequestID: uuid.NewString(), AccountID: acct.ID,
			Subject: service.Subject{Kind: service.SubjectCustomerID, Value: s.customerID}, EraseConsumerProfile: s.profile})
		if err != nil {
			return out, fmt.Errorf("submit subject %d: %w", i, err)
		}
		if r.Deduplicated {
			return out, fmt.Errorf("subject %d was deduplicated", i)
		}
		ids[i] = r.Erasure.ID
		out.Submitted++
	}

	// Run on until every erasure is final or the clock passes the bound, or nothing can change
	// before the bound: every open erasure waits for a quota that LivePerson has seen spent this
	// month and that renews only at or after the bound.
	bound := monthStart.Add(cfg.Bound)
	spentUntilBound := func() bool {
		now := clock.Now()
		if pipeline.NextMonth(now).Before(bound) || !tr.allWaitQuota(ids, bound) {
			return false
		}
		used := 0
		for _, del := range sim.Deletions(acct.ID) {
			if pipeline.Month(del.Created) == pipeline.Month(now) {
				used++
			}
		}
		return used >= d.Quota
	}
	var waitErr error
	for tick := time.NewTicker(10 * time.Millisecond); ; {
		if tr.allFinal(ids) || !clock.Now().Before(bound) || spentUntilBound() {
			tick.Stop()
			break
		}
		select {
		case <-tick.C:
		case err := <-watchDone:
			waitErr = fmt.Errorf("watch ended: %v", err)
		}
		if waitErr != nil {
			tick.Stop()
			break
		}
	}
	out.End = clock.Now()
	stop()
	cancel()
	if waitErr == nil {
		<-watchDone // the watcher has stopped: its maps are ours now
	}

	// Collect: erasured's view of each erasure, LivePerson's of each request and record.
	out.Erasures = make([]service.Erasure, len(ids))
	for i, id := range ids {
		e, err := svc.Status(context.Background(), service.NamePrefix+id)
		if err != nil {
			return out, errors.Join(waitErr, err)
		}
		out.Erasures[i] = e
		if !e.State.Final() {
			out.Unfinished++
		}
	}
	out.Deletions = sim.Deletions(acct.ID)
	if out.Formed, err = batchesFormed(db); err != nil {
		return out, errors.Join(waitErr, err)
	}
	out.Duplicates = len(sim.Stats().Duplicates)
	subjects := make([]benchSubject, len(d.Subjects))
	for i, s := range d.Subjects {
		subjects[i] = s.benchSubject
	}
	out.Erased, out.Records, out.WronglyErased = erased(sim, acct.ID, subjects, background)
	out.Warnings = logs.snapshot()
	out.Real = time.Since(began)
	return out, waitErr
}

// monthTracker follows every erasure through Watch: when its records were queued (it left
// RESOLVING), when it was first shown at risk, and whether it is final.
type monthTracker struct {
	mu             sync.Mutex
	queued, atRisk map[string]time.Time
	final          map[string]bool
	waits          map[string]time.Time // open erasures blocked on quota: until when
}

// follow reads events until ctx ends, resuming after a watch the service ended.
func (t *monthTracker) follow(ctx context.Context, svc *service.Service, w *service.Watch) error {
	return followEvents(ctx, svc, w, func(evs []service.Event) {
		t.mu.Lock()
		for _, ev := range evs {
			e := ev.Erasure
			if ev.PreviousState == service.StateResolving && e.State != service.StateResolving {
				if _, ok := t.queued[e.ID]; !ok {
					t.queued[e.ID] = ev.Time
				}
			}
			if e.AtRisk {
				if _, ok := t.atRisk[e.ID]; !ok {
					t.atRisk[e.ID] = ev.Time
				}
			}
			if e.State.Final() {
				t.final[e.ID] = true
			}
			if e.BlockedOn == service.BlockedQuota && !e.State.Final() {
				t.waits[e.ID] = e.NextAttemptTime
			} else {
				delete(t.waits, e.ID)
			}
		}
		t.mu.Unlock()
	})
}

// allFinal reports whether every erasure of ids has reached a final state.
func (t *monthTracker) allFinal(ids []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if !t.final[id] {
			return false
		}
	}
	return true
}

// allWaitQuota reports whether every erasure of ids not final waits for quota until bound or
// later (and at least one does).
func (t *monthTracker) allWaitQuota(ids []string, bound time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	waiting := 0
	for _, id := range ids {
		if t.final[id] {
			continue
		}
		until, ok := t.waits[id]
		if !ok || until.Before(bound) {
			return false
		}
		waiting++
	}
	return waiting > 0
}

// holdingDB stops the clock while a write transaction commits: the store's sync takes no time
// of the month either.
type holdingDB struct {
	store.DB
	clock *lpsim.FastClock
}

// Update is the store's Update with the clock held.
func (h holdingDB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	h.clock.Hold()
	defer h.clock.Release()
	return h.DB.Update(ctx, fn)
}

// holdDuringSearches stops the clock while a search call (Engagement History, Messaging
// Interactions) is being answered: searching takes no time of the month, so that the run
// measures the quota and the flush policy, not how fast this machine answers searches.
func holdDuringSearches(clock *lpsim.FastClock, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/interaction_history/") || strings.HasPrefix(r.URL.Path, "/messaging_history/") {
			clock.Hold()
			defer clock.Release()
		}
		h.ServeHTTP(w, r)
	})
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/port"
	"github.com/erasured/erasured/liveperson/region"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// PipelineConfig shapes the pipeline scenario: Subjects data subjects submitted at once to
// erasured's pipeline, against the LivePerson simulator with LivePerson-like latency and a
// search rate limit, its clock running Speed times faster than real time.
type PipelineConfig struct {
	Subjects        int           // data subjects, one erasure each (default 1000)
	Background      int           // generated consumers whose records fill the account (default 500)
	SearchRate      float64       // requests/s the simulator allows per search service, and the client is told (default 200)
	Latency         time.Duration // added to every Engagement History and Messaging Interactions call (default 80ms)
	DeletionLatency time.Duration // added to every Personal Data Deletion call (default 150ms)
	Speed           float64       // simulator clock speed: 86400 makes LivePerson's 5 + 20 days take 25 s (default)
	Workers         int           // pipeline workers (default: enough for both search limits, see withDefaults)
	Concurrency     int           // client's requests in flight per search service (default Workers)
	BatchMaxWait    time.Duration // pipeline.batch_max_wait, an upper bound on a part-full batch's wait (default 0: none)
	PollInterval    time.Duration // pipeline.poll_interval (default 1s)
	Timeout         time.Duration // gives up after this long (default 10m)
	Seed            uint64
}

func (c PipelineConfig) withDefaults() PipelineConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Subjects, 1000)
	def(&c.Background, 500)
	defDur(&c.Latency, 80*time.Millisecond)
	defDur(&c.DeletionLatency, 150*time.Millisecond)
	defDur(&c.PollInterval, time.Second)
	defDur(&c.Timeout, 10*time.Minute)
	if c.SearchRate <= 0 {
		c.SearchRate = 500
	}
	// A worker runs one erasure's searches one after another, so the searches in flight are at
	// most the workers: using both services' limits at this latency takes (Little's law)
	// 2 × rate × latency of them.
	def(&c.Workers, max(4, int(math.Ceil(2*c.SearchRate*c.Latency.Seconds()))))
	def(&c.Concurrency, c.Workers)
	if c.Speed <= 0 {
		c.Speed = 86400
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// scale turns a LivePerson duration into the real time it takes on the simulator's clock.
func (c PipelineConfig) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.Speed)
}

// The pipeline scenario's account. Its monthly quota is set far above LivePerson's 100 on both
// sides, so that poor packing shows as requests used instead of stalling the run until the
// month turns; the report relates the count to the real quota.
const (
	pipelineAccount = "90210001"
	pipelineQuota   = 100_000
	// LivePerson's timings, which erasured and the simulator both run scaled.
	lpCancelWindow   = 120 * time.Hour
	lpDeletionWindow = 480 * time.Hour
	lpSearchLag      = 2 * time.Hour
)

// Search services: the ones the scenario rate-limits.
var searchServices = []string{lpsim.ServiceEngHist, lpsim.ServiceMsgHist}

// RunPipeline runs the pipeline scenario once on a fresh store under dir.
func RunPipeline(ctx context.Context, dir string, cfg PipelineConfig) (PipelineResult, error) {
	cfg = cfg.withDefaults()
	res := PipelineResult{Config: cfg}

	// LivePerson: the simulator on loopback, its clock fast, searches and deletion calls slowed
	// to LivePerson-like latencies, searches rate-limited per service (in real time).
	clock := lpsim.ScaledClock(cfg.Speed)
	acct := lpsim.DefaultAccount(pipelineAccount, "us")
	acct.MonthlyQuota = pipelineQuota
	limits := map[string]float64{}
	for _, s := range searchServices {
		limits[s] = cfg.SearchRate
	}
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}, Clock: clock, Seed: cfg.Seed,
		TokenTTL: time.Duration(float64(time.Hour) * cfg.Speed), RateLimits: limits})
	defer sim.Close()
	background := lpsim.Generate(cfg.Seed, lpsim.GenOptions{Now: clock.Now(), Accounts: []string{acct.ID}, Consumers: cfg.Background})
	if err := sim.Load(background); err != nil {
		return res, err
	}
	subjects, err := benchSubjects(sim, acct.ID, cfg.Subjects, cfg.Seed, clock.Now())
	if err != nil {
		return res, err
	}
	res.Targets = map[service.TargetKind]int{}
	for _, s := range subjects {
		for k, n := range s.targets() {
			res.Targets[k] += n
		}
	}
	for _, f := range []lpsim.Fault{
		{Service: lpsim.ServiceEngHist, Latency: cfg.Latency},
		{Service: lpsim.ServiceMsgHist, Latency: cfg.Latency},
		{Service: lpsim.ServiceRTBF, Latency: cfg.DeletionLatency},
	} {
		f.Kind, f.Probability = lpsim.FaultLatency, 1
		sim.AddFault(f)
	}
	calls := &callLog{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	srv := &http.Server{Handler: calls.wrap(sim.Handler()), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	defer func() {
		sim.Close() // releases requests held by latency faults
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()

	// erasured: store, service and pipeline as cmd/erasured wires them in the sandbox (timings
	// scaled to the simulator's clock), its LivePerson client told the search rate limit.
	db, keys, err := openScratch(dir)
	if err != nil {
		return res, err
	}
	defer db.Close()
	logs := &countingHandler{counts: map[string]int{}}
	svc, err := service.New(db, keys, service.Config{
		DefaultConfirmation: service.ConfirmationAutomatic,
		Logger:              slog.New(logs),
		CancelWindow:        cfg.scale(lpCancelWindow),
		DeletionWindow:      cfg.scale(lpDeletionWindow),
		Accounts:            []string{acct.ID},
		PollInterval:        cfg.PollInterval,
	})
	if err != nil {
		return res, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone() // what cmd/erasured gets, closable
	defer transport.CloseIdleConnections()
	var throttled [2]atomic.Int64
	client, err := newPipelineClient("http://"+lis.Addr().String(), acct, cfg, &http.Client{Transport: transport},
		func(o liveperson.Observation) {
			if o.Status == http.StatusTooManyRequests {
				for i, s := range searchServices {
					if o.Service == s {
						throttled[i].Add(1)
					}
				}
			}
		})
	if err != nil {
		return res, err
	}
	pipe := svc.NewPipeline(port.New(client), service.PipelineConfig{
		SearchLag:    cfg.scale(lpSearchLag),
		BatchMaxWait: cfg.BatchMaxWait,
		Quota:        func(string) int { return pipelineQuota },
		Workers:      cfg.Workers,
	})
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	tr := newTracker(cfg.Subjects)
	w, err := svc.Watch(ctx, "", 0)
	if err != nil {
		return res, err
	}
	var watchErr error
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); watchErr = tr.follow(ctx, svc, w) }()
	stopWatch := func() { cancel(); <-watchDone }
	defer stopWatch()
	work, stopWork := context.WithCancel(context.Background())
	pipeDone := make(chan struct{})
	go func() { defer close(pipeDone); _ = pipe.Run(work) }()
	defer func() { stopWork(); <-pipeDone }()

	// Submit every subject at once, then wait until every erasure is final.
	start, simStart := time.Now(), clock.Now()
	ids, err := submitSubjects(ctx, svc, acct.ID, subjects)
	res.SubmitTime = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("submit: %w", err)
	}
	tr.expect(ids)
	var waitErr error
	select {
	case <-tr.done:
	case <-watchDone:
		if watchErr != nil {
			waitErr = fmt.Errorf("watch: %w", watchErr)
			break
		}
		waitErr = fmt.Errorf("not every erasure ended within %v: %w", cfg.Timeout, ctx.Err())
	}
	stopWork()
	<-pipeDone
	stopWatch()

	// Collect.
	res.collectTimes(tr, ids, start)
	st, err := svc.Stats()
	if err != nil {
		return res, errors.Join(waitErr, err)
	}
	res.ByState = st.ByState
	formed, err := batchesFormed(db)
	if err != nil {
		return res, errors.Join(waitErr, err)
	}
	res.Requests = map[service.TargetKind][]int{}
	res.Formed, res.Sent = map[service.TargetKind][]time.Duration{}, map[service.TargetKind][]time.Duration{}
	for _, d := range sim.Deletions(acct.ID) {
		k := map[string]service.TargetKind{"engagement": service.KindEngagement,
			"conversation": service.KindConversation, "consumer": service.KindConsumer}[d.Kind]
		res.Requests[k] = append(res.Requests[k], len(d.IDs))
		res.Formed[k] = append(res.Formed[k], formed[d.ID].Sub(start))
		res.Sent[k] = append(res.Sent[k], time.Duration(float64(d.Created.Sub(simStart))/cfg.Speed))
	}
	res.Duplicates = len(sim.Stats().Duplicates)
	res.Erased, res.Records, res.WronglyErased = erased(sim, acct.ID, subjects, background)
	res.Calls = calls.summarize(start, start.Add(res.ResolvePhase))
	for i := range searchServices {
		res.ClientThrottled += int(throttled[i].Load())
	}
	res.Warnings = logs.snapshot()
	if waitErr != nil {
		waitErr = fmt.Errorf("%w (erasures by state: %s)", waitErr, stateCounts(res.ByState))
	}
	return res, waitErr
}

// batchesFormed reads when erasured formed each batch (committed its intent), by LivePerson
// request id, from the batch records the service keeps in the store.
func batchesFormed(db store.DB) (map[int64]time.Time, error) {
	out := map[int64]time.Time{}
	err := db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Batches, nil, func(_, v []byte) (bool, error) {
			var b struct {
				LPID    int64     `json:"lp_id"`
				Created time.Time `json:"created"`
			}
			if err := json.Unmarshal(v, &b); err != nil {
				return false, err
			}
			out[b.LPID] = b.Created
			return true, nil
		})
	})
	return out, err
}

// newPipelineClient builds the LivePerson client as cmd/erasured's newLivePerson does (the
// regional router in loopback test mode, OAuth 2.0 client credentials through sentinel, source
// "erasured"), plus what the benchmark knows and cmd/erasured does not: the search rate limit.
func newPipelineClient(domainURL string, acct lpsim.Account, cfg PipelineConfig, hc *http.Client, observe func(liveperson.Observation)) (*liveperson.Client, error) {
	opts := []liveperson.Option{liveperson.WithHTTPClient(hc)}
	router, err := region.New(region.Config{DomainAPIURL: domainURL, Accounts: map[string]string{acct.ID: "us"}, Options: opts})
	if err != nil {
		return nil, err
	}
	if !router.TestMode() {
		return nil, errors.New("the regional router is not in loopback test mode")
	}
	auth, err := liveperson.NewOAuth2(liveperson.OAuth2Config{
		Credentials: map[string]liveperson.ClientCredentials{acct.ID: {ClientID: acct.ClientID, ClientSecret: acct.ClientSecret}},
		Resolver:    router,
		Options:     opts,
	})
	if err != nil {
		return nil, err
	}
	limit := liveperson.RateLimit{Rate: cfg.SearchRate, Concurrency: cfg.Concurrency}
	return liveperson.New(append(opts, liveperson.WithResolver(router), liveperson.WithAuth(auth),
		liveperson.WithSource("erasured"), liveperson.WithObserver(observe),
		liveperson.WithRateLimit(liveperson.ServiceEngagements, limit),
		liveperson.WithRateLimit(liveperson.ServiceMessaging, limit))...)
}

// submitSubjects submits one erasure per subject from 16 callers through the service (no gRPC:
// the scenario measures the pipeline) and returns the erasure ids, the i-th for the i-th subject.
func submitSubjects(ctx context.Context, svc *service.Service, account string, subjects []benchSubject) ([]string, error) {
	const callers = 16
	ids := make([]string, len(subjects))
	errs := make([]error, callers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(subjects) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				s := subjects[i]
				r, err := svc.Submit(ctx, service.SubmitRequest{RequestID: uuid.NewString(), AccountID: account,
					Subject: service.Subject{Kind: service.SubjectCustomerID, Value: s.customerID}, EraseConsumerProfile: s.profile})
				if err != nil {
					errs[c] = err
					return
				}
				if r.Deduplicated {
					errs[c] = fmt.Errorf("subject %d was deduplicated", i)
					return
				}
				ids[i] = r.Erasure.ID
			}
		})
	}
	wg.Wait()
	return ids, errors.Join(append(errs, ctx.Err())...)
}

// tracker follows every erasure's changes through Watch: when it left RESOLVING and when (and
// in which state) it ended.
type tracker struct {
	mu       sync.Mutex
	resolved map[string]time.Time
	final    map[string]time.Time
	state    map[string]service.State
	want     map[string]bool // the erasures submitted; nil until known
	done     chan struct{}
	closed   bool
}

func newTracker(n int) *tracker {
	return &tracker{resolved: make(map[string]time.Time, n), final: make(map[string]time.Time, n),
		state: make(map[string]service.State, n), done: make(chan struct{})}
}

// follow reads events until ctx ends, resuming after a watch that the service ended.
func (t *tracker) follow(ctx context.Context, svc *service.Service, w *service.Watch) error {
	return followEvents(ctx, svc, w, func(evs []service.Event) {
		t.mu.Lock()
		for _, ev := range evs {
			e := ev.Erasure
			if ev.PreviousState == service.StateResolving && e.State != service.StateResolving {
				if _, ok := t.resolved[e.ID]; !ok {
					t.resolved[e.ID] = ev.Time
				}
			}
			if e.State.Final() {
				t.final[e.ID], t.state[e.ID] = ev.Time, e.State
			}
		}
		t.check()
		t.mu.Unlock()
	})
}

// expect names the erasures to wait for.
func (t *tracker) expect(ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.want = map[string]bool{}
	for _, id := range ids {
		t.want[id] = true
	}
	t.check()
}

// check closes done once every expected erasure is final. Caller holds t.mu.
func (t *tracker) check() {
	if t.closed || t.want == nil {
		return
	}
	for id := range t.want {
		if _, ok := t.final[id]; !ok {
			return
		}
	}
	t.closed = true
	close(t.done)
}

// countingHandler counts the pipeline's warnings and errors by message and drops every record:
// the benchmark reports how often steps failed, not the log.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			key += ": " + a.Value.String()
		}
		return true
	})
	h.counts[key]++
	return nil
}

func (h *countingHandler) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.counts))
	for k, v := range h.counts {
		out[k] = v
	}
	return out
}

package main

// End-to-end tests: erasured's service and pipeline, wired as run.go wires them (newLivePerson,
// port.New, pipelineConfig), against the LivePerson simulator on a loopback httptest server. One
// manual clock drives both the simulator and the service; the pipeline runs in its own goroutine
// and the tests wait for the states it reaches. This file is the harness; e2e_helpers_test.go
// has the waits and checks, e2e_scenarios_test.go finding and erasing a subject's records,
// e2e_control_test.go approvals, cancel, quota and verification, e2e_faults_test.go the
// simulator's faults.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/port"
	"github.com/erasured/erasured/liveperson/region"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(idleClosing{m}) }

// idleClosing runs the tests, then closes the idle keep-alive connections of the default HTTP
// transport (tests read the simulator's stats with http.Get) before goleak looks: an idle pooled
// connection, and the simulator's side of it, are not a leak of the code under test.
type idleClosing struct{ m *testing.M }

func (c idleClosing) Run() int {
	code := c.m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	return code
}

const e2eAcct = lpsim.DemoAccount

// e2eT0 is where the shared clock starts: mid-month, so a month rollover is a few weeks away.
var e2eT0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// The pipeline's timings (simulated time) and LivePerson's timeline.
const (
	e2eSearchLag    = 2 * time.Hour
	e2eBatchMaxWait = 6 * time.Hour
	e2ePoll         = time.Hour
	e2eCancelWindow = 5 * 24 * time.Hour
	e2eDeletionTime = 20 * 24 * time.Hour
	e2eWait         = 20 * time.Second // real time the tests wait for a state
)

type e2eOptions struct {
	quota     int  // erasured's monthly_quota for the account (0: the default, 100)
	simQuota  int  // LivePerson's monthly deletion quota for the account (0: 100)
	consumers int  // generated people besides the demo subjects (0: 150)
	fast      bool // a client like newLivePerson's whose retries do not sleep (fault tests)
	// force changes readings the seed chose (see e2eVariants), for a test about one of them.
	force func(*lpsim.Variants)
	// region is the account's region, "us" by default.
	region string
	// namedHosts: the Domain API answers LivePerson's host names (lo-a.msghist.liveperson.net…)
	// and the client dials every one of them to the simulator. Implies fast.
	namedHosts bool
}

// e2eEnv is one erasured (service + running pipeline) against one simulator.
type e2eEnv struct {
	t        *testing.T
	clock    *lpsim.ManualClock
	variants lpsim.Variants // the readings the simulator serves
	region   string
	sim      *lpsim.Sim
	srv      *httptest.Server
	keys     *service.Keyring
	svc      *service.Service
	pipe     *service.Pipeline
	log      *e2eLog

	stopRun func() // stops the running pipeline; nil when stopped

	// fast mode only
	lpClock    *e2eClock
	hosts      *e2eHosts
	violations []string // the residency guard's reason for each host it refused (under mu)

	mu       sync.Mutex
	chats    map[string]lpsim.Chat // every record as loaded, before LivePerson masked anything
	convs    map[string]lpsim.Conversation
	subjects []service.Subject // every subject submitted
	seq      int
}

func newE2E(t *testing.T, o e2eOptions) *e2eEnv {
	t.Helper()
	if o.consumers == 0 {
		o.consumers = 150
	}
	if o.region == "" {
		o.region = "us"
	}
	o.fast = o.fast || o.namedHosts
	e := &e2eEnv{t: t, clock: lpsim.NewManualClock(e2eT0), log: &e2eLog{}, region: o.region,
		chats: map[string]lpsim.Chat{}, convs: map[string]lpsim.Conversation{}}
	e.variants = e2eVariants(t, o.force)
	acct := lpsim.DefaultAccount(e2eAcct, o.region)
	acct.MonthlyQuota = o.simQuota
	// The simulator's port is known before it is built: named hosts carry it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	simPort := ""
	if o.namedHosts {
		_, simPort, _ = net.SplitHostPort(lis.Addr().String())
	}
	// Tokens outlive the test: simulated time jumps by days while the client (in real time) keeps
	// its token, and a token expiring while a call is in flight across a jump would fail a step
	// whose retry, 5 simulated seconds later, never comes under a stopped clock. The refresh
	// after a 401 is the liveperson package's to test.
	e.sim = lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}, Clock: e.clock, Seed: 1,
		TokenTTL: 400 * 24 * time.Hour, StaticTokens: map[string]string{e2eInspectToken: "*"},
		Variants: e.variants, NamedHosts: o.namedHosts, HostPort: simPort})
	data := lpsim.Generate(1, lpsim.GenOptions{Now: e2eT0, Accounts: []string{e2eAcct}, Consumers: o.consumers, Demo: true,
		Unauthenticated: e.variants.UnauthShare})
	if err := e.sim.Load(data); err != nil {
		t.Fatal(err)
	}
	for _, c := range data.Chats {
		e.chats[c.EngagementID] = c
	}
	for _, c := range data.Conversations {
		e.convs[c.ID] = c
	}
	e.srv = httptest.NewUnstartedServer(e.sim.Handler())
	e.srv.Listener.Close()
	e.srv.Listener = lis
	e.srv.Start()
	t.Cleanup(func() {
		e.sim.Close() // releases requests held by hang faults
		e.srv.CloseClientConnections()
		e.srv.Close()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})

	// The configuration a real deployment would have, pointed at the simulator (http on
	// loopback: test mode), the client secret read from a file.
	cfg := defaultConfig()
	cfg.LivePerson.DomainAPIURL = e.srv.URL
	cfg.Accounts = []Account{{ID: e2eAcct, Region: o.region, MonthlyQuota: o.quota}}
	cfg.Accounts[0].Auth.OAuth2.ClientID = acct.ClientID
	secret := filepath.Join(t.TempDir(), "client_secret")
	if err := os.WriteFile(secret, []byte(acct.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Accounts[0].Auth.OAuth2.ClientSecretFile = secret
	cfg.Pipeline.SearchLag = Duration{e2eSearchLag}
	cfg.Pipeline.BatchMaxWait = Duration{e2eBatchMaxWait}
	cfg.Pipeline.PollInterval = Duration{e2ePoll}
	cfg.LivePerson.CancelWindow = Duration{e2eCancelWindow}
	cfg.LivePerson.DeletionWindow = Duration{e2eDeletionTime}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var client *liveperson.Client
	if o.fast {
		client = e.fastClient(&cfg, acct, logger, o.namedHosts)
	} else if client, err = newLivePerson(&cfg, logger, lpReports{}); err != nil {
		t.Fatal(err)
	}

	db, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	if e.keys, err = service.NewKeyring("e2e", []byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	e.svc, err = service.New(db, e.keys, service.Config{Now: e.clock.Now, Logger: logger,
		CancelWindow: cfg.LivePerson.CancelWindow.Duration, DeletionWindow: cfg.LivePerson.DeletionWindow.Duration,
		PollInterval: cfg.Pipeline.PollInterval.Duration})
	if err != nil {
		t.Fatal(err)
	}
	// Runs after the pipeline has stopped (cleanups run last registered first).
	t.Cleanup(e.finalChecks)

	e.pipe = e.svc.NewPipeline(port.New(client), pipelineConfig(&cfg))
	e.startPipeline()
	t.Cleanup(e.stopPipeline)
	return e
}

// startPipeline runs the pipeline in the background until stopPipeline.
func (e *e2eEnv) startPipeline() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.pipe.Run(ctx) }()
	e.stopRun = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Pipeline.Run = %v", err)
			}
		case <-time.After(30 * time.Second):
			e.t.Error("Pipeline.Run did not return within 30s of its context ending")
		}
	}
}

// stopPipeline stops the pipeline and waits for its work in flight to end (as a shutdown
// does); all its progress is in the store, and startPipeline resumes from there.
func (e *e2eEnv) stopPipeline() {
	if e.stopRun != nil {
		e.stopRun()
		e.stopRun = nil
	}
}

// fastClient builds the LivePerson client as newLivePerson does (regional router, OAuth 2.0
// through sentinel, the configured source), with options newLivePerson does not take: a clock
// reading simulated time whose sleeps return at once (so LivePerson's 5/10/15 s retry waits and
// Retry-After cost nothing and are recorded), attempts that time out after 2 s, no jitter,
// and a transport that records every host called and refuses any that is not loopback (with
// named hosts, it dials every LivePerson name to the simulator).
func (e *e2eEnv) fastClient(cfg *Config, acct lpsim.Account, log *slog.Logger, named bool) *liveperson.Client {
	e.t.Helper()
	e.lpClock = &e2eClock{m: e.clock}
	base := http.DefaultTransport.(*http.Transport).Clone()
	e.t.Cleanup(base.CloseIdleConnections)
	e.hosts = &e2eHosts{base: base, seen: map[string]int{}}
	if named {
		sim := e.srv.Listener.Addr().String()
		base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sim)
		}
		e.hosts.named = true
	}
	opts := []liveperson.Option{
		liveperson.WithClock(e.lpClock),
		liveperson.WithHTTPClient(&http.Client{Transport: e.hosts}),
		liveperson.WithRandom(func() float64 { return 0 }),
		liveperson.WithCallTimeout(2 * time.Second),
	}
	router, err := region.New(region.Config{
		DomainAPIURL: cfg.LivePerson.DomainAPIURL,
		Accounts:     map[string]string{e2eAcct: e.region},
		Patterns:     cfg.LivePerson.HostPatterns,
		UseListForm:  cfg.LivePerson.DiscoveryListForm,
		// Names are held to the region's patterns as in production; the transport dials them to
		// the simulator (named hosts) or refuses them, so nothing reaches LivePerson over http.
		NamedHostsInTestMode: true,
		Clock:                e.lpClock,
		Options:              opts,
		OnViolation: func(v region.Violation) {
			e.mu.Lock()
			e.violations = append(e.violations, v.Reason)
			e.mu.Unlock()
			log.Error("RESIDENCY GUARD: refused a LivePerson host outside the account's region",
				"account", v.Account, "region", v.Region, "service", v.Service, "host", v.Host)
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if !router.TestMode() {
		e.t.Fatal("router is not in loopback test mode")
	}
	auth, err := liveperson.NewOAuth2(liveperson.OAuth2Config{
		Credentials: map[string]liveperson.ClientCredentials{e2eAcct: {ClientID: acct.ClientID, ClientSecret: acct.ClientSecret}},
		Resolver:    router,
		Options:     opts,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := liveperson.New(append([]liveperson.Option{liveperson.WithResolver(router), liveperson.WithAuth(auth),
		liveperson.WithSource(cfg.LivePerson.Source)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// residencyViolations returns the residency guard's reason for each host it refused.
func (e *e2eEnv) residencyViolations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.violations)
}

// e2eClock is the LivePerson client's clock in fast mode: simulated time; Sleep returns at once
// (it does not move the clock) and records waits of a second or more (retry waits, not the
// limiter's spacing).
type e2eClock struct {
	m      *lpsim.ManualClock
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *e2eClock) Now() time.Time { return c.m.Now() }

func (c *e2eClock) Sleep(ctx context.Context, d time.Duration) error {
	if d >= time.Second {
		c.mu.Lock()
		c.sleeps = append(c.sleeps, d)
		c.mu.Unlock()
	}
	return ctx.Err()
}

func (c *e2eClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// e2eHosts records the host of every request and refuses anything but loopback (and, with
// named hosts, LivePerson's names, which its transport dials to the simulator), so that a test
// can show a host was never called and nothing leaves the machine.
type e2eHosts struct {
	base  *http.Transport
	named bool
	mu    sync.Mutex
	seen  map[string]int
}

func (h *e2eHosts) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.seen[r.URL.Host]++
	h.mu.Unlock()
	name := r.URL.Hostname()
	lpName := h.named && strings.HasSuffix(name, ".liveperson.net")
	if ip := net.ParseIP(name); !lpName && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("e2e: refusing to call %s", name)
	}
	return h.base.RoundTrip(r)
}

func (h *e2eHosts) Seen() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.seen {
		out[k] = v
	}
	return out
}

// e2eLog collects erasured's log lines.
type e2eLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *e2eLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *e2eLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count is how many log lines carry msg.
func (l *e2eLog) count(msg string) int { return strings.Count(l.String(), fmt.Sprintf("msg=%q", msg)) }

package main

// End-to-end tests: erasured's service and pipeline, wired as run.go wires them (newLivePerson,
// lpPort, pipelineConfig), against the LivePerson simulator on a loopback httptest server. One
// manual clock drives both the simulator and the service; the pipeline runs in its own goroutine
// and the tests wait for the states it reaches. Scenarios are in e2e_scenarios_test.go, faults in
// e2e_faults_test.go.

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
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/region"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
	simQuota  int  // LivePerson's monthly deletion quota for the account (0: 100)
	consumers int  // generated people besides the demo subjects (0: 150)
	fast      bool // a client like newLivePerson's whose retries do not sleep (fault tests)
}

// e2eEnv is one erasured (service + running pipeline) against one simulator.
type e2eEnv struct {
	t     *testing.T
	clock *lpsim.ManualClock
	sim   *lpsim.Sim
	srv   *httptest.Server
	keys  *service.Keyring
	svc   *service.Service
	pipe  *service.Pipeline
	log   *e2eLog

	// fast mode only
	lpClock    *e2eClock
	hosts      *e2eHosts
	violations atomic.Int64

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
	e := &e2eEnv{t: t, clock: lpsim.NewManualClock(e2eT0), log: &e2eLog{},
		chats: map[string]lpsim.Chat{}, convs: map[string]lpsim.Conversation{}}
	acct := lpsim.DefaultAccount(e2eAcct, "us")
	acct.MonthlyQuota = o.simQuota
	// Tokens outlive the test: simulated time jumps by days while the client (in real time) keeps
	// its token, and a token expiring while a call is in flight across a jump would fail a step
	// whose retry, 5 simulated seconds later, never comes under a stopped clock. The refresh
	// after a 401 is the liveperson package's to test.
	e.sim = lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}, Clock: e.clock, Seed: 1,
		TokenTTL: 400 * 24 * time.Hour, StaticTokens: map[string]string{e2eInspectToken: "*"}})
	data := lpsim.Generate(1, lpsim.GenOptions{Now: e2eT0, Accounts: []string{e2eAcct}, Consumers: o.consumers, Demo: true})
	if err := e.sim.Load(data); err != nil {
		t.Fatal(err)
	}
	for _, c := range data.Chats {
		e.chats[c.EngagementID] = c
	}
	for _, c := range data.Conversations {
		e.convs[c.ID] = c
	}
	e.srv = httptest.NewServer(e.sim.Handler())
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
	cfg.Accounts = []Account{{ID: e2eAcct, Region: "us"}}
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
	var err error
	if o.fast {
		client = e.fastClient(&cfg, acct, logger)
	} else if client, err = newLivePerson(&cfg, logger, func(liveperson.Observation) {}); err != nil {
		t.Fatal(err)
	}

	db, err := store.Open(filepath.Join(t.TempDir(), "erasure.db"), store.Options{})
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
		CancelWindow: cfg.LivePerson.CancelWindow.Duration, DeletionWindow: cfg.LivePerson.DeletionWindow.Duration})
	if err != nil {
		t.Fatal(err)
	}
	// Runs after the pipeline has stopped (cleanups run last registered first).
	t.Cleanup(e.finalChecks)

	e.pipe = e.svc.NewPipeline(lpPort{c: client}, pipelineConfig(&cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.pipe.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Pipeline.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Pipeline.Run did not return within 30s of its context ending")
		}
	})
	return e
}

// fastClient builds the LivePerson client as newLivePerson does (regional router, OAuth 2.0
// through sentinel, the configured source), with options newLivePerson does not take: a clock
// reading simulated time whose sleeps return at once (so LivePerson's 5/10/15 s retry waits and
// Retry-After cost nothing and are recorded), attempts that time out after a second, no jitter,
// and a transport that records every host called and refuses any that is not loopback.
func (e *e2eEnv) fastClient(cfg *Config, acct lpsim.Account, log *slog.Logger) *liveperson.Client {
	e.t.Helper()
	e.lpClock = &e2eClock{m: e.clock}
	base := http.DefaultTransport.(*http.Transport).Clone()
	e.t.Cleanup(base.CloseIdleConnections)
	e.hosts = &e2eHosts{base: base, seen: map[string]int{}}
	opts := []liveperson.Option{
		liveperson.WithClock(e.lpClock),
		liveperson.WithHTTPClient(&http.Client{Transport: e.hosts}),
		liveperson.WithRandom(func() float64 { return 0 }),
		liveperson.WithCallTimeout(time.Second),
	}
	router, err := region.New(region.Config{
		DomainAPIURL: cfg.LivePerson.DomainAPIURL,
		Accounts:     map[string]string{e2eAcct: "us"},
		Clock:        e.lpClock,
		Options:      opts,
		OnViolation: func(v region.Violation) {
			e.violations.Add(1)
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

// e2eHosts records the host of every request and refuses anything but loopback, so that a test
// can show a host was never called and nothing leaves the machine.
type e2eHosts struct {
	base *http.Transport
	mu   sync.Mutex
	seen map[string]int
}

func (h *e2eHosts) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.seen[r.URL.Host]++
	h.mu.Unlock()
	if ip := net.ParseIP(r.URL.Hostname()); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("e2e: refusing to call %s", r.URL.Hostname())
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

// finalChecks run after every test, once the pipeline has stopped: no deletion body was
// created twice at LivePerson, no deletion request holds a record that is not the data of a
// subject submitted (exact identifier match, the subject's consumer, or named explicitly), and
// no subject identifier reached the log.
func (e *e2eEnv) finalChecks() {
	t := e.t
	if st := e.sim.Stats(); len(st.Duplicates) != 0 {
		t.Errorf("LivePerson deletion bodies created more than once: %v", st.Duplicates)
	}
	for _, d := range e.sim.Deletions(e2eAcct) {
		for _, id := range d.IDs {
			if !e.owned(d.Kind, id) {
				t.Errorf("LivePerson request %d (%s) holds %s %s, which carries no submitted subject's identifier",
					d.ID, d.Body, d.Kind, id)
			}
		}
	}
	logs := e.log.String()
	e.mu.Lock()
	for _, s := range e.subjects {
		if s.Value != "" && strings.Contains(logs, s.Value) {
			t.Errorf("a subject identifier appears in erasured's log")
		}
	}
	e.mu.Unlock()
	if t.Failed() {
		if len(logs) > 20000 {
			logs = "…" + logs[len(logs)-20000:]
		}
		t.Logf("erasured log:\n%s", logs)
	}
}

// owned reports whether a record is the data of one of the submitted subjects, judged on the
// records as loaded (before masking).
func (e *e2eEnv) owned(kind, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.subjects {
		if s.Kind == service.SubjectTargets {
			if (kind == "engagement" && slices.Contains(s.EngagementIDs, id)) ||
				(kind == "conversation" && slices.Contains(s.ConversationIDs, id)) {
				return true
			}
			continue
		}
		consumers := e.consumersOf(s)
		switch kind {
		case "engagement":
			if c, ok := e.chats[id]; ok && carries(s, c.CustomerID, c.Email, c.Phone) {
				return true
			}
		case "conversation":
			if c, ok := e.convs[id]; ok && (carries(s, c.CustomerID, c.Email, c.Phone) || consumers[c.ConsumerID]) {
				return true
			}
		case "consumer":
			if consumers[id] {
				return true
			}
		}
	}
	return false
}

// consumersOf returns the messaging consumers of a subject: itself for a consumer id, else the
// consumers of the conversations carrying its identifier. Caller holds e.mu.
func (e *e2eEnv) consumersOf(s service.Subject) map[string]bool {
	out := map[string]bool{}
	if s.Kind == service.SubjectConsumerID {
		out[s.Value] = true
		return out
	}
	for _, c := range e.convs {
		if carries(s, c.CustomerID, c.Email, c.Phone) {
			out[c.ConsumerID] = true
		}
	}
	return out
}

// carries is the exact match of a subject's identifier against a record's attributes.
func carries(s service.Subject, customerID, email, phone string) bool {
	digits := func(v string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, v)
	}
	switch s.Kind {
	case service.SubjectCustomerID:
		return customerID == s.Value
	case service.SubjectEmail:
		return email != "" && strings.EqualFold(strings.TrimSpace(email), strings.TrimSpace(s.Value))
	case service.SubjectPhone:
		return phone != "" && digits(phone) == digits(s.Value)
	}
	return false
}

// addChat adds a chat to LivePerson after the start, remembering it for the ownership check.
func (e *e2eEnv) addChat(c lpsim.Chat) {
	e.t.Helper()
	if err := e.sim.AddChat(c); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.chats[c.EngagementID] = c
	e.mu.Unlock()
}

// chatIDs returns the sorted ids of the loaded chats that keep says.
func (e *e2eEnv) chatIDs(keep func(lpsim.Chat) bool) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for id, c := range e.chats {
		if keep(c) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// convIDs returns the sorted ids of the loaded conversations that keep says.
func (e *e2eEnv) convIDs(keep func(lpsim.Conversation) bool) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for id, c := range e.convs {
		if keep(c) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Submit options.
func chatOnly(r *service.SubmitRequest)      { r.Channels = []service.Channel{service.ChannelChat} }
func messagingOnly(r *service.SubmitRequest) { r.Channels = []service.Channel{service.ChannelMessaging} }
func withProfile(r *service.SubmitRequest)   { r.EraseConsumerProfile = true }
func manual(r *service.SubmitRequest)        { r.Confirmation = service.ConfirmationManual }

func customerID(v string) service.Subject { return service.Subject{Kind: service.SubjectCustomerID, Value: v} }
func email(v string) service.Subject      { return service.Subject{Kind: service.SubjectEmail, Value: v} }

// submit submits an erasure of subject as principal "alice" and returns its name.
func (e *e2eEnv) submit(s service.Subject, opts ...func(*service.SubmitRequest)) string {
	e.t.Helper()
	e.mu.Lock()
	e.seq++
	req := service.SubmitRequest{RequestID: fmt.Sprintf("00000000-0000-4000-8000-%012d", e.seq), AccountID: e2eAcct,
		Subject: s, ExternalRef: fmt.Sprintf("TICKET-%d", e.seq)}
	e.subjects = append(e.subjects, s)
	e.mu.Unlock()
	for _, o := range opts {
		o(&req)
	}
	res, err := e.svc.Submit(service.WithPrincipal(context.Background(), "alice"), req)
	if err != nil {
		e.t.Fatalf("Submit(%s) = %v", req.RequestID, err)
	}
	if res.Deduplicated {
		e.t.Fatalf("Submit(%s) was deduplicated into %s", req.RequestID, res.Erasure.Name())
	}
	return res.Erasure.Name()
}

// advance moves simulated time (LivePerson's and erasured's) and wakes the pipeline.
func (e *e2eEnv) advance(d time.Duration) {
	e.clock.Advance(d)
	e.pipe.Wake()
}

func (e *e2eEnv) status(name string) service.Erasure {
	e.t.Helper()
	got, err := e.svc.Status(context.Background(), name)
	if err != nil {
		e.t.Fatalf("Status(%s) = %v", name, err)
	}
	return got
}

// waitState waits until the erasure is in state want.
func (e *e2eEnv) waitState(name string, want service.State) service.Erasure {
	e.t.Helper()
	return e.waitFor(name, want.String(), func(x service.Erasure) bool { return x.State == want })
}

// waitFor polls the erasure's status until ok holds; it fails after e2eWait, or at once when the
// erasure reached a final state that does not satisfy ok.
func (e *e2eEnv) waitFor(name, what string, ok func(service.Erasure) bool) service.Erasure {
	e.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		got := e.status(name)
		if ok(got) {
			return got
		}
		if got.State.Final() || time.Now().After(deadline) {
			e.t.Fatalf("%s: waited for %s; it is %s, blocked_on %s, last_error %q, next_attempt %v (now %v)",
				name, what, got.State, blockedName(got.BlockedOn), got.LastError, got.NextAttemptTime, e.clock.Now())
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// waitUntil polls cond (not about one erasure) until it holds or e2eWait passes.
func (e *e2eEnv) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("waited %v for %s", e2eWait, what)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// waitLogged waits until erasured has logged msg at least n times: the pipeline logs a failed
// step after it committed the step's retry, so this is a point where the retry is scheduled.
func (e *e2eEnv) waitLogged(msg string, n int) {
	e.t.Helper()
	e.waitUntil(fmt.Sprintf("%d log lines %q", n, msg), func() bool { return e.log.count(msg) >= n })
}

func blockedName(b service.BlockedOn) string {
	names := map[service.BlockedOn]string{service.BlockedNone: "NONE", service.BlockedQuota: "QUOTA",
		service.BlockedOpenConversations: "OPEN_CONVERSATIONS", service.BlockedSearchLag: "SEARCH_LAG",
		service.BlockedLivePersonUnavailable: "LIVEPERSON_UNAVAILABLE", service.BlockedConfirmation: "CONFIRMATION"}
	if n, ok := names[b]; ok {
		return n
	}
	return fmt.Sprint(int(b))
}

// deleteAtLivePerson takes erasures whose requests LivePerson holds (SUBMITTED) through
// LivePerson's timeline: past the cancel window (DELETING), then past the deletion window
// (DONE, verified, final sweep: COMPLETED).
func (e *e2eEnv) deleteAtLivePerson(names ...string) {
	e.t.Helper()
	e.advance(e2eCancelWindow + time.Hour)
	for _, n := range names {
		e.waitState(n, service.StateDeleting)
	}
	e.advance(e2eDeletionTime)
	for _, n := range names {
		e.wantCompleted(n)
	}
}

// wantCompleted waits for COMPLETED and checks the receipt: it names the erasure and its
// LivePerson requests, and verifies against the service's public key.
func (e *e2eEnv) wantCompleted(name string) service.Erasure {
	e.t.Helper()
	got := e.waitState(name, service.StateCompleted)
	if got.Receipt == nil {
		e.t.Fatalf("%s: COMPLETED without a receipt", name)
	}
	if err := service.VerifyReceipt(*got.Receipt, e.keys.PublicKey()); err != nil {
		e.t.Errorf("VerifyReceipt(%s) = %v, want nil", name, err)
	}
	var ids []int64
	for _, q := range got.LPRequests {
		ids = append(ids, q.ID)
	}
	if r := got.Receipt; r.Erasure != name || r.AccountID != e2eAcct || !slices.Equal(r.LPRequestIDs, ids) {
		e.t.Errorf("%s: receipt names %s/%s with requests %v; want the erasure, its account and requests %v",
			name, r.Erasure, r.AccountID, r.LPRequestIDs, ids)
	}
	if got.BlockedOn != service.BlockedNone || got.LastError != "" {
		e.t.Errorf("%s: COMPLETED but blocked_on %s, last_error %q", name, blockedName(got.BlockedOn), got.LastError)
	}
	return got
}

// bodies returns LivePerson's deletion requests as "kind:[sorted ids]", oldest first.
func (e *e2eEnv) bodies() []string {
	var out []string
	for _, d := range e.sim.Deletions(e2eAcct) {
		out = append(out, body(d.Kind, d.IDs))
	}
	return out
}

func body(kind string, ids []string) string {
	return fmt.Sprintf("%s:%v", kind, slices.Sorted(slices.Values(ids)))
}

// calls returns the simulator's logged calls of a service and operation ("" = any).
func (e *e2eEnv) calls(svc, op string) []lpsim.Call { return e.sim.CallsTo(svc, op) }

// faulted returns the calls a fault of kind fired on.
func (e *e2eEnv) faulted(kind lpsim.FaultKind) []lpsim.Call {
	var out []lpsim.Call
	for _, c := range e.sim.Calls() {
		if c.Fault == kind.String() {
			out = append(out, c)
		}
	}
	return out
}

// e2eInspectToken lets a test look at LivePerson directly (not erasured's traffic).
const e2eInspectToken = "e2e-inspect"

// fuzzyChatHits runs LivePerson's own keyword search, as erasured does, and returns the ids of
// the chats it answers: what exact filtering has to sort out.
func (e *e2eEnv) fuzzyChatHits(keyword string, from, to time.Time) []string {
	e.t.Helper()
	c, err := liveperson.New(
		liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(e.srv.URL, "http://"), Insecure: true}),
		liveperson.WithAuth(liveperson.StaticBearer{"*": e2eInspectToken}),
		liveperson.WithSource("e2e-inspect"),
		liveperson.WithHTTPClient(e.srv.Client()))
	if err != nil {
		e.t.Fatal(err)
	}
	es, err := c.SearchEngagements(context.Background(), e2eAcct, liveperson.EngagementQuery{From: from, To: to, Keyword: keyword})
	if err != nil {
		e.t.Fatalf("SearchEngagements = %v", err)
	}
	var out []string
	for _, x := range es {
		out = append(out, x.EngagementID)
	}
	return out
}

// wantMasked checks that LivePerson masked every listed record (chats and conversations).
func (e *e2eEnv) wantMasked(chats, convs []string, masked bool) {
	e.t.Helper()
	for _, id := range chats {
		c, ok := e.sim.Chat(id)
		if !ok {
			e.t.Errorf("chat %s is gone", id)
			continue
		}
		if got := c.CustomerID == lpsim.DeletedMarker; got != masked {
			e.t.Errorf("chat %s masked = %v, want %v", id, got, masked)
		}
	}
	for _, id := range convs {
		c, ok := e.sim.Conversation(id)
		if !ok {
			e.t.Errorf("conversation %s is gone", id)
			continue
		}
		if got := c.CustomerID == lpsim.DeletedMarker; got != masked {
			e.t.Errorf("conversation %s masked = %v, want %v", id, got, masked)
		}
	}
}

package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// refusalLog records the refusals reported, as "account/service".
type refusalLog struct {
	mu  sync.Mutex
	got []string
}

func (r *refusalLog) add(account, service string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, account+"/"+service)
}

func (r *refusalLog) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, k := range r.got {
		out[k]++
	}
	return out
}

// wireCounting builds the client as erasured does, reporting refusals to r.
func (e *simEnv) wireCounting(t *testing.T, r *refusalLog) (*livePerson, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	lp, err := wireLivePerson(&e.cfg, slog.New(slog.NewJSONHandler(&logs, nil)), lpReports{authFailed: r.add})
	if err != nil {
		t.Fatal(err)
	}
	return lp, &logs
}

// TestWrongClientSecretIsReported: a client_secret_file holding the wrong secret. Sentinel
// refuses the token exchange; each service of the account is counted as refused, one ERROR
// line names the account and the service (once per service however many calls fail), the
// credential check's own lines are ERRORs, and the secret is never logged.
func TestWrongClientSecretIsReported(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", "not-the-secret")}
	var r refusalLog
	lp, logs := e.wireCounting(t, &r)
	log := slog.New(slog.NewJSONHandler(logs, nil))
	checkCredentials(context.Background(), lp, log, time.Now())
	checkCredentials(context.Background(), lp, log, time.Now())

	got := r.counts()
	for _, svc := range authServices {
		if got[a.ID+"/"+svc] < 2 {
			t.Errorf("refusals of %s/%s = %d, want one per call (2)", a.ID, svc, got[a.ID+"/"+svc])
		}
	}
	refused := map[string]int{}
	for _, l := range logLines(t, logs) {
		if strings.HasPrefix(l.Msg, "LivePerson refused the account's credentials") {
			if l.Level != "ERROR" || l.Account != a.ID || l.At != "sentinel token" {
				t.Errorf("refusal line %+v: want an ERROR naming account %s, at sentinel token", l, a.ID)
			}
			refused[l.Service]++
		}
		if l.Result == "unauthorized" && l.Level != "ERROR" {
			t.Errorf("credential check line %+v: want ERROR", l)
		}
	}
	for _, svc := range authServices {
		if refused[svc] != 1 {
			t.Errorf("%d refusal lines for %s, want 1", refused[svc], svc)
		}
	}
	noSecrets(t, logs.String(), "not-the-secret", a.ClientSecret)
}

// TestForbiddenServiceIsReported: the credentials are good, but Messaging Interactions answers
// 403. Only that service is counted and logged; once it answers again, an INFO line says so
// and nothing more is counted.
func TestForbiddenServiceIsReported(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	var r refusalLog
	lp, logs := e.wireCounting(t, &r)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceMsgHist, Kind: lpsim.FaultStatus, Status: 403})
	_, err := lp.client.ConversationsByID(context.Background(), a.ID, []string{probeConversationID}, liveperson.SearchContent)
	if err == nil {
		t.Fatal("ConversationsByID under a 403 fault succeeded")
	}
	if got, want := r.counts(), map[string]int{a.ID + "/" + liveperson.ServiceMessaging: 1}; !maps.Equal(got, want) {
		t.Errorf("refusals = %v, want %v", got, want)
	}
	e.sim.ClearFaults()
	if _, err := lp.client.ConversationsByID(context.Background(), a.ID, []string{probeConversationID}, liveperson.SearchContent); err != nil {
		t.Fatalf("ConversationsByID after the fault = %v", err)
	}
	var msgs []string
	for _, l := range logLines(t, logs) {
		if l.Service == liveperson.ServiceMessaging {
			msgs = append(msgs, l.Level+" "+l.Msg)
		}
	}
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "ERROR LivePerson refused the account's credentials") ||
		msgs[1] != "INFO LivePerson accepts the account's credentials again" {
		t.Errorf("log lines about msgHist = %q, want an ERROR refusal then an INFO recovery", msgs)
	}
	if n := len(r.counts()); n != 1 {
		t.Errorf("refusals after recovery: %v", r.counts())
	}
}

// TestRevokedTokenRetriedIsNoRefusal: a 401 to a call with a cached token that the client
// fixes by fetching a new token and trying again is neither counted nor logged as a refusal;
// a 401 to the retry too is, once.
func TestRevokedTokenRetriedIsNoRefusal(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	var r refusalLog
	lp, logs := e.wireCounting(t, &r)
	call := func() error {
		_, err := lp.client.ConversationsByID(context.Background(), a.ID, []string{probeConversationID}, liveperson.SearchContent)
		return err
	}
	if err := call(); err != nil { // a token is cached
		t.Fatal(err)
	}
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceMsgHist, Kind: lpsim.FaultStatus, Status: 401, Times: 1})
	if err := call(); err != nil {
		t.Fatalf("a call whose first attempt got 401: %v, want the retry to succeed", err)
	}
	if got := r.counts(); len(got) != 0 {
		t.Errorf("refusals after a 401 the retry fixed = %v, want none", got)
	}
	if strings.Contains(logs.String(), "LivePerson refused") {
		t.Errorf("a 401 the retry fixed was logged: %s", logs.String())
	}
	e.sim.ClearFaults()
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceMsgHist, Kind: lpsim.FaultStatus, Status: 401, Times: 2})
	if err := call(); err == nil {
		t.Fatal("a call whose retry got 401 too succeeded")
	}
	if got, want := r.counts(), map[string]int{a.ID + "/" + liveperson.ServiceMessaging: 1}; !maps.Equal(got, want) {
		t.Errorf("refusals after a 401 to the retry = %v, want %v", got, want)
	}
	if n := strings.Count(logs.String(), "LivePerson refused the account's credentials"); n != 1 {
		t.Errorf("%d refusal lines, want 1: %s", n, logs.String())
	}
}

// TestAuthFailureMetrics: a refused client secret shows in
// erasured_liveperson_auth_failures_total by account and service, and the token exchange in
// erasured_liveperson_calls_total (sentinel, 401); incidents count by kind and step.
func TestAuthFailureMetrics(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", "not-the-secret")}
	m := newMetrics()
	lp, err := wireLivePerson(&e.cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), lpReports{call: m.observeCall, authFailed: m.authFailed})
	if err != nil {
		t.Fatal(err)
	}
	checkCredentials(context.Background(), lp, slog.New(slog.NewJSONHandler(io.Discard, nil)), time.Now())
	for _, svc := range authServices {
		if got := counterValue(t, m.lpAuthFailures, "account", a.ID, "service", svc); got < 1 {
			t.Errorf("auth failures of %s/%s = %v, want at least 1", a.ID, svc, got)
		}
	}
	if got := counterValue(t, m.lpCalls, "service", liveperson.ServiceSentinel, "op", "token", "code", "401"); got < 1 {
		t.Errorf("sentinel token calls answered 401 = %v, want at least 1", got)
	}
	m.incident(service.Incident{Kind: service.IncidentStepRejected, Account: a.ID, Step: "submit", Reason: "REFUSED"})
	m.incident(service.Incident{Kind: service.IncidentStepRejected, Account: a.ID, Step: "submit", Reason: "REFUSED"})
	if got := counterValue(t, m.incidents, "kind", service.IncidentStepRejected, "step", "submit"); got != 2 {
		t.Errorf("incidents step_rejected/submit = %v, want 2", got)
	}
}

// counterValue reads the counter of vec with the labels given (name, value, name, value...),
// by gathering it from a registry of its own.
func counterValue(t *testing.T, vec *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(vec)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, want) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestHungSentinelIsUnreachable: sentinel holds the token exchange and the start-up credential
// check's time runs out while every probe waits for it. Nothing was refused: each service is
// reported unreachable at sentinel (a WARN), and no refusal is counted or logged.
func TestHungSentinelIsUnreachable(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	var r refusalLog
	lp, logs := e.wireCounting(t, &r)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Op: lpsim.OpToken, Kind: lpsim.FaultHang, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	checkCredentials(ctx, lp, slog.New(slog.NewJSONHandler(logs, nil)), time.Now())

	results := map[string]logLine{}
	for _, l := range logLines(t, logs) {
		if l.Result != "" {
			results[l.Service] = l
		}
	}
	for _, svc := range authServices {
		l, ok := results[svc]
		if !ok || l.Result != "unreachable" || l.Level != "WARN" || l.At != "sentinel token" {
			t.Errorf("credential check of %s: %+v, want a WARN: unreachable at sentinel token", svc, l)
		}
	}
	if got := r.counts(); len(got) != 0 {
		t.Errorf("refusals while sentinel hung = %v, want none", got)
	}
	if strings.Contains(logs.String(), "LivePerson refused") {
		t.Errorf("a hung sentinel was logged as a refusal: %s", logs.String())
	}
}

// TestSentinel5xxRetriedOnSchedule: sentinel answers 503 once. The token client makes one
// attempt per fetch, and the call it serves retries on LivePerson's schedule: the second token
// request comes at least 5 s after the first (the client runs on the real clock here), not after
// a retry of the token client's own within the call's wait.
func TestSentinel5xxRetriedOnSchedule(t *testing.T) {
	t.Parallel()
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	lp, _ := e.wire(t)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Op: lpsim.OpToken, Kind: lpsim.FaultStatus, Status: 503, Times: 1})
	if _, err := lp.client.ConversationsByID(context.Background(), a.ID, []string{probeConversationID}, liveperson.SearchContent); err != nil {
		t.Fatalf("ConversationsByID after one 503 from sentinel: %v", err)
	}
	calls := e.sim.CallsTo(lpsim.ServiceSentinel, lpsim.OpToken)
	if len(calls) != 2 {
		t.Fatalf("%d token requests, want 2", len(calls))
	}
	if gap := calls[1].Time.Sub(calls[0].Time); gap < 5*time.Second {
		t.Errorf("second token request %v after the first, want at least 5s", gap)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
)

// simEnv is a simulator on an httptest server and a configuration pointed at it (loopback test
// mode), with a directory for secret files.
type simEnv struct {
	sim *lpsim.Sim
	cfg Config
	dir string
	env map[string]string
}

func newSimEnv(t *testing.T, accounts ...lpsim.Account) *simEnv {
	t.Helper()
	sim := lpsim.New(lpsim.Config{Accounts: accounts})
	ts := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { sim.Close(); ts.Close() })
	e := &simEnv{sim: sim, cfg: defaultConfig(), dir: t.TempDir(), env: map[string]string{}}
	e.cfg.LivePerson.DomainAPIURL = ts.URL
	e.cfg.getenv = func(k string) string { return e.env[k] }
	return e
}

// file writes a secret file and returns its path.
func (e *simEnv) file(name, v string) string {
	p := filepath.Join(e.dir, name)
	os.WriteFile(p, []byte(v+"\n"), 0o600)
	return p
}

// wire builds the client as erasured does and returns it with everything it logged.
func (e *simEnv) wire(t *testing.T) (*livePerson, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	lp, err := wireLivePerson(&e.cfg, slog.New(slog.NewJSONHandler(&logs, nil)), lpReports{})
	if err != nil {
		t.Fatal(err)
	}
	return lp, &logs
}

// syncBuffer is a log buffer several loggers may write at once (the client's and a check's).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

func noSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret appears in the log")
		}
	}
}

// TestLivePersonAuthPerAccount: one account on OAuth 2.0 client credentials, one on legacy
// OAuth 1.0 app keys (with a start-up warning); both reach the simulator, which checks the
// credentials, and the secrets never appear in the log.
func TestLivePersonAuthPerAccount(t *testing.T) {
	a2, a1 := lpsim.DefaultAccount("1111", "us"), lpsim.DefaultAccount("2222", "us")
	e := newSimEnv(t, a2, a1)
	e.cfg.Accounts = []Account{{ID: a2.ID, Region: "us"}, {ID: a1.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a2.ClientID, ClientSecretFile: e.file("s2", a2.ClientSecret)}
	e.cfg.Accounts[1].Auth.OAuth1 = &OAuth1Auth{ConsumerKey: a1.OAuth1.ConsumerKey,
		ConsumerSecretFile: e.file("cs", a1.OAuth1.ConsumerSecret), Token: a1.OAuth1.Token,
		TokenSecretFile: e.file("ts", a1.OAuth1.TokenSecret)}
	lp, logs := e.wire(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, acct := range []string{a2.ID, a1.ID} {
		q := liveperson.ConversationQuery{From: time.Now().Add(-24 * time.Hour), To: time.Now(), CustomerInfo: "X"}
		if _, err := lp.client.SearchConversations(ctx, acct, q); err != nil {
			t.Errorf("account %s: %v", acct, err)
		}
	}
	if !strings.Contains(logs.String(), "OAuth 1.0") {
		t.Errorf("no start-up warning about OAuth 1.0; logs: %s", logs.String())
	}
	noSecrets(t, logs.String(), a2.ClientSecret, a1.OAuth1.ConsumerSecret, a1.OAuth1.TokenSecret)
}

// TestLivePersonAuthPerService: one account with both methods, Engagement History on OAuth 2.0
// and Messaging Interactions and deletion on app keys whose secrets come from the environment.
// Each service receives its own scheme, and the OAuth 1.0 warning names exactly those services.
func TestLivePersonAuthPerService(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "uk")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "uk"}}
	auth := &e.cfg.Accounts[0].Auth
	auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	auth.OAuth1 = &OAuth1Auth{ConsumerKey: a.OAuth1.ConsumerKey, Token: a.OAuth1.Token}
	e.env["ERASURED_ACCOUNT_1111_OAUTH1_CONSUMER_SECRET"] = a.OAuth1.ConsumerSecret
	e.env["ERASURED_ACCOUNT_1111_OAUTH1_TOKEN_SECRET"] = a.OAuth1.TokenSecret
	auth.Services = map[string]string{"engHistDomain": "oauth2", "msgHist": "oauth1", "rtbf": "oauth1"}
	lp, logs := e.wire(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	if _, err := lp.client.SearchEngagements(ctx, a.ID, liveperson.EngagementQuery{From: now.Add(-time.Hour), To: now}); err != nil {
		t.Errorf("engagements: %v", err)
	}
	if _, err := lp.client.SearchConversations(ctx, a.ID, liveperson.ConversationQuery{From: now.Add(-time.Hour), To: now}); err != nil {
		t.Errorf("conversations: %v", err)
	}
	if _, err := lp.client.ListDeletions(ctx, a.ID, liveperson.DeletionFilter{}); err != nil {
		t.Errorf("deletions: %v", err)
	}
	want := map[string]string{lpsim.ServiceEngHist: "bearer", lpsim.ServiceMsgHist: "oauth1", lpsim.ServiceRTBF: "oauth1"}
	for svc, scheme := range want {
		calls := e.sim.CallsTo(svc, "")
		if len(calls) == 0 {
			t.Errorf("no %s call", svc)
		}
		for _, c := range calls {
			if c.Auth != scheme || c.Status != 200 {
				t.Errorf("%s call: auth %s, status %d; want %s, 200", svc, c.Auth, c.Status, scheme)
			}
		}
	}
	warned := map[string]bool{}
	for _, l := range logLines(t, logs) {
		if strings.Contains(l.Msg, "OAuth 1.0") {
			warned[l.Service] = true
		}
	}
	if len(warned) != 2 || !warned["msgHist"] || !warned["rtbf"] {
		t.Errorf("OAuth 1.0 warnings for %v, want msgHist and rtbf", warned)
	}
	noSecrets(t, logs.String(), a.ClientSecret, a.OAuth1.ConsumerSecret, a.OAuth1.TokenSecret)
}

type logLine struct {
	Level, Msg, Account, Service, Method, Result, At string
	Status                                           int
}

func logLines(t *testing.T, logs *syncBuffer) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// checkResults runs the start-up credential check and returns its result by account/service.
func checkResults(t *testing.T, lp *livePerson, logs *syncBuffer) map[string]logLine {
	t.Helper()
	logs.Reset()
	log := slog.New(slog.NewJSONHandler(logs, nil))
	checkCredentials(context.Background(), lp, log, time.Now())
	got := map[string]logLine{}
	for _, l := range logLines(t, logs) {
		if l.Result != "" {
			got[l.Account+"/"+l.Service] = l
		}
	}
	return got
}

// TestCredentialCheck: one account per method; Messaging Interactions answers 401 to every
// call. The check logs one line per account and service: msgHist unauthorized, the others ok,
// each with its method, and no secret.
func TestCredentialCheck(t *testing.T) {
	a2, a1 := lpsim.DefaultAccount("1111", "us"), lpsim.DefaultAccount("2222", "us")
	e := newSimEnv(t, a2, a1)
	e.cfg.Accounts = []Account{{ID: a2.ID, Region: "us"}, {ID: a1.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a2.ClientID}
	e.env["ERASURED_ACCOUNT_1111_OAUTH2_CLIENT_SECRET"] = a2.ClientSecret
	e.cfg.Accounts[1].Auth.OAuth1 = &OAuth1Auth{ConsumerKey: a1.OAuth1.ConsumerKey,
		ConsumerSecretFile: e.file("cs", a1.OAuth1.ConsumerSecret), Token: a1.OAuth1.Token,
		TokenSecretFile: e.file("ts", a1.OAuth1.TokenSecret)}
	lp, logs := e.wire(t)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceMsgHist, Kind: lpsim.FaultStatus, Status: 401})

	got := checkResults(t, lp, logs)
	for _, acct := range []string{a2.ID, a1.ID} {
		method := map[string]string{a2.ID: "oauth2", a1.ID: "oauth1"}[acct]
		for svc, result := range map[string]string{"rtbf": "ok", "engHistDomain": "ok", "msgHist": "unauthorized"} {
			l, ok := got[acct+"/"+svc]
			if !ok {
				t.Errorf("no check line for %s/%s", acct, svc)
				continue
			}
			if l.Result != result || l.Method != method {
				t.Errorf("check %s/%s: result %q, method %q; want %q, %q", acct, svc, l.Result, l.Method, result, method)
			}
			if result != "ok" && (l.Level != "ERROR" || l.Status != 401) {
				t.Errorf("check %s/%s: level %s, status %d; want ERROR, 401", acct, svc, l.Level, l.Status)
			}
		}
	}
	if len(got) != 6 {
		t.Errorf("%d check lines, want 6", len(got))
	}
	noSecrets(t, logs.String(), a2.ClientSecret, a1.OAuth1.ConsumerSecret, a1.OAuth1.TokenSecret, "oauth_problem")
}

// TestCredentialCheckReadsNoRecords: on a busy account, with more chats and conversations in
// the last ten minutes than one page holds, the check reads none of them: one Engagement
// History call filtered on a chat id the account cannot have, one Messaging Interactions read
// of the nil conversation id, no search at all, and every service is ok.
func TestCredentialCheckReadsNoRecords(t *testing.T) {
	a := lpsim.DefaultAccount("1111", "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: a.ID, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s2", a.ClientSecret)}
	lp, logs := e.wire(t)
	now := time.Now()
	at := now.Truncate(10 * time.Minute).Add(-5 * time.Minute)
	for i := range liveperson.MaxPageSize + 50 {
		if err := e.sim.AddChat(lpsim.Chat{EngagementID: fmt.Sprintf("%s%010d", a.ID, i+1), Account: a.ID,
			Start: at, End: at.Add(time.Minute), Ended: true, Email: "busy@example.com"}); err != nil {
			t.Fatal(err)
		}
		if err := e.sim.AddConversation(lpsim.Conversation{ID: fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", i+1),
			Account: a.ID, ConsumerID: "consumer", Status: "CLOSE", Start: at, End: at.Add(time.Minute),
			Email: "busy@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	logs.Reset()
	log := slog.New(slog.NewJSONHandler(logs, nil))
	checkCredentials(context.Background(), lp, log, now)
	for _, l := range logLines(t, logs) {
		if l.Result != "" && l.Result != "ok" {
			t.Errorf("check %s: %s, want ok", l.Service, l.Result)
		}
	}
	if strings.Contains(logs.String(), "busy@example.com") || strings.Contains(logs.String(), "c0ffee00") {
		t.Error("a record appears in the log")
	}
	eng := e.sim.CallsTo(lpsim.ServiceEngHist, "")
	if len(eng) != 1 || !strings.Contains(eng[0].Body, `"engagementId":11110`) || strings.Contains(eng[0].Body, "keyword\"") {
		t.Errorf("Engagement History calls %+v, want one, filtered on engagement id 11110 with no keyword", eng)
	}
	msg := e.sim.CallsTo(lpsim.ServiceMsgHist, "")
	if len(msg) != 1 || msg[0].Op != lpsim.OpByID || !strings.Contains(msg[0].Body, probeConversationID) ||
		strings.Contains(msg[0].Body, "messageRecords") {
		t.Errorf("Messaging Interactions calls %+v, want one read of the nil conversation id, without messages", msg)
	}
}

func TestProbeEngagementID(t *testing.T) {
	for acct, want := range map[string]string{"12345678": "123456780", "1": "10", "0123": "1", "le-test": "1", "": "1"} {
		if got := probeEngagementID(acct); got != want {
			t.Errorf("probeEngagementID(%q) = %q, want %q", acct, got, want)
		}
	}
}

// TestSandboxCredentialCheck: in the sandbox the check runs against the simulator and every
// service is ok.
func TestSandboxCredentialCheck(t *testing.T) {
	cfg := defaultConfig()
	log := slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil))
	stop, err := startSandboxLivePerson(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var logs syncBuffer
	lp, err := wireLivePerson(&cfg, slog.New(slog.NewJSONHandler(&logs, nil)), lpReports{})
	if err != nil {
		t.Fatal(err)
	}
	got := checkResults(t, lp, &logs)
	for _, svc := range authServices {
		if l := got[lpsim.DemoAccount+"/"+svc]; l.Result != "ok" || l.Method != "oauth2" {
			t.Errorf("sandbox check of %s: %+v, want ok with oauth2", svc, l)
		}
	}
}

// TestCheckFailure: how a failed check call is reported.
func TestCheckFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&liveperson.Error{Kind: liveperson.KindUnauthorized, Status: 401}, "unauthorized"},
		{&liveperson.Error{Kind: liveperson.KindUnauthorized, Service: "sentinel"}, "unauthorized"},
		{&liveperson.Error{Kind: liveperson.KindTerminal, Status: 403}, "forbidden"},
		{&liveperson.Error{Kind: liveperson.KindTerminal, Status: 400}, "refused"},
		{&liveperson.Error{Kind: liveperson.KindRetryable, Status: 503}, "unreachable"},
		{&liveperson.Error{Kind: liveperson.KindRateLimited, Status: 429}, "unreachable"},
		{&liveperson.Error{Kind: liveperson.KindResidency}, "residency"},
		{context.DeadlineExceeded, "unreachable"},
	} {
		if got := checkFailure(tc.err); got[1] != tc.want {
			t.Errorf("checkFailure(%v) = %v, want result %q", tc.err, got, tc.want)
		}
	}
}

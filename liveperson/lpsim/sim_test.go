package lpsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

const acct = "1234"

type harness struct {
	sim *Sim
	clk *ManualClock
	srv *httptest.Server
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{clk: NewManualClock(t0)}
	if cfg.Accounts == nil {
		cfg.Accounts = []Account{DefaultAccount(acct, "us")}
	}
	if cfg.StaticTokens == nil {
		cfg.StaticTokens = map[string]string{}
	}
	cfg.StaticTokens["tok"] = acct
	cfg.Clock = h.clk
	h.sim = New(cfg)
	h.srv = httptest.NewServer(h.sim.Handler())
	t.Cleanup(func() { h.sim.Close(); h.srv.Close() })
	return h
}

// do sends a request with the static token and returns status and body.
func (h *harness) do(t *testing.T, method, path, query, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path+"?"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func startJSON(from, to time.Time) string {
	return fmt.Sprintf(`"start":{"from":%d,"to":%d}`, from.UnixMilli(), to.UnixMilli())
}

const (
	engPath  = "/interaction_history/api/account/" + acct + "/interactions/search"
	msgPath  = "/messaging_history/api/account/" + acct + "/conversations/search"
	byCons   = "/messaging_history/api/account/" + acct + "/conversations/consumer/search"
	byIDPath = "/messaging_history/api/account/" + acct + "/conversations/conversation/search"
	delPath  = "/api/account/" + acct + "/personal-data-deletion"
)

// TestValidation: the simulator is as strict as the contract.
func TestValidation(t *testing.T) {
	h := newHarness(t, Config{})
	open := Conversation{ID: "open-1", Account: acct, ConsumerID: "p", Status: "OPEN", Start: t0.Add(-time.Hour)}
	_ = h.sim.AddConversation(open)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name, method, path, query, body string
		want                            int
	}{
		{"eng ok", "POST", engPath, "offset=0&limit=100", "{" + startJSON(t0.Add(-day), t0) + "}", 200},
		{"eng window too long", "POST", engPath, "limit=100", "{" + startJSON(t0.Add(-31*day), t0) + "}", 400},
		{"eng limit 101", "POST", engPath, "limit=101", "{" + startJSON(t0.Add(-day), t0) + "}", 400},
		{"eng missing start", "POST", engPath, "", `{"keyword":"\"x\""}`, 400},
		{"eng bad area", "POST", engPath, "", "{" + startJSON(t0.Add(-day), t0) + `,"keyword":"x","keyword_search_area":{"types":["bogus"]}}`, 400},
		{"msg ok", "POST", msgPath, "source=t&v=2", "{" + startJSON(t0.Add(-90*day), t0) + "}", 200},
		{"msg missing source", "POST", msgPath, "v=2", "{" + startJSON(t0.Add(-day), t0) + "}", 400},
		{"msg long source", "POST", msgPath, "source=abcdefghijklmnopqrstu", "{" + startJSON(t0.Add(-day), t0) + "}", 400},
		{"msg window too long", "POST", msgPath, "source=t", "{" + startJSON(t0.Add(-91*day), t0) + "}", 400},
		{"msg bad status", "POST", msgPath, "source=t", "{" + startJSON(t0.Add(-day), t0) + `,"status":["DONE"]}`, 400},
		{"consumer missing", "POST", byCons, "source=t", `{}`, 400},
		{"by id none", "POST", byIDPath, "source=t", `{}`, 400},
		{"by id no source", "POST", byIDPath, "", `{"conversationId":"x"}`, 400},
		{"del two kinds", "POST", delPath, "", `{"engagement":["1"],"consumer":["2"]}`, 400},
		{"del ticketing", "POST", delPath, "", `{"ticketing":["1"]}`, 400},
		{"del empty", "POST", delPath, "", `{"engagement":[]}`, 400},
		{"del duplicate", "POST", delPath, "", `{"engagement":["1","1"]}`, 400},
		{"del open conversation", "POST", delPath, "", `{"conversation":["open-1"]}`, 400},
		{"del 101", "POST", delPath, "", `{"consumer":[` + strings.Repeat(`"x",`, 100) + `"y"]}`, 400},
		{"del ok", "POST", delPath, "", `{"consumer":["p"]}`, 201},
		{"list bad date", "GET", delPath, "fromDate=15-03-2026", "", 400},
		{"list bad status", "GET", delPath, "status=OPEN", "", 400},
		{"get unknown", "GET", delPath + "/999", "", "", 404},
	} {
		if got, body := h.do(t, tc.method, tc.path, tc.query, tc.body); got != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, got, body, tc.want)
		}
	}
}

func TestAuthChecks(t *testing.T) {
	h := newHarness(t, Config{})
	post := func(auth string) int {
		req, _ := http.NewRequest("GET", h.srv.URL+delPath, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	token := func(secret string) (int, string) {
		form := url.Values{"client_id": {"lpsim-" + acct}, "client_secret": {secret}, "grant_type": {"client_credentials"}}
		resp, err := h.srv.Client().Post(h.srv.URL+"/sentinel/api/v2/account/"+acct+"/app/token",
			"application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b.AccessToken
	}
	if st, _ := token("wrong"); st != 401 {
		t.Errorf("wrong secret: %d, want 401", st)
	}
	st, jwt := token("lpsim-secret-" + acct)
	if st != 200 || strings.Count(jwt, ".") != 2 {
		t.Fatalf("token: %d %q", st, jwt)
	}
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer nope", 401}, {"Bearer tok", 200}, {"Bearer " + jwt, 200},
		{"Bearer " + jwt[:len(jwt)-2] + "xx", 401}, {`OAuth oauth_consumer_key="x"`, 401},
	} {
		if got := post(tc.auth); got != tc.want {
			t.Errorf("auth %q: %d, want %d", tc.auth, got, tc.want)
		}
	}
	h.clk.Advance(61 * time.Minute)
	if got := post("Bearer " + jwt); got != 401 {
		t.Errorf("expired token: %d, want 401", got)
	}
}

func TestFuzzyMatch(t *testing.T) {
	for _, tc := range []struct {
		query  string
		fields []string
		want   bool
	}{
		{`"ABC-123"`, []string{"ABC-123"}, true},
		{`"ABC-123"`, []string{"ABC-1234"}, true}, // near miss is a hit
		{`"ABC-123"`, []string{"abc-12"}, true},
		{`"ABC-123"`, []string{"XYZ-123"}, false},
		{`"jane.doe@example.com"`, []string{"john.doe@example.com"}, true}, // shared surname and domain
		{`"jane.doe@example.com"`, []string{"bob@mail.test"}, false},
		{`"jane.doe@example.com"`, []string{"Jane", "Doe", "jd@example.org"}, true},
		{`""`, []string{"x"}, false},
	} {
		if got := fuzzyMatch(tc.query, tc.fields...); got != tc.want {
			t.Errorf("fuzzyMatch(%s, %q) = %v, want %v", tc.query, tc.fields, got, tc.want)
		}
	}
}

func TestSearchRules(t *testing.T) {
	h := newHarness(t, Config{})
	day := 24 * time.Hour
	mk := func(id string, start time.Time, customer string) Chat {
		return Chat{EngagementID: id, Account: acct, Start: start, End: start.Add(10 * time.Minute), Ended: true,
			CustomerID: customer}
	}
	_ = h.sim.AddChat(mk("1", t0.Add(-time.Hour), "LAG-1")) // ended 50 min ago: not yet searchable
	_ = h.sim.AddChat(mk("2", t0.Add(-14*30*day), "OLD-1")) // beyond 13 months
	_ = h.sim.AddChat(mk("3", t0.Add(-5*day), "NUM-9"))     // searchable
	running := mk("4", t0.Add(-5*day), "NUM-9")
	running.Ended = false
	_ = h.sim.AddChat(running) // chats still running are not returned
	count := func(body string) int {
		st, b := h.do(t, "POST", engPath, "limit=100", body)
		if st != 200 {
			t.Fatalf("status %d: %s", st, b)
		}
		var r struct {
			Recs []any `json:"interactionHistoryRecords"`
		}
		_ = json.Unmarshal([]byte(b), &r)
		return len(r.Recs)
	}
	if n := count("{" + startJSON(t0.Add(-day), t0) + `,"keyword":"\"LAG-1\""}`); n != 0 {
		t.Errorf("lagging record found %d times", n)
	}
	if n := count("{" + startJSON(t0.Add(-day), t0) + `}`); n != 1 {
		t.Errorf("listing without keyword: %d, want 1 (lag is for attributes)", n)
	}
	h.clk.Advance(2 * time.Hour)
	if n := count("{" + startJSON(t0.Add(-day), t0) + `,"keyword":"\"LAG-1\""}`); n != 1 {
		t.Errorf("after the lag: %d, want 1", n)
	}
	if n := count("{" + startJSON(t0.Add(-14*30*day), t0.Add(-14*30*day+day)) + `}`); n != 0 {
		t.Errorf("record beyond retention returned %d times", n)
	}
	if n := count("{" + startJSON(t0.Add(-6*day), t0) + `,"keyword":"\"NUM-9\""}`); n != 1 {
		t.Errorf("NUM-9: %d, want 1 (the running chat excluded)", n)
	}

	// Messaging: purely numeric values of more than three digits are
	// unsearchable, as phrase or as attribute; mixed values are not.
	_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Status: "CLOSE",
		Start: t0.Add(-3 * day), End: t0.Add(-3*day + time.Hour), CustomerID: "48213377"})
	_ = h.sim.AddConversation(Conversation{ID: "c2", Account: acct, ConsumerID: "p2", Status: "CLOSE",
		Start: t0.Add(-3 * day), End: t0.Add(-3*day + time.Hour), CustomerID: "XK-5521"})
	for _, tc := range []struct {
		phrase string
		want   int
	}{{`"48213377"`, 0}, {`"482"`, 0}, {`"XK-5521"`, 1}, {`"5521"`, 0}} {
		st, b := h.do(t, "POST", msgPath, "source=t", "{"+startJSON(t0.Add(-day*10), t0)+`,"sdeSearch":{"customerInfo":"`+
			strings.ReplaceAll(tc.phrase, `"`, `\"`)+`"}}`)
		var r struct {
			Recs []any `json:"conversationHistoryRecords"`
		}
		_ = json.Unmarshal([]byte(b), &r)
		if st != 200 || len(r.Recs) != tc.want {
			t.Errorf("sdeSearch %s: %d records (status %d), want %d", tc.phrase, len(r.Recs), st, tc.want)
		}
	}
}

func TestDeletionMasking(t *testing.T) {
	h := newHarness(t, Config{})
	_ = h.sim.AddChat(Chat{EngagementID: "e1", Account: acct, Start: t0.Add(-48 * time.Hour), End: t0.Add(-47 * time.Hour),
		Ended: true, CustomerID: "C-1", Email: "a@example.com", Lines: []string{"hi", "there"}})
	_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Status: "CLOSE",
		Start: t0.Add(-48 * time.Hour), End: t0.Add(-47 * time.Hour), CustomerID: "C-1", Name: "Ann", Messages: []string{"yo"}})
	for _, body := range []string{`{"engagement":["e1"]}`, `{"consumer":["p1"]}`} {
		if st, b := h.do(t, "POST", delPath, "", body); st != 201 {
			t.Fatalf("create %s: %d %s", body, st, b)
		}
	}
	h.clk.Advance(5*24*time.Hour + 20*24*time.Hour)
	c, _ := h.sim.Chat("e1")
	if c.CustomerID != DeletedMarker || c.Email != DeletedMarker || len(c.Transcript) != 2 ||
		c.Transcript[0].Text != DeletedMarker || c.Transcript[1].Text != DeletedMarker {
		t.Errorf("chat after DONE = %+v", c)
	}
	p, _ := h.sim.Consumer(acct, "p1")
	if p.FirstName != DeletedMarker {
		t.Errorf("consumer after DONE = %+v", p)
	}
	cv, _ := h.sim.Conversation("c1")
	if cv.CustomerID != "C-1" || cv.Transcript[0] != (Line{Author: AuthorConsumer, Text: "yo"}) {
		t.Errorf("consumer deletion masked the conversation: %+v", cv)
	}
	for _, d := range h.sim.Deletions(acct) {
		if got := h.sim.DeletionStatus(d.ID); got != "DONE" {
			t.Errorf("request %d: %s, want DONE", d.ID, got)
		}
	}
}

func TestQuotaAndStats(t *testing.T) {
	a := DefaultAccount(acct, "us")
	a.MonthlyQuota = 1
	h := newHarness(t, Config{Accounts: []Account{a}})
	if st, _ := h.do(t, "POST", delPath, "", `{"consumer":["b","a"]}`); st != 201 {
		t.Fatalf("first create: %d", st)
	}
	st, body := h.do(t, "POST", delPath, "", `{"consumer":["x"]}`)
	if st != 429 || !strings.Contains(body, "Requests threshold for current month was reached") {
		t.Errorf("over quota: %d %s", st, body)
	}
	h.clk.Advance(20 * 24 * time.Hour) // April
	if st, _ := h.do(t, "POST", delPath, "", `{"consumer":["a","b"]}`); st != 201 {
		t.Fatalf("create in April: %d", st)
	}
	_, raw := h.do(t, "GET", "/_lpsim/stats", "", "")
	var s Stats
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	if s.DeletionsCreated != 2 || len(s.Duplicates) != 1 || s.Duplicates[0] != `{"consumer":["a","b"]}` || s.ByStatus[429] != 1 {
		t.Errorf("stats = %+v", s)
	}
	_, raw = h.do(t, "GET", "/_lpsim/calls", "", "")
	var calls []Call
	_ = json.Unmarshal([]byte(raw), &calls)
	if len(calls) != 3 || calls[0].Service != ServiceRTBF || calls[0].Op != OpCreate || calls[0].Auth != "bearer" ||
		calls[1].Status != 429 || calls[0].Body != `{"consumer":["b","a"]}` {
		t.Errorf("calls = %+v", calls)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, Config{RateLimits: map[string]float64{ServiceMsgHist: 1}, RateBurst: 2})
	var codes []int
	for range 4 {
		st, _ := h.do(t, "POST", byIDPath, "source=t", `{"conversationId":"x"}`)
		codes = append(codes, st)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[3] != 429 {
		t.Errorf("statuses = %v, want 200 200 … 429", codes)
	}
}

func TestWrongHostFault(t *testing.T) {
	h := newHarness(t, Config{})
	h.sim.AddFault(Fault{Service: ServiceDomain, Kind: FaultWrongHost, Host: "lo.x.liveperson.net", ForService: ServiceRTBF})
	_, body := h.do(t, "GET", "/api/account/"+acct+"/service/baseURI.json", "version=1.0", "")
	if !strings.Contains(body, `"baseURI":"lo.x.liveperson.net","service":"rtbf"`) ||
		!strings.Contains(body, strings.TrimPrefix(h.srv.URL, "http://")) {
		t.Errorf("list with wrong rtbf host: %s", body)
	}
	if st, _ := h.do(t, "GET", "/api/account/"+acct+"/service/rtbf/baseURI.json", "", ""); st != 400 {
		t.Errorf("missing version: %d, want 400", st)
	}
	if st, _ := h.do(t, "GET", "/api/account/999/service/rtbf/baseURI.json", "version=1.0", ""); st != 401 {
		t.Errorf("unknown account: %d, want 401", st)
	}
}

func TestFaultSelection(t *testing.T) {
	h := newHarness(t, Config{Seed: 7})
	h.sim.AddFault(Fault{Service: ServiceRTBF, Op: OpList, Kind: FaultStatus, Status: 502, Nth: 2, Times: 2})
	var codes []int
	for range 5 {
		st, _ := h.do(t, "GET", delPath, "", "")
		codes = append(codes, st)
	}
	if fmt.Sprint(codes) != "[200 502 502 200 200]" {
		t.Errorf("statuses = %v, want [200 502 502 200 200]", codes)
	}
	h.sim.ClearFaults()
	h.sim.AddFault(Fault{Service: ServiceRTBF, Kind: FaultStatus, Probability: 0.5})
	n := 0
	for range 40 {
		if st, _ := h.do(t, "GET", delPath, "", ""); st == 503 {
			n++
		}
	}
	if n < 8 || n > 32 {
		t.Errorf("probability 0.5 fired %d of 40 times", n)
	}
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
)

// lpCalls makes, through lp, calls whose requests carry a subject identifier (in search
// bodies), a conversation id (in a by-id body) and a deletion request id (in paths), and
// returns them. The deletion request was created for the conversation.
func lpCalls(t *testing.T, lp *livePerson, account string) (subject, conversation, deletion string) {
	t.Helper()
	return lpCallsIn(context.Background(), t, lp, account)
}

// lpCallsIn is lpCalls under ctx (a span of ours, say).
func lpCallsIn(ctx context.Context, t *testing.T, lp *livePerson, account string) (subject, conversation, deletion string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	subject, conversation = "jane.roe@example.org", "7d0f2c4e-51aa-4c1b-9e55-1f3c0b2a9d88"
	now := time.Now()
	if _, err := lp.client.SearchConversations(ctx, account, liveperson.ConversationQuery{From: now.Add(-time.Hour), To: now, CustomerInfo: subject}); err != nil {
		t.Fatalf("conversations: %v", err)
	}
	if _, err := lp.client.SearchEngagements(ctx, account, liveperson.EngagementQuery{From: now.Add(-time.Hour), To: now, Keyword: subject}); err != nil {
		t.Fatalf("engagements: %v", err)
	}
	if _, err := lp.client.ConversationsByID(ctx, account, []string{conversation}, liveperson.SearchContent); err != nil {
		t.Fatalf("conversation by id: %v", err)
	}
	req, err := lp.client.CreateDeletion(ctx, account, liveperson.KindConversation, []string{conversation})
	if err != nil {
		t.Fatalf("create deletion: %v", err)
	}
	if _, err := lp.client.GetDeletion(ctx, account, req.ID); err != nil {
		t.Fatalf("get deletion: %v", err)
	}
	if _, err := lp.client.CancelDeletion(ctx, account, req.ID); err != nil {
		t.Fatalf("cancel deletion: %v", err)
	}
	return subject, conversation, req.ID
}

// TestLivePersonSpans: with tracing on, each LivePerson call (sentinel's token and the Domain
// API's discovery included) is a client span named by its route; no span holds the subject,
// the conversation id or the deletion request id, nor a query string.
func TestLivePersonSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	const account = "12345678"
	a := lpsim.DefaultAccount(account, "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: account, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s", a.ClientSecret)}
	lp, err := wireLivePerson(&e.cfg, slog.New(slog.DiscardHandler), lpReports{traces: tp})
	if err != nil {
		t.Fatal(err)
	}
	subject, conversation, deletion := lpCalls(t, lp, account)

	spans := exp.GetSpans()
	names := map[string]bool{}
	for _, s := range spans {
		names[s.Name] = true
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("span %s: kind %v, want client", s.Name, s.SpanKind)
		}
		values := []string{s.Name}
		for _, kv := range s.Attributes {
			values = append(values, kv.Value.Emit())
			switch kv.Key {
			case "url.full":
				u := kv.Value.AsString()
				if strings.Contains(u, "?") || !strings.Contains(u, "/account/"+account+"/") {
					t.Errorf("span %s: url.full %q, want the route with the account and no query", s.Name, u)
				}
			case "http.url", "url.path", "url.query":
				t.Errorf("span %s: attribute %s kept", s.Name, kv.Key)
			}
		}
		for _, ev := range s.Events {
			values = append(values, ev.Name)
			for _, kv := range ev.Attributes {
				values = append(values, kv.Value.Emit())
			}
		}
		for _, v := range values {
			if strings.Contains(v, subject) || strings.Contains(v, conversation) || strings.Contains(v, "/"+deletion) {
				t.Errorf("span %s holds a subject's identifier or a record id: %q", s.Name, v)
			}
		}
	}
	for _, want := range []string{
		"POST /sentinel/api/v2/account/{account}/app/token",
		"GET /api/account/{account}/service/msgHist/baseURI.json",
		"POST /messaging_history/api/account/{account}/conversations/search",
		"POST /messaging_history/api/account/{account}/conversations/conversation/search",
		"POST /interaction_history/api/account/{account}/interactions/search",
		"POST /api/account/{account}/personal-data-deletion",
		"GET /api/account/{account}/personal-data-deletion/{id}",
		"POST /api/account/{account}/personal-data-deletion/{id}/cancel",
	} {
		if !names[want] {
			t.Errorf("no span %q; spans: %v", want, names)
		}
	}
}

// TestNoTraceContextToLivePerson: with tracing on, the global propagator set to W3C trace
// context and baggage, and the calls made under a span of ours carrying baggage, no request
// that reaches LivePerson (sentinel and the Domain API included) carries traceparent,
// tracestate or baggage: our traces, and what baggage may hold, are not LivePerson's.
func TestNoTraceContextToLivePerson(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	defer tp.Shutdown(context.Background())

	const account = "12345678"
	a := lpsim.DefaultAccount(account, "us")
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{a}})
	var mu sync.Mutex
	var requests int
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		for _, h := range []string{"Traceparent", "Tracestate", "Baggage"} {
			if r.Header.Get(h) != "" {
				seen[h+" "+r.URL.Path]++
			}
		}
		mu.Unlock()
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { sim.Close(); srv.Close() })
	e := &simEnv{sim: sim, cfg: defaultConfig(), dir: t.TempDir(), env: map[string]string{}}
	e.cfg.LivePerson.DomainAPIURL = srv.URL
	e.cfg.getenv = func(k string) string { return e.env[k] }
	e.cfg.Accounts = []Account{{ID: account, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s", a.ClientSecret)}
	lp, err := wireLivePerson(&e.cfg, slog.New(slog.DiscardHandler), lpReports{traces: tp})
	if err != nil {
		t.Fatal(err)
	}
	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "erasure")
	defer span.End()
	lpCallsIn(ctx, t, lp, account)

	mu.Lock()
	defer mu.Unlock()
	if requests < 8 {
		t.Fatalf("%d requests reached the simulator, want the token, discovery and every call", requests)
	}
	if len(seen) > 0 {
		t.Errorf("trace context sent to LivePerson: %v", seen)
	}
}

// TestLivePersonUntraced: with tracing off the transport is not wrapped, and no span is made
// even with a global tracer provider set.
func TestLivePersonUntraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)

	const account = "12345678"
	a := lpsim.DefaultAccount(account, "us")
	e := newSimEnv(t, a)
	e.cfg.Accounts = []Account{{ID: account, Region: "us"}}
	e.cfg.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: a.ClientID, ClientSecretFile: e.file("s", a.ClientSecret)}
	lp, err := wireLivePerson(&e.cfg, slog.New(slog.DiscardHandler), lpReports{})
	if err != nil {
		t.Fatal(err)
	}
	lpCalls(t, lp, account)
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("tracing off: %d spans", len(spans))
	}
	if tracedClient(nil) != nil {
		t.Error("tracing off: a traced HTTP client was built")
	}
}

func TestLPRoute(t *testing.T) {
	for _, tc := range []struct{ path, route, withAccount string }{
		{"/api/account/123/personal-data-deletion/4711/cancel", "/api/account/{account}/personal-data-deletion/{id}/cancel",
			"/api/account/123/personal-data-deletion/{id}/cancel"},
		{"/messaging_history/api/account/123/conversations/7d0f2c4e-51aa/messages", "/messaging_history/api/account/{account}/conversations/{id}/{id}",
			"/messaging_history/api/account/123/conversations/{id}/{id}"},
		{"/api/account/le%40x/service/rtbf/baseURI.json", "/api/account/{account}/service/rtbf/baseURI.json",
			"/api/account/{account}/service/rtbf/baseURI.json"}, // only a plain number is kept as an account
		{"/jane.roe@example.org", "/{id}", "/{id}"},
		{"", "", ""},
	} {
		if got := lpRoute(tc.path, false); got != tc.route {
			t.Errorf("lpRoute(%q, false) = %q, want %q", tc.path, got, tc.route)
		}
		if got := lpRoute(tc.path, true); got != tc.withAccount {
			t.Errorf("lpRoute(%q, true) = %q, want %q", tc.path, got, tc.withAccount)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"https://va.msghist.liveperson.net/messaging_history/api/account/123/conversations/search?offset=0&source=x",
			"https://va.msghist.liveperson.net/messaging_history/api/account/123/conversations/search"},
		{"https://user:pw@h.example:8443/api/account/1/personal-data-deletion/99#frag", "https://h.example:8443/api/account/1/personal-data-deletion/{id}"},
		{"http://h?email=jane.roe@example.org", "http://h"},
		{"not a url", "{url}"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTracingConfig(t *testing.T) {
	if d := defaultConfig().Tracing; d.Enabled || d.SampleRatio != 1 || d.ServiceName != "erasured" {
		t.Errorf("default tracing = %+v, want off, ratio 1, service erasured", d)
	}
	on := TracingConfig{Enabled: true, OTLPEndpoint: "otel-collector:4317", SampleRatio: 0.25, ServiceName: "erasured"}
	for _, tc := range []struct {
		name string
		edit func(*TracingConfig)
		want string // "" no problem
	}{
		{"good", func(*TracingConfig) {}, ""},
		{"off without endpoint", func(c *TracingConfig) { c.Enabled, c.OTLPEndpoint = false, "" }, ""},
		{"on without endpoint", func(c *TracingConfig) { c.OTLPEndpoint = "" }, "tracing.otlp_endpoint is required"},
		{"url", func(c *TracingConfig) { c.OTLPEndpoint = "http://collector:4317" }, "tracing.otlp_endpoint: \"http://collector:4317\" is not host:port"},
		{"no port", func(c *TracingConfig) { c.OTLPEndpoint = "collector" }, "tracing.otlp_endpoint"},
		{"port zero", func(c *TracingConfig) { c.OTLPEndpoint = "collector:0" }, "tracing.otlp_endpoint"},
		{"no host", func(c *TracingConfig) { c.OTLPEndpoint = ":4317" }, "tracing.otlp_endpoint"},
		{"ratio above 1", func(c *TracingConfig) { c.SampleRatio = 1.5 }, "tracing.sample_ratio must be between 0 and 1"},
		{"ratio negative", func(c *TracingConfig) { c.SampleRatio = -0.1 }, "tracing.sample_ratio"},
		{"no service name", func(c *TracingConfig) { c.ServiceName = "" }, "tracing.service_name"},
	} {
		c := on
		tc.edit(&c)
		err := c.check()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want no problem", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestTracingFromFileAndEnv: the tracing keys are read from the file, each has its variable,
// and config check reports a bad one with its line.
func TestTracingFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	path := goodConfig(t, dir, true)
	env := map[string]string{
		"ERASURED_TRACING_ENABLED": "true", "ERASURED_TRACING_OTLP_ENDPOINT": "127.0.0.1:4317",
		"ERASURED_TRACING_INSECURE": "true", "ERASURED_TRACING_SAMPLE_RATIO": "0.5", "ERASURED_TRACING_SERVICE_NAME": "erasured-eu",
	}
	c, err := loadConfig([]string{"--config", path}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := TracingConfig{Enabled: true, OTLPEndpoint: "127.0.0.1:4317", Insecure: true, SampleRatio: 0.5, ServiceName: "erasured-eu"}
	if c.Tracing != want {
		t.Errorf("tracing from the environment = %+v, want %+v", c.Tracing, want)
	}
	env["ERASURED_TRACING_SAMPLE_RATIO"] = "half"
	if _, err := loadConfig([]string{"--config", path}, func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), "ERASURED_TRACING_SAMPLE_RATIO (for tracing.sample_ratio)") || !strings.Contains(err.Error(), "a number") {
		t.Errorf("a bad ratio in the environment: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := writeFile(t, dir, "bad.yaml", string(raw)+"tracing:\n  enabled: true\n  sample_ratio: 2\n", 0o600)
	_, err = loadConfig([]string{"--config", bad}, noEnv)
	for _, w := range []string{"tracing.otlp_endpoint is required", "tracing.sample_ratio must be between 0 and 1"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("file with a bad tracing section: %v, want %q", err, w)
		}
	}
	if err != nil && !strings.Contains(err.Error(), "line ") {
		t.Errorf("the tracing problems carry no line: %v", err)
	}
}

// TestStartTracingOff: tracing off builds no provider and no exporter, and its stop is a no-op.
func TestStartTracingOff(t *testing.T) {
	tp, stop, err := startTracing(context.Background(), TracingConfig{OTLPEndpoint: "127.0.0.1:1"}, slog.New(slog.DiscardHandler))
	if err != nil || tp != nil {
		t.Fatalf("startTracing off = %v, %v; want no provider", tp, err)
	}
	stop()
}

// TestThrottledErrors: an exporter failing all the time is logged once a period.
func TestThrottledErrors(t *testing.T) {
	var logs syncBuffer
	h := &throttledErrors{log: slog.New(slog.NewJSONHandler(&logs, nil)), every: time.Hour}
	for range 5 {
		h.Handle(errors.New("connection refused"))
	}
	if n := strings.Count(logs.String(), "exporting spans failed"); n != 1 {
		t.Errorf("%d lines for 5 failures within the period, want 1:\n%s", n, logs.String())
	}
	h.last = time.Now().Add(-2 * time.Hour)
	h.Handle(errors.New("connection refused"))
	if !strings.Contains(logs.String(), `"errors_not_logged":4`) {
		t.Errorf("the next line does not count the 4 left out:\n%s", logs.String())
	}
}

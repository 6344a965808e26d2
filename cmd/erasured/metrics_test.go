package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// metricsEnv is erasured's wiring of metrics, store, service and gRPC server, as realMain does
// it, with the metrics listener on loopback.
type metricsEnv struct {
	t      *testing.T
	m      *metrics
	srv    *server.Server
	client erasurev1.ErasureServiceClient
	conn   *grpc.ClientConn
	db     *faultyStore
	base   string // http://host:port of the metrics listener
}

func newMetricsEnv(t *testing.T) *metricsEnv {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	m := newMetrics()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets, OnCommit: m.observeCommit})
	if err != nil {
		t.Fatal(err)
	}
	db := &faultyStore{storeBackend: bolt}
	keys, err := service.NewKeyring("test", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, keys, service.Config{Logger: log, Accounts: []string{"1234"}, OnIncident: m.incident, OnStateChange: m.stateChange})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(svc, server.Options{Logger: log, Metrics: m.grpc, HealthPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.attach(svc, srv, bolt.Path(), []string{"1234"}, func(string) int { return 100 })

	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served, metricsDone := make(chan error, 1), make(chan error, 1)
	go func() { served <- srv.Serve(glis) }()
	go func() { metricsDone <- m.serve(ctx, mlis, &access{}, log) }()
	conn, err := grpc.NewClient(glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		stop()
		if err := <-metricsDone; err != nil {
			t.Errorf("metrics serve: %v", err)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
		db.Close()
	})
	return &metricsEnv{t: t, m: m, srv: srv, client: erasurev1.NewErasureServiceClient(conn), conn: conn, db: db, base: "http://" + mlis.Addr().String()}
}

// get fetches path from the metrics listener: its status and body.
func (e *metricsEnv) get(path string) (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.base + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// sample is the value of the series name whose labels include want, from a text exposition;
// ok false when there is none.
func sample(body, name string, want map[string]string) (v float64, ok bool) {
	for line := range strings.SplitSeq(body, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[p[1]] = p[2]
		}
		match := true
		for k, w := range want {
			if labels[k] != w {
				match = false
			}
		}
		if match {
			f, err := strconv.ParseFloat(m[3], 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestMetricsScrape: after one Submit, a scrape of /metrics holds the gRPC series of the call,
// the erasures by state under the API's state names, build info, the quota used and limit per
// account and the store's size and commit durations; /healthz and /readyz answer, and /readyz
// turns 503 once shutdown begins.
func TestMetricsScrape(t *testing.T) {
	e := newMetricsEnv(t)
	if _, err := e.client.Submit(context.Background(), &erasurev1.SubmitRequest{RequestId: "0b6c3a52-4c61-4c1e-9a55-5d7f3e0a9d11",
		AccountId: "1234", Subject: &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: "ABC-123"}}}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	code, body := e.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64 // -1: any value above 0
	}{
		{"grpc_server_started_total", map[string]string{"grpc_method": "Submit", "grpc_service": "erasure.v1.ErasureService", "grpc_type": "unary"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Submit", "grpc_code": "OK"}, 1},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Watch", "grpc_code": "OK", "grpc_type": "server_stream"}, 0},
		{"grpc_server_handling_seconds_count", map[string]string{"grpc_method": "Submit"}, 1},
		{"erasured_erasures", map[string]string{"state": "STATE_RECEIVED"}, 1},
		{"erasured_erasures", map[string]string{"state": "STATE_COMPLETED"}, 0},
		{"erasured_state_changes_total", map[string]string{"from": "STATE_UNSPECIFIED", "to": "STATE_RECEIVED"}, 1},
		{"erasured_build_info", map[string]string{}, 1},
		{"erasured_quota_used_requests", map[string]string{"account": "1234"}, 0},
		{"erasured_quota_limit_requests", map[string]string{"account": "1234"}, 100},
		{"erasured_store_size_bytes", nil, -1},
		{"erasured_store_commit_seconds_count", nil, -1},
		{"erasured_watch_streams", nil, 0},
	} {
		got, ok := sample(body, tc.name, tc.labels)
		switch {
		case !ok:
			t.Errorf("%s%v is absent", tc.name, tc.labels)
		case tc.want < 0 && got <= 0, tc.want >= 0 && got != tc.want:
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for _, gone := range []string{"erasured_quota_left", `state="received"`, `state="completed"`} {
		if strings.Contains(body, gone) {
			t.Errorf("the scrape still holds %s", gone)
		}
	}
	if _, ok := sample(body, "erasured_build_info", map[string]string{"go_version": ""}); ok {
		t.Errorf("erasured_build_info has no go_version")
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := e.get(path); code != http.StatusOK {
			t.Errorf("%s = %d, want 200", path, code)
		}
	}
	e.srv.Drain()
	if code, body := e.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d %q, want 503", code, body)
	}
	if code, _ := e.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200", code)
	}
}

// TestErasureCountsCurrent: every scrape shows the erasures as they are now (the counts are
// kept with each change, nothing is cached between scrapes): a Submit and then a Cancel are
// each seen by the next scrape.
func TestErasureCountsCurrent(t *testing.T) {
	e := newMetricsEnv(t)
	counts := func() (received, cancelled float64) {
		_, body := e.get("/metrics")
		received, _ = sample(body, "erasured_erasures", map[string]string{"state": "STATE_RECEIVED"})
		cancelled, _ = sample(body, "erasured_erasures", map[string]string{"state": "STATE_CANCELLED"})
		return received, cancelled
	}
	if r, c := counts(); r != 0 || c != 0 {
		t.Fatalf("before any Submit: %v received, %v cancelled", r, c)
	}
	res, err := e.client.Submit(context.Background(), &erasurev1.SubmitRequest{RequestId: "1b6c3a52-4c61-4c1e-9a55-5d7f3e0a9d11",
		AccountId: "1234", Subject: &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: "ABC-1"}}})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if r, c := counts(); r != 1 || c != 0 {
		t.Errorf("after a Submit: %v received, %v cancelled; want 1, 0", r, c)
	}
	if _, err := e.client.Cancel(context.Background(), &erasurev1.CancelRequest{Name: res.GetErasure().GetName(), Reason: "test"}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if r, c := counts(); r != 0 || c != 1 {
		t.Errorf("after a Cancel: %v received, %v cancelled; want 0, 1", r, c)
	}
}

// TestUnreadableCountsFailTheScrape: when the erasure counts cannot be read from a store that
// reports no failure, the scrape fails (the target shows down) instead of dropping the series,
// which would silence an alert on them.
func TestUnreadableCountsFailTheScrape(t *testing.T) {
	e := newMetricsEnv(t)
	if code, _ := e.get("/metrics"); code != http.StatusOK {
		t.Fatalf("scrape with a readable store: HTTP %d", code)
	}
	e.db.failViews.Store(true)
	if code, body := e.get("/metrics"); code != http.StatusInternalServerError {
		t.Errorf("scrape with a store whose reads fail: HTTP %d, want 500\n%s", code, body)
	}
}

// TestFailedStoreScrapesStoreDown: a store that reports a failure (closed here; etcd
// unreachable alike) is not read: the scrape answers, with erasured_store_up 0 and without the
// series read from the store, so the alert on erasured_store_up fires, not a scrape failure.
func TestFailedStoreScrapesStoreDown(t *testing.T) {
	e := newMetricsEnv(t)
	code, body := e.get("/metrics")
	if up, ok := sample(body, "erasured_store_up", nil); code != http.StatusOK || !ok || up != 1 {
		t.Fatalf("scrape with a healthy store: HTTP %d, erasured_store_up %v (found %v), want 200 and 1", code, up, ok)
	}
	e.db.Close() // the cleanup's second Close is harmless
	code, body = e.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("scrape with a closed store: HTTP %d, want 200\n%s", code, body)
	}
	if up, ok := sample(body, "erasured_store_up", nil); !ok || up != 0 {
		t.Errorf("erasured_store_up = %v (found %v), want 0", up, ok)
	}
	if _, ok := sample(body, "erasured_erasures", nil); ok {
		t.Error("erasured_erasures is reported from a closed store")
	}
	if _, ok := sample(body, "erasured_quota_limit_requests", map[string]string{"account": "1234"}); !ok {
		t.Error("erasured_quota_limit_requests, which the configuration gives, is missing")
	}
}

// TestLivePersonCallCode: the code label is the HTTP status, or "none" when no response came.
func TestLivePersonCallCode(t *testing.T) {
	m := newMetrics()
	m.observeCall(liveperson.Observation{Service: "svc", Op: "op", Status: 200})
	m.observeCall(liveperson.Observation{Service: "svc", Op: "op", Status: 0})
	for code, want := range map[string]float64{"200": 1, "none": 1, "0": 0} {
		if got := counterValue(t, m.lpCalls, "service", "svc", "op", "op", "code", code); got != want {
			t.Errorf("code %q: %v calls, want %v", code, got, want)
		}
	}
}

// TestProbesOpenBeyondLoopback: on a metrics listener beyond loopback (TLS, tokens), /healthz and
// /readyz answer without a token while /metrics still refuses one.
func TestProbesOpenBeyondLoopback(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	files, err := server.LoadTLS(pki.CertFile, pki.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := server.NewAuth(server.Callers{Tokens: []server.TokenPrincipal{
		{Principal: "prometheus", SHA256: hashOf(t, "scrape"), Roles: []server.Role{server.RoleMetrics}}}})
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	m.ready = func() error { return nil }
	lis, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.serve(ctx, lis, &access{auth: auth, tls: files}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.client(t, "")}}
	defer client.CloseIdleConnections()
	base := "https://127.0.0.1:" + strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 401} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s without a token = %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer scrape")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/metrics with the metrics token = %d, want 200", resp.StatusCode)
	}
}

// TestForecastMetrics: the planner's latest forecast of an account shows in the scrape: the
// erasures forecast to miss, the demand ratio, and the days the quota lasts, counted from the
// quota used now (99 of 100, though the forecast was made at 50) at the forecast's pace of 10
// requests a day.
func TestForecastMetrics(t *testing.T) {
	e := newMetricsEnv(t)
	now := time.Now().UTC()
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		f := pipeline.Forecast{Account: "1234", Time: now, Misses: 3, Limit: 100, Month: pipeline.Month(now), Used: 50,
			ErasuresPerDay: 40, RequestsPerDay: 10, DemandRatio: 3.05, Over: true}
		if err := pipeline.PutForecast(tx, f); err != nil {
			return err
		}
		return pipeline.PutQuota(tx, "1234", pipeline.Month(now), pipeline.Quota{Used: 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, body := e.get("/metrics")
	account := map[string]string{"account": "1234"}
	if got, ok := sample(body, "erasured_forecast_misses", account); !ok || got != 3 {
		t.Errorf("erasured_forecast_misses = %v (present %v), want 3", got, ok)
	}
	if got, ok := sample(body, "erasured_quota_demand_ratio", account); !ok || got != 3.05 {
		t.Errorf("erasured_quota_demand_ratio = %v (present %v), want 3.05", got, ok)
	}
	want := min(0.1, pipeline.NextMonth(now).Sub(now).Hours()/24)
	if got, ok := sample(body, "erasured_quota_days_left", account); !ok || got < want-0.01 || got > want+0.01 {
		t.Errorf("erasured_quota_days_left = %v (present %v), want %v (1 request left at 10 a day)", got, ok, want)
	}
}

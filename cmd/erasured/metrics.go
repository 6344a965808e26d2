package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// metrics are erasured's Prometheus metrics. Labels carry states, services, codes and account
// ids — never a subject's identifier or a LivePerson record id.
type metrics struct {
	reg            *prometheus.Registry
	grpc           *grpcprom.ServerMetrics // given to server.Options.Metrics
	lpCalls        *prometheus.CounterVec
	lpLatency      *prometheus.HistogramVec
	lpAuthFailures *prometheus.CounterVec
	incidents      *prometheus.CounterVec
	stateChanges   *prometheus.CounterVec
	commits        prometheus.Histogram
	leader         prometheus.Gauge
	leaderTerms    prometheus.Counter
	state          *stateCollector // the gauges; nil until attach
	ready          func() error    // /readyz; nil until attach
}

// newMetrics is the registry with the counters and histograms fed as things happen. It comes
// before the store opens (commit durations) and the server (its interceptors); attach adds the
// gauges read from them.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), grpc: server.NewMetrics()}
	m.lpCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erasured_liveperson_calls_total",
		Help: "LivePerson API calls by service, operation and HTTP status code (\"none\" when no response came).",
	}, []string{"service", "op", "code"})
	m.lpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "erasured_liveperson_call_seconds", Help: "LivePerson API call latency.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	}, []string{"service", "op"})
	m.lpAuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erasured_liveperson_auth_failures_total",
		Help: "LivePerson refusals of an account's credentials (no token from sentinel, or 401/403), by account and LivePerson service.",
	}, []string{"account", "service"})
	m.incidents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erasured_incidents_total",
		Help: "Failures an operator must see (step_rejected, auth_failed, erasure_failed, transition_refused), by kind and pipeline step.",
	}, []string{"kind", "step"})
	m.stateChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erasured_state_changes_total",
		Help: "Committed changes of an erasure's state, by the state before (STATE_UNSPECIFIED for a new erasure) and after.",
	}, []string{"from", "to"})
	m.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "erasured_store_commit_seconds", Help: "Duration of the store's commits (write and sync to disk).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "erasured_leader",
		Help: "1 while this replica holds the pipeline's leadership (it alone runs the pipeline), 0 otherwise.",
	})
	m.leaderTerms = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "erasured_leader_terms_total", Help: "Terms of pipeline leadership this replica has won.",
	})
	version, revision, goVersion := buildLabels()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "erasured_build_info", Help: "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": goVersion},
	})
	build.Set(1)
	m.reg.MustRegister(m.grpc, m.lpCalls, m.lpLatency, m.lpAuthFailures, m.incidents, m.stateChanges, m.commits, m.leader, m.leaderTerms, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// attach adds the gauges read at scrape time (erasures, quota, the month forecast, held batches, Watch streams,
// store health and size; dbPath is "" for a store that is not a file) and makes /readyz follow srv's readiness. quotaLimit is each account's monthly
// quota as the pipeline applies it.
func (m *metrics) attach(svc *service.Service, srv *server.Server, dbPath string, accounts []string, quotaLimit func(string) int) {
	m.ready = srv.Ready
	m.state = &stateCollector{svc: svc, watchers: srv.Watchers, dbPath: dbPath, accounts: accounts, quotaLimit: quotaLimit}
	m.reg.MustRegister(m.state)
}

// buildLabels are the version, VCS revision and Go version of the running binary, "unknown"
// where the build did not record them.
func buildLabels() (version, revision, goVersion string) {
	v := readVersion()
	return v.Version, v.Revision, v.Go
}

// serve exposes /metrics, /healthz and /readyz on lis until ctx ends. On a listener bound to
// loopback all three are open. Beyond loopback (allowed only with callers and TLS, see
// checkListeners and listenChecked) the listener speaks erasured's TLS and a scrape of /metrics
// needs a bearer token or client certificate whose principal holds the metrics role; /healthz
// and /readyz stay open, like gRPC health, as they reveal nothing. What decides is the address
// bound, not the one written.
func (m *metrics) serve(ctx context.Context, lis net.Listener, acc *access, log *slog.Logger) error {
	var h http.Handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	guarded := !boundLoopback(lis)
	if guarded {
		if acc.auth == nil || acc.tls == nil {
			lis.Close()
			return fmt.Errorf("metrics listener on %s beyond loopback needs callers and TLS", lis.Addr())
		}
		h = metricsGuard(acc.auth, h, log)
		lis = tls.NewListener(lis, acc.tls.Config())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", m.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	// The shutdown below ends Serve; serve returns only once it has finished, so that no
	// goroutine of the listener outlives it. A Serve that fails ends the shutdown's wait too.
	ctx, stop := context.WithCancel(ctx)
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	defer func() { stop(); <-shutDown }()
	log.Info("metrics serving", "listen", lis.Addr().String(), "tls", guarded, "token_required", guarded)
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// readyz answers 200 while erasured takes work (the rule of gRPC health: the store usable and
// no shutdown begun), 503 otherwise.
func (m *metrics) readyz(w http.ResponseWriter, _ *http.Request) {
	err := errors.New("starting")
	if m.ready != nil {
		err = m.ready()
	}
	if err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// metricsGuard admits a scrape with a bearer token, or a verified client certificate, whose
// principal holds the metrics role: 401 without a known caller, 403 for a principal without the
// role. A refusal is logged with
// the principal, never the token.
func metricsGuard(auth *server.Auth, next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, bearer, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		principal, roles, ok := "", []server.Role(nil), false
		if strings.EqualFold(scheme, "bearer") && bearer != "" {
			principal, roles, ok = auth.Token(strings.TrimSpace(bearer))
		}
		if !ok && r.TLS != nil {
			principal, roles, ok = auth.Certificate(r.TLS)
		}
		switch {
		case !ok:
			log.Warn("metrics scrape refused: no known bearer token or client certificate", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="erasured metrics"`)
			http.Error(w, "a bearer token or client certificate with the metrics role is required", http.StatusUnauthorized)
		case !slices.Contains(roles, server.RoleMetrics):
			log.Warn("metrics scrape refused: the principal lacks the metrics role", "principal", principal, "remote", r.RemoteAddr)
			http.Error(w, "the metrics role is required", http.StatusForbidden)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// observeCall counts a LivePerson call.
func (m *metrics) observeCall(o liveperson.Observation) {
	code := "none" // no HTTP response: refused, timed out, cut off
	if o.Status > 0 {
		code = strconv.Itoa(o.Status)
	}
	m.lpCalls.WithLabelValues(o.Service, o.Op, code).Inc()
	m.lpLatency.WithLabelValues(o.Service, o.Op).Observe(o.Duration.Seconds())
}

// authFailed counts a refusal of an account's credentials.
func (m *metrics) authFailed(account, service string) {
	m.lpAuthFailures.WithLabelValues(account, service).Inc()
}

// leading records that a term of pipeline leadership began (true) or ended (false).
func (m *metrics) leading(on bool) {
	if on {
		m.leader.Set(1)
		m.leaderTerms.Inc()
		return
	}
	m.leader.Set(0)
}

// observeCommit records the duration of a store commit (boltstore.Options.OnCommit).
func (m *metrics) observeCommit(d time.Duration) { m.commits.Observe(d.Seconds()) }

// incident counts a failure the service reported.
func (m *metrics) incident(i service.Incident) {
	m.incidents.WithLabelValues(i.Kind, i.Step).Inc()
}

// stateChange counts a committed state change, the states named as in the API.
func (m *metrics) stateChange(from, to service.State) {
	m.stateChanges.WithLabelValues(erasurev1.State(from).String(), erasurev1.State(to).String()).Inc()
}

var (
	descByState = prometheus.NewDesc("erasured_erasures", "Erasures by state (as named in the API).", []string{"state"}, nil)
	descAtRisk  = prometheus.NewDesc("erasured_erasures_at_risk", "Open erasures that may miss their legal deadline.", nil, nil)
	descWatch   = prometheus.NewDesc("erasured_watch_streams", "Open Watch streams.", nil, nil)
	descUsed    = prometheus.NewDesc("erasured_quota_used_requests",
		"LivePerson deletion requests counted against this month's quota, per account (the limit once LivePerson reports the quota exhausted).",
		[]string{"account"}, nil)
	descLimit = prometheus.NewDesc("erasured_quota_limit_requests", "LivePerson deletion requests allowed per month, per account.", []string{"account"}, nil)
	descHeld  = prometheus.NewDesc("erasured_deletion_batches_held",
		"Deletion batches whose LivePerson create outcome is unknown, held until an operator settles them (SettleBatch), per account.",
		[]string{"account"}, nil)
	descForecastMisses = prometheus.NewDesc("erasured_forecast_misses",
		"Queued erasures the month forecast finds will be sent after their latest safe submit time, so may miss their legal deadline (each is marked at risk), per account.",
		[]string{"account"}, nil)
	descQuotaDaysLeft = prometheus.NewDesc("erasured_quota_days_left",
		"Days this month's LivePerson deletion quota lasts at the pace of requests the demand calls for, per account; at most the days until the month ends, which it is when the quota carries the month.",
		[]string{"account"}, nil)
	descDemandRatio = prometheus.NewDesc("erasured_quota_demand_ratio",
		"Deletion requests a month the recent demand calls for over the monthly quota, per account: above 1 the quota cannot carry the demand.",
		[]string{"account"}, nil)
	descSize    = prometheus.NewDesc("erasured_store_size_bytes", "Size of the store's database file.", nil, nil)
	descStoreUp = prometheus.NewDesc("erasured_store_up",
		"1 while the store serves, 0 while it reports a failure (etcd unreachable, a commit failed on the disk, closed).", nil, nil)
)

// stateCollector reads the gauges at scrape time. Each is cheap to read: the erasure counts
// are one stored entry the service keeps with every change, the quota one entry per account,
// the held batches one marker each (there are few), so a scrape never reads the erasures.
type stateCollector struct {
	svc        *service.Service
	watchers   func() int64
	dbPath     string
	accounts   []string
	quotaLimit func(string) int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descByState, descAtRisk, descWatch, descUsed, descLimit, descHeld, descSize, descStoreUp,
		descForecastMisses, descQuotaDaysLeft, descDemandRatio} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descWatch, prometheus.GaugeValue, float64(c.watchers()))
	for _, acct := range c.accounts {
		ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(c.quotaLimit(acct)), acct)
	}
	if fi, err := os.Stat(c.dbPath); c.dbPath != "" && err == nil {
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(fi.Size()))
	}
	// A store that reports a failure is not read: erasured_store_up 0 says why the series read
	// from it are missing (and is what to alert on), and a scrape does not wait on a store that
	// does not answer.
	if c.svc.Healthy() != nil {
		ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, 1)
	// A count that cannot be read from a store that reports no failure fails the scrape (the
	// target shows down) rather than leaving its series out, which would quietly silence the
	// alerts on them.
	if st, err := c.svc.Stats(); err != nil {
		ch <- prometheus.NewInvalidMetric(descByState, err)
	} else {
		for s := service.StateReceived; s <= service.StateRejected; s++ {
			ch <- prometheus.MustNewConstMetric(descByState, prometheus.GaugeValue, float64(st.ByState[s]), erasurev1.State(s).String())
		}
		ch <- prometheus.MustNewConstMetric(descAtRisk, prometheus.GaugeValue, float64(st.AtRisk))
	}
	for _, acct := range c.accounts {
		limit := c.quotaLimit(acct)
		if left, err := c.svc.QuotaLeft(acct, limit); err != nil {
			ch <- prometheus.NewInvalidMetric(descUsed, err)
		} else {
			ch <- prometheus.MustNewConstMetric(descUsed, prometheus.GaugeValue, float64(limit-left), acct)
		}
	}
	// The forecast is one ledger entry per account, written by the pipeline's planner (on
	// whichever replica leads); an account it has not forecast yet has no series.
	if fs, err := c.svc.Forecast(context.Background()); err != nil {
		ch <- prometheus.NewInvalidMetric(descForecastMisses, err)
	} else {
		for _, f := range fs {
			ch <- prometheus.MustNewConstMetric(descForecastMisses, prometheus.GaugeValue, float64(f.Misses), f.Account)
			ch <- prometheus.MustNewConstMetric(descQuotaDaysLeft, prometheus.GaugeValue, f.QuotaDaysLeft, f.Account)
			ch <- prometheus.MustNewConstMetric(descDemandRatio, prometheus.GaugeValue, f.DemandRatio, f.Account)
		}
	}
	if held, err := c.svc.HeldBatchCounts(); err == nil {
		for acct, n := range held {
			ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(n), acct)
		}
	}
}

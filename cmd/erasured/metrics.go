package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// metrics are erasured's Prometheus metrics. Labels carry states, services, codes and account
// ids — never a subject's identifier or a LivePerson record id.
type metrics struct {
	reg            *prometheus.Registry
	lpCalls        *prometheus.CounterVec
	lpLatency      *prometheus.HistogramVec
	lpAuthFailures *prometheus.CounterVec
	incidents      *prometheus.CounterVec
}

func newMetrics(svc *service.Service, watchers func() int64, quotaLeft func() map[string]int) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.lpCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erasured_liveperson_calls_total", Help: "LivePerson API calls by service, operation and HTTP status code.",
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
		Help: "Failures an operator must see (step_rejected, auth_failed, erasure_failed), by kind and pipeline step.",
	}, []string{"kind", "step"})
	m.reg.MustRegister(m.lpCalls, m.lpLatency, m.lpAuthFailures, m.incidents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{svc: svc, watchers: watchers, quotaLeft: quotaLeft})
	return m
}

// serve exposes /metrics on lis until ctx ends. On a listener bound to loopback it is open.
// Beyond loopback (allowed only with callers and TLS, see checkListeners and listenChecked) it
// is served over erasured's TLS and a scrape needs a bearer token or client certificate whose
// principal holds the metrics role. What decides is the address bound, not the one written.
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("metrics serving", "listen", lis.Addr().String(), "tls", guarded, "token_required", guarded)
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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
	m.lpCalls.WithLabelValues(o.Service, o.Op, strconv.Itoa(o.Status)).Inc()
	m.lpLatency.WithLabelValues(o.Service, o.Op).Observe(o.Duration.Seconds())
}

// authFailed counts a refusal of an account's credentials.
func (m *metrics) authFailed(account, service string) {
	m.lpAuthFailures.WithLabelValues(account, service).Inc()
}

// incident counts a failure the service reported.
func (m *metrics) incident(i service.Incident) {
	m.incidents.WithLabelValues(i.Kind, i.Step).Inc()
}

var (
	descByState   = prometheus.NewDesc("erasured_erasures", "Erasures by state.", []string{"state"}, nil)
	descAtRisk    = prometheus.NewDesc("erasured_erasures_at_risk", "Open erasures that may miss their legal deadline.", nil, nil)
	descWatchers  = prometheus.NewDesc("erasured_watch_streams", "Open Watch streams.", nil, nil)
	descQuotaLeft = prometheus.NewDesc("erasured_quota_left", "LivePerson deletion requests left this month, per account.", []string{"account"}, nil)
	descHeld      = prometheus.NewDesc("erasured_deletion_batches_held",
		"Deletion batches whose LivePerson create outcome is unknown, held until an operator settles them (SettleBatch), per account.",
		[]string{"account"}, nil)
)

// stateCollector reads the counts from the store at scrape time.
type stateCollector struct {
	svc       *service.Service
	watchers  func() int64
	quotaLeft func() map[string]int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descByState
	ch <- descAtRisk
	ch <- descWatchers
	ch <- descQuotaLeft
	ch <- descHeld
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if st, err := c.svc.Stats(); err == nil {
		for s := service.StateReceived; s <= service.StateRejected; s++ {
			ch <- prometheus.MustNewConstMetric(descByState, prometheus.GaugeValue, float64(st.ByState[s]), strings.ToLower(s.String()))
		}
		ch <- prometheus.MustNewConstMetric(descAtRisk, prometheus.GaugeValue, float64(st.AtRisk))
	}
	ch <- prometheus.MustNewConstMetric(descWatchers, prometheus.GaugeValue, float64(c.watchers()))
	for acct, left := range c.quotaLeft() {
		ch <- prometheus.MustNewConstMetric(descQuotaLeft, prometheus.GaugeValue, float64(left), acct)
	}
	if held, err := c.svc.HeldBatchCounts(); err == nil {
		for acct, n := range held {
			ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(n), acct)
		}
	}
}

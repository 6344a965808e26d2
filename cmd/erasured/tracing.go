package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/erasured/erasured/liveperson"
)

// TracingConfig is the tracing section: OpenTelemetry traces of the gRPC calls served and of
// the LivePerson calls made, exported over OTLP gRPC. Off by default; off, no exporter is built
// and nothing is sent anywhere.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
	// OTLPEndpoint is the collector's OTLP gRPC address, host:port (e.g. otel-collector:4317).
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// Insecure sends traces to the collector in plaintext (a collector on loopback or beside
	// erasured); otherwise over TLS, verified against the system's roots.
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the share of traces begun here that are kept, 0 to 1 (default 1). A call
	// that arrives with a W3C traceparent follows its caller's decision.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the traces (default erasured).
	ServiceName string `yaml:"service_name"`
}

// check reports every problem of the tracing section, each by its key.
func (t TracingConfig) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if t.Enabled && t.OTLPEndpoint == "" {
		bad("tracing.otlp_endpoint is required when tracing.enabled is true")
	}
	if t.OTLPEndpoint != "" {
		host, port, err := net.SplitHostPort(t.OTLPEndpoint)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || host == "" || strings.Contains(t.OTLPEndpoint, "/") || perr != nil || n == 0 {
			bad("tracing.otlp_endpoint: %q is not host:port, the collector's OTLP gRPC address such as otel-collector:4317 (no scheme, no path)", t.OTLPEndpoint)
		}
	}
	if math.IsNaN(t.SampleRatio) || t.SampleRatio < 0 || t.SampleRatio > 1 {
		bad("tracing.sample_ratio must be between 0 and 1, not %v", t.SampleRatio)
	}
	if n := len(t.ServiceName); n == 0 || n > 100 {
		bad("tracing.service_name must be 1 to 100 characters")
	}
	return errors.Join(errs...)
}

// tracingShutdownTimeout bounds the flush of the spans still buffered at exit: a collector
// that is down must not hold the exit.
const tracingShutdownTimeout = 5 * time.Second

// startTracing builds the tracer provider of the configuration, and the function that flushes
// and stops it (to be called on every exit path, once the calls and the work are done). Tracing
// off: a nil provider, and no exporter. The exporter connects lazily: a collector that is down
// delays no start, and each export that fails is logged at most once a minute.
func startTracing(ctx context.Context, t TracingConfig, log *slog.Logger) (*sdktrace.TracerProvider, func(), error) {
	if !t.Enabled {
		return nil, func() {}, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(t.OTLPEndpoint)}
	if t.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(context.WithoutCancel(ctx), opts...) // it must still export at exit
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	otel.SetErrorHandler(&throttledErrors{log: log, every: time.Minute})
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(t.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", t.ServiceName),
			attribute.String("service.version", readVersion().Version))),
	)
	log.Info("tracing on", "otlp_endpoint", t.OTLPEndpoint, "insecure", t.Insecure, "sample_ratio", t.SampleRatio)
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans not flushed at exit", "err", err)
		}
	}, nil
}

// throttledErrors logs OpenTelemetry's own errors (an export that failed, mostly) as WARN lines,
// at most one per period, with the count of those left out: an unreachable collector fails every
// few seconds.
type throttledErrors struct {
	log     *slog.Logger
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (h *throttledErrors) Handle(err error) {
	h.mu.Lock()
	now := time.Now()
	if !h.last.IsZero() && now.Sub(h.last) < h.every {
		h.dropped++
		h.mu.Unlock()
		return
	}
	dropped := h.dropped
	h.last, h.dropped = now, 0
	h.mu.Unlock()
	h.log.Warn("tracing: exporting spans failed", "err", err, "errors_not_logged", dropped)
}

// tracedTransport wraps base so that each LivePerson HTTP call is a client span, when tp is set
// (else base is returned as it is). The span holds the method, the host, the status code and the
// route, never a record's id: its name and url.full give the path with every segment but
// LivePerson's fixed words and the account replaced (see lpRoute), and no query string. Request and
// response bodies, where searches carry subject identifiers, are never recorded, and nothing of
// our traces is sent to LivePerson.
func tracedTransport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	if tp == nil {
		return base
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(redactingProvider{tp}),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + lpRoute(r.URL.Path, false)
		}),
	)
}

// tracedClient is an HTTP client whose calls are traced (see tracedTransport); nil when tp is.
func tracedClient(tp trace.TracerProvider) *http.Client {
	if tp == nil {
		return nil
	}
	return &http.Client{Transport: tracedTransport(http.DefaultTransport, tp)}
}

// lpWords are the fixed segments of LivePerson's paths; any other segment is an id.
var lpWords = map[string]bool{
	"api": true, "account": true, "service": true, "baseURI.json": true,
	"personal-data-deletion": true, "cancel": true,
	"interaction_history": true, "interactions": true, "search": true,
	"messaging_history": true, "conversations": true, "consumer": true, "conversation": true,
	"v1": true, "v2": true, "app": true, "token": true,
	liveperson.ServiceDeletion: true, liveperson.ServiceEngagements: true, liveperson.ServiceMessaging: true,
	liveperson.ServiceSentinel: true, liveperson.ServiceAgentVep: true,
}

// lpRoute is path as a route template: each segment that is not one of LivePerson's fixed
// words becomes {id}, so that no record's id (a deletion request's, or a conversation's, which
// ties the span to a subject) is kept; the one after "account" becomes {account}, or with
// keepAccount stays the account id.
func lpRoute(path string, keepAccount bool) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch {
		case s == "":
		case i > 0 && segs[i-1] == "account":
			if !keepAccount || strings.Trim(s, "0123456789") != "" {
				segs[i] = "{account}"
			}
		case !lpWords[s]:
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

// urlFull is the attribute where otelhttp records the whole URL; redactingSpan keeps of it the
// scheme, the host and the route with its account.
const urlFull = "url.full"

// redactingProvider hands out tracers whose spans rewrite url.full (see redactingSpan).
type redactingProvider struct{ trace.TracerProvider }

func (p redactingProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return redactingTracer{p.TracerProvider.Tracer(name, opts...)}
}

type redactingTracer struct{ trace.Tracer }

func (t redactingTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, span := t.Tracer.Start(ctx, name, opts...)
	rs := redactingSpan{span}
	return trace.ContextWithSpan(ctx, rs), rs
}

// redactingSpan replaces url.full by its route, and drops any other attribute holding a URL.
type redactingSpan struct{ trace.Span }

func (s redactingSpan) SetAttributes(kvs ...attribute.KeyValue) {
	out := make([]attribute.KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		switch kv.Key {
		case urlFull:
			out = append(out, attribute.String(urlFull, redactURL(kv.Value.AsString())))
		case "http.url", "url.path", "url.query", "http.target":
		default:
			out = append(out, kv)
		}
	}
	s.Span.SetAttributes(out...)
}

// redactURL is raw with its path made a route and its query, fragment and user dropped.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "{url}"
	}
	hostport, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(hostport, "@"); i >= 0 {
		hostport = hostport[i+1:]
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return scheme + "://" + hostport + lpRoute(path, true)
}

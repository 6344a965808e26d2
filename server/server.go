// Package server is erasured's gRPC adapter: the interceptor chain (caller authentication by
// bearer token or client certificate, the one table of roles per method, caps on calls and
// streams, validation), the one table from service errors to gRPC codes, proto ⇄ domain
// conversion, Watch streaming, TLS, health and reflection.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// Options tune the server. Zero values take the defaults shown.
type Options struct {
	Logger *slog.Logger
	// Heartbeat is how long a Watch stream stays silent before a heartbeat (default 10s).
	Heartbeat time.Duration
	// HealthPoll is how often the store's health is checked (default 2s).
	HealthPoll time.Duration
	// MaxRecvMsgSize bounds a request (default 1 MiB); MaxSendMsgSize a response (default 16 MiB).
	MaxRecvMsgSize, MaxSendMsgSize int
	// Auth authenticates callers by bearer token or client certificate. Nil: no caller
	// authentication, every caller is "anonymous" with every role; only for a server on
	// loopback (the command refuses any other address without it).
	Auth *Auth
	// TLS serves the connections over TLS (with client certificates when it has a client CA).
	// Nil: plaintext.
	TLS *TLSFiles
	// Limits cap the streams and unary calls held open, per server and per principal.
	Limits Limits
	// Metrics, when set, counts every call (grpc_server_started_total, grpc_server_handled_total,
	// grpc_server_handling_seconds) from the outermost interceptor, so refusals by authentication,
	// limits and validation are counted with their codes. The caller registers it on its registry.
	Metrics *grpcprom.ServerMetrics
	// TracerProvider, when set, traces every call but health checks and reflection: a server
	// span per call with its method and status code (see tracingOptions). Nil: no tracing.
	TracerProvider trace.TracerProvider
	// ExtraOptions are appended to the grpc.Server options.
	ExtraOptions []grpc.ServerOption
}

// NewMetrics is the gRPC server metrics for Options.Metrics: the go-grpc-middleware Prometheus
// provider's counters and its handling-time histogram (grpc_server_handling_seconds), in buckets
// from 5 ms to about 40 s (a Watch stream's whole life lands in the last one).
func NewMetrics() *grpcprom.ServerMetrics {
	return grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(0.005, 2, 14))))
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// Every line logged with a call's context carries its request id (see LogHandler).
	o.Logger = slog.New(LogHandler(o.Logger.Handler()))
	if o.Heartbeat <= 0 {
		o.Heartbeat = 10 * time.Second
	}
	if o.HealthPoll <= 0 {
		o.HealthPoll = 2 * time.Second
	}
	if o.MaxRecvMsgSize <= 0 {
		o.MaxRecvMsgSize = 1 << 20
	}
	if o.MaxSendMsgSize <= 0 {
		o.MaxSendMsgSize = 16 << 20
	}
	o.Limits = o.Limits.withDefaults()
	return o
}

// serviceName is the name health reports for the erasure service.
const serviceName = "erasure.v1.ErasureService"

// Server is the gRPC server of erasured.
type Server struct {
	opts     Options
	grpc     *grpc.Server
	health   *health.Server
	svc      *service.Service
	closing  context.Context // cancelled when shutdown begins: Watch streams end
	close    context.CancelFunc
	watchers atomic.Int64
	draining atomic.Bool
	monitor  chan struct{} // closed when the health monitor has exited
	codec    *malformedCodec
	calls    *gate // unary calls in flight
	streams  *gate // open streams
}

// New builds the server around svc.
func New(svc *service.Service, opts Options) (*Server, error) {
	s := newServer(svc, opts)
	v, err := protovalidate.New()
	if err != nil {
		return nil, err
	}
	unary, stream := s.interceptors(v)
	gopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(s.codec),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(s.opts.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(s.opts.MaxSendMsgSize),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		// Keepalive: detect dead peers of long Watch streams; tolerate clients that ping every 10s.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 60 * time.Second, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if s.opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.opts.TLS.Config())))
	}
	gopts = append(gopts, s.opts.tracingOptions()...)
	s.grpc = grpc.NewServer(append(gopts, s.opts.ExtraOptions...)...)
	erasurev1.RegisterErasureServiceServer(s.grpc, &handler{svc: svc, srv: s})
	healthpb.RegisterHealthServer(s.grpc, healthService{Server: s.health, closing: s.closing})
	if err := registerReflection(s.grpc); err != nil {
		return nil, err
	}
	if s.opts.Metrics != nil {
		// Every method starts at zero, so a rate over a method not yet called is 0, not absent.
		s.opts.Metrics.InitializeMetrics(s.grpc)
	}
	s.setHealth()
	go s.watchHealth()
	return s, nil
}

// newServer is the server without its grpc.Server: the state the interceptors use.
func newServer(svc *service.Service, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{opts: opts, health: health.NewServer(), svc: svc, monitor: make(chan struct{}),
		codec:   newMalformedCodec(),
		calls:   newGate("calls", "TOO_MANY_CALLS", opts.Limits.MaxCalls, opts.Limits.MaxCallsPerPrincipal),
		streams: newGate("streams", "TOO_MANY_STREAMS", opts.Limits.MaxStreams, opts.Limits.MaxStreamsPerPrincipal),
	}
	s.closing, s.close = context.WithCancel(context.Background())
	return s
}

// GRPC exposes the underlying server (for tests that serve it on a bufconn listener).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Watchers is the number of open Watch streams.
func (s *Server) Watchers() int64 { return s.watchers.Load() }

// Serve accepts connections on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// setHealth reports SERVING while the service's store is usable and NOT_SERVING otherwise.
func (s *Server) setHealth() {
	st := healthpb.HealthCheckResponse_SERVING
	if s.Ready() != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(serviceName, st)
}

func (s *Server) watchHealth() {
	defer close(s.monitor)
	t := time.NewTicker(s.opts.HealthPoll)
	defer t.Stop()
	for {
		select {
		case <-s.closing.Done():
			return
		case <-t.C:
			s.setHealth()
		}
	}
}

// Drain reports NOT_SERVING on health so load balancers and probes stop sending new work; the
// first step of shutdown.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.setHealth()
}

// Shutdown stops the server in this order: health turns NOT_SERVING, Watch streams (the
// erasure service's and health's) end with UNAVAILABLE, then in-flight RPCs finish (GracefulStop) until ctx ends, after which the
// rest are cut off. The caller stops workers before and closes the store after.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.close()
	<-s.monitor
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.opts.Logger.Warn("shutdown deadline reached; closing remaining connections")
		s.grpc.Stop()
		<-done
	}
}

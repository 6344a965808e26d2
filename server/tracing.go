package server

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
)

// tracingOptions are the grpc.Server options that trace calls when Options.TracerProvider is
// set: one server span per call, named by its method, with its status code, joined to the
// caller's trace when it sends a W3C traceparent. Health checks and reflection, which probes
// and tools make all day, are not traced. Nothing of a request or response is recorded (no
// message events): requests carry subject identifiers.
func (o Options) tracingOptions() []grpc.ServerOption {
	if o.TracerProvider == nil {
		return nil
	}
	h := otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(o.TracerProvider),
		// The Prometheus provider counts calls already (Options.Metrics).
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		otelgrpc.WithFilter(filters.None(filters.HealthCheck(), filters.ServicePrefix("grpc.reflection."))),
	)
	return []grpc.ServerOption{grpc.StatsHandler(h)}
}

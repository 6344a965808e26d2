package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthService is grpc-go's health service whose Watch streams end when shutdown begins.
// grpc-go's own reports NOT_SERVING on shutdown but keeps its Watch streams open, and a graceful
// stop waits for every open stream: the one health watch a load balancer or a gRPC client keeps
// would hold every shutdown to its deadline.
type healthService struct {
	*health.Server
	closing context.Context // done when shutdown begins
}

// Watch is the health service's Watch until shutdown begins. Then the watcher is sent the final
// status (NOT_SERVING) if it has not seen it yet, and the stream ends with UNAVAILABLE, as the
// erasure Watch streams do.
func (h healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(h.closing, cancel)
	defer stop()
	ws := &healthWatchStream{Health_WatchServer: stream, ctx: ctx, last: -1}
	err := h.Server.Watch(req, ws)
	if h.closing.Err() == nil || stream.Context().Err() != nil {
		return err
	}
	// The inner Watch may have seen the end before the NOT_SERVING that shutdown had just set.
	if res, cerr := h.Server.Check(stream.Context(), req); cerr == nil && res.GetStatus() != ws.last {
		if err := stream.Send(res); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "server shutting down")
}

// healthWatchStream is a health Watch stream whose context also ends when shutdown begins, and
// which remembers the last status sent.
type healthWatchStream struct {
	healthpb.Health_WatchServer
	ctx  context.Context
	last healthpb.HealthCheckResponse_ServingStatus
}

func (s *healthWatchStream) Context() context.Context { return s.ctx }

func (s *healthWatchStream) Send(res *healthpb.HealthCheckResponse) error {
	if err := s.Health_WatchServer.Send(res); err != nil {
		return err
	}
	s.last = res.GetStatus()
	return nil
}

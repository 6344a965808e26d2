package server

import (
	"context"
	"log/slog"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// RequestIDHeader is the metadata key of a call's request id, read from the request and sent
// back in the response header. It ties the log lines of one call together, so that a caller can
// quote it to an operator. It is not the idempotency key of Submit (its request_id field).
const RequestIDHeader = "x-request-id"

// maxRequestIDLen bounds a request id taken from a caller: long enough for a UUID, a ULID or an
// AWS trace header, short enough that a caller cannot fill the logs through it.
const maxRequestIDLen = 64

// requestIDKey carries a call's request id in its context.
type requestIDKey struct{}

// callRequestID is the request id of the call ctx belongs to, or "".
func callRequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID says whether a request id from a caller may be used as it is. It lands in
// every log line of the call, so only a short run of characters that need no escaping in any
// log format passes; anything else is replaced, never echoed.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '=', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// incomingRequestID is the caller's request id when it sent a valid one (the first value of the
// header), else a new random one.
func incomingRequestID(ctx context.Context) string {
	if vals := metadata.ValueFromIncomingContext(ctx, RequestIDHeader); len(vals) > 0 && validRequestID(vals[0]) {
		return vals[0]
	}
	return uuid.NewString()
}

// withRequestID gives the call its request id: in its context (for the log lines), on its span
// (when tracing), and in the header sent back, through setHeader.
func withRequestID(ctx context.Context, setHeader func(metadata.MD) error) context.Context {
	id := incomingRequestID(ctx)
	// The header is only refused once sent, which nothing does before this first interceptor.
	_ = setHeader(metadata.Pairs(RequestIDHeader, id))
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("erasured.request_id", id))
	return context.WithValue(ctx, requestIDKey{}, id)
}

// unaryRequestID is the first unary interceptor: it gives every call a request id.
func unaryRequestID(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	ctx = withRequestID(ctx, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) })
	return next(ctx, req)
}

// streamRequestID is the first stream interceptor: it gives every stream a request id.
func streamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	ctx := withRequestID(ss.Context(), ss.SetHeader)
	return next(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

// contextStream is a stream with its context replaced.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// LogHandler wraps h so that every record logged with the context of a call carries the call's
// request_id, and its trace_id when the call is traced (and its trace sampled). The server wraps its logger so on its
// own; wrapping the process's root handler with it lets the service's lines that are logged with
// a call's context carry them too.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(callHandler); ok {
		return h
	}
	return callHandler{h}
}

// callHandler adds a call's ids to each record (see LogHandler).
type callHandler struct{ slog.Handler }

func (h callHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := callRequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		// Only a sampled trace is exported: another trace id would lead nowhere.
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsSampled() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h callHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return callHandler{h.Handler.WithAttrs(attrs)}
}

func (h callHandler) WithGroup(name string) slog.Handler {
	return callHandler{h.Handler.WithGroup(name)}
}

package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"slices"

	"buf.build/go/protovalidate"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// interceptors returns the unary and stream chains, outermost first:
//   - every call gets its request id (see RequestIDHeader), in the context each log line of the
//     call is written with, and in the response header;
//   - metrics (when Options.Metrics is set) count every call with its final code;
//   - the malformed-request note is taken off each decoded unary request (so none outlives its call);
//   - logging sees the final code of everything below;
//   - authentication names the caller (UNAUTHENTICATED, logged, otherwise);
//   - limits cap the calls and streams held open: a refusal (RESOURCE_EXHAUSTED) is logged, not
//     audited, so a caller at its cap has nothing written for it, and the audit records of one
//     principal's failed calls (each a write to disk) are bounded by its cap of calls;
//   - failed audited calls are recorded (unary), including those refused below;
//   - a request that did not parse answers INVALID_ARGUMENT, once the caller is known;
//   - authorization checks the role the method needs (for Resolve, the request); a stream's is
//     checked before its slot is taken (streams are not audited);
//   - a stream checks its caller again after the callers change (checkedStream);
//   - validation refuses a bad request before any work;
//   - recovery, innermost, turns a panic in a handler into INTERNAL, still logged above it.
func (s *Server) interceptors(v protovalidate.Validator) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	log := s.opts.Logger
	// Only the call's outcome is logged, never payloads: requests carry subject identifiers.
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	l := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if lvl == logging.LevelInfo && routineService(fields) {
			lvl = logging.LevelDebug
		}
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	rec := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "bug: panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	unary := []grpc.UnaryServerInterceptor{
		unaryRequestID,
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := s.codec.takeMalformed(req); err != nil {
				ctx = context.WithValue(ctx, malformedKey{}, err)
			}
			return next(ctx, req)
		},
		logging.UnaryServerInterceptor(l, logOpts...),
		grpcauth.UnaryServerInterceptor(s.authFunc),
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			release, err := s.limit(ctx, s.calls, info.FullMethod)
			if err != nil {
				return nil, err
			}
			defer release()
			return next(ctx, req)
		},
		s.auditFailures,
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err, _ := ctx.Value(malformedKey{}).(error); err != nil {
				return nil, s.malformed(ctx, info.FullMethod, err)
			}
			if err := s.authorize(ctx, info.FullMethod, req); err != nil {
				return nil, err
			}
			if err := validate(v, req); err != nil {
				return nil, err
			}
			return next(ctx, req)
		},
		recovery.UnaryServerInterceptor(rec...),
	}
	stream := []grpc.StreamServerInterceptor{
		streamRequestID,
		logging.StreamServerInterceptor(l, logOpts...),
		grpcauth.StreamServerInterceptor(s.authFunc),
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := s.authorize(ss.Context(), info.FullMethod, nil); err != nil {
				return err
			}
			release, err := s.limit(ss.Context(), s.streams, info.FullMethod)
			if err != nil {
				return err
			}
			defer release()
			return next(srv, &validatingStream{ServerStream: s.checked(ss, info.FullMethod), v: v, srv: s, method: info.FullMethod})
		},
		recovery.StreamServerInterceptor(rec...),
	}
	if m := s.opts.Metrics; m != nil {
		unary = slices.Insert(unary, 1, m.UnaryServerInterceptor())
		stream = slices.Insert(stream, 1, m.StreamServerInterceptor())
	}
	return unary, stream
}

// malformedKey carries, in a unary call's context, the decoding failure of its request.
type malformedKey struct{}

// malformed answers a request that did not parse: INVALID_ARGUMENT, and one warning naming the
// method and the caller. Neither holds the bytes received.
func (s *Server) malformed(ctx context.Context, method string, err error) error {
	principal := ""
	if c := callerOf(ctx); c != nil {
		principal = c.principal
	}
	s.opts.Logger.WarnContext(ctx, "malformed request", "grpc.method", method, "principal", principal, "error", err.Error())
	return statusError(codes.InvalidArgument, "the request is not a valid protobuf message of its type", "MALFORMED_REQUEST", nil)
}

// authorize checks the call's caller against the method's entry in methodRoles; req is the
// decoded request of a unary call (nil for a stream). A method not in the table is refused.
func (s *Server) authorize(ctx context.Context, method string, req any) error {
	acc, listed := methodRoles[method]
	if !listed {
		return statusError(codes.PermissionDenied, shortMethod(method)+" is open to no caller", "PERMISSION_DENIED",
			map[string]string{"method": shortMethod(method)})
	}
	if acc.open {
		return nil
	}
	c := callerOf(ctx)
	if c == nil {
		// Authentication runs first and lets only open methods through without a caller.
		return statusError(codes.Unauthenticated, "authentication required", "UNAUTHENTICATED", nil)
	}
	return authorizeCaller(c, method, acc, req)
}

// authorizeCaller checks c against acc, the entry of method in methodRoles.
func authorizeCaller(c *caller, method string, acc access, req any) error {
	need := acc.roles
	if acc.byRequest {
		if req == nil {
			return statusError(codes.PermissionDenied, shortMethod(method)+" is open to no caller", "PERMISSION_DENIED", nil)
		}
		need = requestRoles(req)
	}
	return authorizeRoles(c, method, need)
}

type validatingStream struct {
	grpc.ServerStream
	v      protovalidate.Validator
	srv    *Server
	method string
}

// RecvMsg receives, then refuses a message that did not parse or breaks its rules. Every
// message of a stream passes here, so the codec's note on it is always taken.
func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := s.srv.codec.takeMalformed(m); err != nil {
		return s.srv.malformed(s.Context(), s.method, err)
	}
	return validate(s.v, m)
}

// validate checks a request against the protovalidate rules of its .proto. A violation becomes
// INVALID_ARGUMENT with a BadRequest detail listing each field, and an ErrorInfo. Violation
// messages name the field and the rule, never the value.
func validate(v protovalidate.Validator, req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	err := v.Validate(msg)
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return status.Error(codes.Internal, "request validation failed to run")
	}
	br := &errdetails.BadRequest{}
	for _, viol := range ve.Violations {
		p := viol.Proto
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       protovalidate.FieldPathString(p.GetField()),
			Description: p.GetMessage(),
			Reason:      p.GetRuleId(),
		})
	}
	st := status.New(codes.InvalidArgument, err.Error())
	if d, derr := st.WithDetails(br, &errdetails.ErrorInfo{Reason: "INVALID_REQUEST", Domain: errorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// routineServices are called all the time by load balancers, health checkers and tools such as
// grpcurl. Their successful calls are logged at DEBUG, so that INFO shows the API's calls; a
// failed one keeps its level.
var routineServices = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// routineService reports whether a call log line's fields (key, value pairs) are those of a
// successful call to a routine service.
func routineService(fields []any) bool {
	var service, code string
	for i := 0; i+1 < len(fields); i += 2 {
		switch k, _ := fields[i].(string); k {
		case logging.ServiceFieldKey:
			service, _ = fields[i+1].(string)
		case "grpc.code":
			code, _ = fields[i+1].(string)
		}
	}
	return routineServices[service] && code == codes.OK.String()
}

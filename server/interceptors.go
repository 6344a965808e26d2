package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// interceptors returns the unary and stream chains, outermost first: logging (sees the final code
// of everything below), validation (a bad request is refused before any work), recovery
// (innermost, so a panic in a handler becomes INTERNAL and is still logged above it).
func interceptors(log *slog.Logger, v protovalidate.Validator) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	// Only the call's outcome is logged, never payloads: requests carry subject identifiers.
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	l := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	rec := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "bug: panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	unary := []grpc.UnaryServerInterceptor{
		logging.UnaryServerInterceptor(l, logOpts...),
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := validate(v, req); err != nil {
				return nil, err
			}
			return next(ctx, req)
		},
		recovery.UnaryServerInterceptor(rec...),
	}
	stream := []grpc.StreamServerInterceptor{
		logging.StreamServerInterceptor(l, logOpts...),
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			return next(srv, &validatingStream{ServerStream: ss, v: v})
		},
		recovery.StreamServerInterceptor(rec...),
	}
	return unary, stream
}

type validatingStream struct {
	grpc.ServerStream
	v protovalidate.Validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
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

package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/erasured/erasured/service"
)

// errorDomain is the ErrorInfo domain of every error this server returns.
const errorDomain = "erasured"

// codeOf is the one table from service error kinds to gRPC codes (AIP-193). Nothing else in the
// code base names gRPC codes for domain errors.
var codeOf = map[service.ErrorKind]codes.Code{
	service.KindInternal:           codes.Internal,
	service.KindInvalid:            codes.InvalidArgument,
	service.KindNotFound:           codes.NotFound,
	service.KindConflict:           codes.AlreadyExists,
	service.KindFailedPrecondition: codes.FailedPrecondition,
	service.KindAborted:            codes.Aborted,
	service.KindOutOfRange:         codes.OutOfRange,
	service.KindUnavailable:        codes.Unavailable,
	service.KindUnimplemented:      codes.Unimplemented,
	service.KindUnauthenticated:    codes.Unauthenticated,
	service.KindPermissionDenied:   codes.PermissionDenied,
}

// toStatus converts an error from the service into a gRPC status error with an ErrorInfo detail.
// Errors that are not service errors are internal: their text is logged by the logging
// interceptor but not sent to the caller.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	var se *service.Error
	if !errors.As(err, &se) {
		se = &service.Error{Kind: service.KindInternal, Reason: "INTERNAL", Message: "internal error"}
	}
	code, ok := codeOf[se.Kind]
	if !ok {
		code = codes.Internal
	}
	st := status.New(code, se.Message)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: se.Reason, Domain: errorDomain, Metadata: se.Metadata}}
	if field := se.Metadata["field"]; field != "" && code == codes.InvalidArgument {
		// As request validation reports it: the field and the rule, never the value.
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: field, Description: se.Message, Reason: se.Reason}}})
	}
	if withInfo, err := st.WithDetails(details...); err == nil {
		st = withInfo
	}
	return st.Err()
}

// statusError is a gRPC status error with an ErrorInfo detail in this server's domain.
func statusError(code codes.Code, msg, reason string, md map[string]string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: md}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// permissionDenied refuses a call whose caller lacks role; the error names the role needed.
func permissionDenied(method string, role Role) error {
	return statusError(codes.PermissionDenied, fmt.Sprintf("%s needs role %s", shortMethod(method), role),
		"PERMISSION_DENIED", map[string]string{"role": string(role), "method": shortMethod(method)})
}

// shortMethod is the RPC name of a full method name: "/erasure.v1.ErasureService/Submit" → "Submit".
func shortMethod(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[i+1:]
	}
	return full
}

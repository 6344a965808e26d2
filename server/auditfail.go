package server

import (
	"context"
	"regexp"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// auditFailures records each audited call by an authenticated caller that fails, whatever the
// code; the service records those that succeed, so every audited call leaves exactly one
// record. A call without a caller (refused before authentication) is only logged, and so is a
// call refused for a cap of calls (RESOURCE_EXHAUSTED): the limit runs before this, so that a
// caller at its cap has nothing written for it, and the records a principal's failing calls
// write are bounded by its cap. A failure to append is logged and the call's own error
// returned.
func (s *Server) auditFailures(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	resp, err := next(ctx, req)
	if err == nil {
		return resp, nil
	}
	c := callerOf(ctx)
	if c == nil {
		return resp, err
	}
	e, audited := auditEntryOf(info.FullMethod, req)
	if !audited {
		return resp, err
	}
	e.Principal = c.principal
	e.Outcome = CodeName(status.Code(err))
	e.Detail = errorReason(err)
	// The record is written even when the caller has gone away.
	if aerr := s.svc.AppendAudit(context.WithoutCancel(ctx), e); aerr != nil {
		s.opts.Logger.ErrorContext(ctx, "audit record of a failed call not written", "grpc.method", info.FullMethod,
			"principal", c.principal, "error", aerr)
	}
	return resp, err
}

// auditEntryOf describes an audited call from its request; false for a call that is not
// audited (reads, and Resolve without a preview or a decision). Only values that cannot hold
// personal data are copied: an erasure id that is a UUID, an account id of letters and digits.
func auditEntryOf(method string, req any) (service.AuditEntry, bool) {
	e := service.AuditEntry{Method: shortMethod(method)}
	var name, account string
	switch r := req.(type) {
	case *erasurev1.SubmitRequest:
		e.Action, account = service.AuditSubmit, r.GetAccountId()
	case *erasurev1.ResolveRequest:
		switch {
		case r.GetPreview() != nil:
			e.Action, account = service.AuditPreview, r.GetPreview().GetAccountId()
		case r.GetDecision().GetReject() != nil:
			e.Action, name = service.AuditReject, r.GetName()
		case r.GetDecision() != nil:
			e.Action, name = service.AuditConfirm, r.GetName()
		default:
			return e, false
		}
	case *erasurev1.CancelRequest:
		e.Action, name = service.AuditCancel, r.GetName()
	case *erasurev1.SettleBatchRequest:
		e.Action, account, e.BatchID = service.AuditSettle, r.GetAccountId(), r.GetBatchId()
	default:
		return e, false
	}
	if id, err := service.ParseName(name); err == nil {
		if _, err := uuid.Parse(id); err == nil {
			e.Erasure = id
		}
	}
	if accountPattern.MatchString(account) {
		e.Account = account
	}
	return e, true
}

// accountPattern is the shape of a LivePerson account id (the request's own rule).
var accountPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)

// errorReason is the ErrorInfo reason of a status error, or "".
func errorReason(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// CodeName is the canonical name of a gRPC code, as the audit trail spells outcomes and tools
// print them ("PERMISSION_DENIED"; Go's String gives "PermissionDenied").
func CodeName(c codes.Code) string {
	if n, ok := canonicalCodes[c]; ok {
		return n
	}
	return "UNKNOWN"
}

var canonicalCodes = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

package server

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// checkedStream ends a stream whose caller the callers' update (Auth.Update, on SIGHUP) no
// longer allows: a revoked token or certificate answers UNAUTHENTICATED, a role taken away
// PERMISSION_DENIED. Before each message sent and after each message received it compares the
// set of callers it last checked against with the current one; only when they differ does it
// look the caller up again, from the call's own credentials. A caller whose principal and
// needed roles are unchanged keeps its stream. A Watch that has nothing to send still sends a
// heartbeat every heartbeat interval, so it ends within one interval of the update; an idle
// reflection stream ends at its next request.
//
// Replacing the client CA (TLSFiles.Reload) does not cut connections whose certificate verified
// under the old CA: TLS checks a certificate once, at the handshake, and such a connection keeps
// its verified chain. What an update of the callers still controls is the common name: every
// call, and every open stream through this check, looks the name up in the current callers, so
// removing its certificate entry cuts the caller off at once. To shut out a CA's certificates
// without naming them, restart the server.
type checkedStream struct {
	grpc.ServerStream
	srv       *Server
	method    string
	principal string

	mu   sync.Mutex
	seen *callerSet // the callers last checked against
	err  error      // once refused, every later message is
}

// checked wraps ss when its caller was authenticated against a set of callers; streams of the
// auth-less server and of open methods are returned as they are.
func (s *Server) checked(ss grpc.ServerStream, method string) grpc.ServerStream {
	c := callerOf(ss.Context())
	if s.opts.Auth == nil || c == nil || c.set == nil {
		return ss
	}
	return &checkedStream{ServerStream: ss, srv: s, method: method, principal: c.principal, seen: c.set}
}

func (s *checkedStream) SendMsg(m any) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.check()
}

func (s *checkedStream) check() error {
	auth := s.srv.opts.Auth
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if auth.set.Load() == s.seen {
		return nil
	}
	ctx := s.Context()
	c, reason := auth.identify(ctx)
	var err error
	switch {
	case c == nil:
		err = statusError(codes.Unauthenticated, "the caller's credentials are no longer accepted", "UNAUTHENTICATED", nil)
	case c.principal != s.principal:
		// The same credentials name someone else now: the caller that opened the stream is gone.
		reason = "credentials now name another principal"
		err = statusError(codes.Unauthenticated, "the caller's credentials are no longer accepted", "UNAUTHENTICATED", nil)
	default:
		err = authorizeCaller(c, s.method, methodRoles[s.method], nil)
		reason = "a role the method needs was taken away"
	}
	if err != nil {
		s.srv.opts.Logger.WarnContext(ctx, "stream ended: its caller is no longer allowed", "grpc.method", s.method,
			"principal", s.principal, "reason", reason)
		s.err = err
		return err
	}
	s.seen = c.set
	return nil
}

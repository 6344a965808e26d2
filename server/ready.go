package server

import "errors"

// errDraining is Ready's answer once shutdown has begun.
var errDraining = errors.New("shutting down")

// Ready is nil while the server takes work: its store is usable and Drain has not been called.
// gRPC health reports SERVING exactly then; an HTTP readiness probe asks the same.
func (s *Server) Ready() error {
	if s.draining.Load() {
		return errDraining
	}
	return s.svc.Healthy()
}

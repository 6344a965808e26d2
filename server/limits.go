package server

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
)

// Limits cap what callers may hold open at once. Zero takes the default shown.
type Limits struct {
	// MaxStreams caps the open streams (Watch, reflection) of the whole server (default 1000);
	// MaxStreamsPerPrincipal those of one principal (default 200).
	MaxStreams, MaxStreamsPerPrincipal int
	// MaxCalls caps the unary calls in flight on the whole server (default 512);
	// MaxCallsPerPrincipal those of one principal (default 128).
	MaxCalls, MaxCallsPerPrincipal int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxStreams, 1000)
	def(&l.MaxStreamsPerPrincipal, 200)
	def(&l.MaxCalls, 512)
	def(&l.MaxCallsPerPrincipal, 128)
	return l
}

// maxStreamsPerConn bounds the concurrent streams of one HTTP/2 connection, so that a single
// connection cannot take the whole server's share; further streams wait in the client.
const maxStreamsPerConn = 256

// gate counts what is held, in total and per principal, against two caps.
type gate struct {
	what         string // "streams" or "calls", for errors and logs
	reason       string // the ErrorInfo reason beyond a cap
	max, perUser int

	mu    sync.Mutex
	total int
	by    map[string]int
}

func newGate(what, reason string, max, perUser int) *gate {
	return &gate{what: what, reason: reason, max: max, perUser: perUser, by: make(map[string]int)}
}

// acquire takes a slot for principal, or returns RESOURCE_EXHAUSTED naming the cap reached.
// On success the caller must call the returned release once.
func (g *gate) acquire(principal string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	scope := ""
	switch {
	case g.total >= g.max:
		scope = "server"
	case g.by[principal] >= g.perUser:
		scope = "principal"
	}
	if scope != "" {
		return nil, statusError(codes.ResourceExhausted,
			fmt.Sprintf("too many open %s for this %s; retry later", g.what, scope),
			g.reason, map[string]string{"scope": scope})
	}
	g.total++
	g.by[principal]++
	var once sync.Once
	return func() { once.Do(func() { g.release(principal) }) }, nil
}

func (g *gate) release(principal string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.by[principal]--; g.by[principal] <= 0 {
		delete(g.by, principal)
	}
}

// limit takes a slot of g for the call's caller; health is never limited. A refusal is logged
// at warn with the principal and the method, never the request.
func (s *Server) limit(ctx context.Context, g *gate, method string) (func(), error) {
	if isHealth(method) {
		return func() {}, nil
	}
	principal := anonymous
	if c := callerOf(ctx); c != nil {
		principal = c.principal
	}
	release, err := g.acquire(principal)
	if err != nil {
		s.opts.Logger.WarnContext(ctx, "limit reached", "grpc.method", method, "principal", principal, "limit", g.what)
		return nil, err
	}
	return release, nil
}

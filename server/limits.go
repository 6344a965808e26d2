package server

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
)

// Limits cap what callers may hold open at once. Zero takes the default shown (DefaultLimits).
type Limits struct {
	// MaxStreams caps the open streams (Watch, health Watch, reflection) of the whole server
	// (default 1000); MaxStreamsPerPrincipal those of one principal (default 200).
	MaxStreams, MaxStreamsPerPrincipal int
	// MaxCalls caps the unary calls in flight on the whole server (default 512);
	// MaxCallsPerPrincipal those of one principal (default 128).
	MaxCalls, MaxCallsPerPrincipal int
	// MaxHealthStreamsPerPeer caps the health Watch streams of one peer IP address (default
	// 16). Health needs no credentials, so its streams are counted by address; they count
	// against MaxStreams too.
	MaxHealthStreamsPerPeer int
}

// DefaultLimits are the caps a server applies where its Options leave a limit at zero.
func DefaultLimits() Limits {
	return Limits{MaxStreams: 1000, MaxStreamsPerPrincipal: 200, MaxCalls: 512, MaxCallsPerPrincipal: 128,
		MaxHealthStreamsPerPeer: 16}
}

// withDefaults is l with each limit left at zero (or below) taken from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxStreams, d.MaxStreams)
	def(&l.MaxStreamsPerPrincipal, d.MaxStreamsPerPrincipal)
	def(&l.MaxCalls, d.MaxCalls)
	def(&l.MaxCallsPerPrincipal, d.MaxCallsPerPrincipal)
	def(&l.MaxHealthStreamsPerPeer, d.MaxHealthStreamsPerPeer)
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
	return g.acquireAs(principal, g.perUser, "principal")
}

// acquireAs takes a slot for key, which may hold at most per of them; scope names what key is
// in the error ("principal", "peer").
func (g *gate) acquireAs(key string, per int, keyScope string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	scope := ""
	switch {
	case g.total >= g.max:
		scope = "server"
	case g.by[key] >= per:
		scope = keyScope
	}
	if scope != "" {
		return nil, statusError(codes.ResourceExhausted,
			fmt.Sprintf("too many open %s for this %s; retry later", g.what, scope),
			g.reason, map[string]string{"scope": scope})
	}
	g.total++
	g.by[key]++
	var once sync.Once
	return func() { once.Do(func() { g.release(key) }) }, nil
}

func (g *gate) release(principal string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.by[principal]--; g.by[principal] <= 0 {
		delete(g.by, principal)
	}
}

// limit takes a slot of g for the call's caller. Health's unary methods are never limited; its
// Watch streams, which need no credentials, are counted by the peer's IP address, under their
// own cap, and against the server's. A refusal is logged at warn with the principal (or the
// peer address) and the method, never the request.
func (s *Server) limit(ctx context.Context, g *gate, method string) (func(), error) {
	key, per, scope := anonymous, g.perUser, "principal"
	switch {
	case method == healthWatch:
		// The key cannot be a principal's name: those hold no space.
		key, per, scope = "peer "+peerHost(ctx), s.opts.Limits.MaxHealthStreamsPerPeer, "peer"
	case isHealth(method):
		return func() {}, nil
	default:
		if c := callerOf(ctx); c != nil {
			key = c.principal
		}
	}
	release, err := g.acquireAs(key, per, scope)
	if err != nil {
		if scope == "peer" {
			s.opts.Logger.WarnContext(ctx, "limit reached", "grpc.method", method, "peer.address", peerHost(ctx), "limit", g.what)
		} else {
			s.opts.Logger.WarnContext(ctx, "limit reached", "grpc.method", method, "principal", key, "limit", g.what)
		}
		return nil, err
	}
	return release, nil
}

// healthWatch is the health service's streaming method.
const healthWatch = "/grpc.health.v1.Health/Watch"

// peerHost is the IP address of the call's peer (without its port), or its whole address when it
// has no port (an in-memory listener).
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// openWatch opens a Watch stream as the token's principal and waits for its first message:
// nil once the stream is open, the refusal otherwise. cancel closes it.
func openWatch(t *testing.T, client erasurev1.ErasureServiceClient, token string) (context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(withToken(context.Background(), token))
	st, err := client.Watch(ctx, &erasurev1.WatchRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	t.Cleanup(cancel)
	return cancel, nil
}

func TestWatchStreamLimits(t *testing.T) {
	callers := Callers{Tokens: []TokenPrincipal{
		{Principal: "a", SHA256: tokenHash("token-a"), Roles: []Role{RoleViewer}},
		{Principal: "b", SHA256: tokenHash("token-b"), Roles: []Role{RoleViewer}},
	}}
	e := newTLSEnv(t, callers, Options{Limits: Limits{MaxStreams: 3, MaxStreamsPerPrincipal: 2}})
	client := e.client()

	var closeA []context.CancelFunc
	for i := range 2 {
		c, err := openWatch(t, client, "token-a")
		if err != nil {
			t.Fatalf("a's stream %d: %v", i+1, err)
		}
		closeA = append(closeA, c)
	}
	_, err := openWatch(t, client, "token-a")
	if status.Code(err) != codes.ResourceExhausted || errorReason(err) != "TOO_MANY_STREAMS" || errorInfo(err).GetMetadata()["scope"] != "principal" {
		t.Fatalf("a's third stream: %v, want RESOURCE_EXHAUSTED TOO_MANY_STREAMS for the principal", err)
	}
	if !strings.Contains(e.logs.String(), `"msg":"limit reached"`) || !strings.Contains(e.logs.String(), `"principal":"a"`) {
		t.Errorf("the refusal is not logged with the principal: %s", e.logs.String())
	}
	if _, err := openWatch(t, client, "token-b"); err != nil {
		t.Fatalf("b's stream while a is at its cap: %v", err)
	}
	// The server is full now (3): b is refused for the server's cap, health still answers.
	if _, err := openWatch(t, client, "token-b"); status.Code(err) != codes.ResourceExhausted || errorInfo(err).GetMetadata()["scope"] != "server" {
		t.Fatalf("b's second stream on a full server: %v, want RESOURCE_EXHAUSTED for the server", err)
	}
	if _, err := healthpb.NewHealthClient(e.dial()).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health Check on a full server: %v", err)
	}
	// Closing one of a's streams frees its slot (the server sees the close a little later).
	closeA[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := openWatch(t, client, "token-a")
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a's stream after closing one: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGate checks the counting behind the call and stream caps.
func TestGate(t *testing.T) {
	g := newGate("calls", "TOO_MANY_CALLS", 3, 2)
	r1, err := g.acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := g.acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.acquire("a"); status.Code(err) != codes.ResourceExhausted || errorReason(err) != "TOO_MANY_CALLS" {
		t.Fatalf("a's third call: %v", err)
	}
	r3, err := g.acquire("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.acquire("c"); errorInfo(err).GetMetadata()["scope"] != "server" {
		t.Fatalf("c on a full server: %v", err)
	}
	r1()
	r1() // a second release is harmless
	if _, err := g.acquire("c"); err != nil {
		t.Fatalf("c after a release: %v", err)
	}
	r2()
	r3()
	if g.total != 1 || len(g.by) != 1 {
		t.Errorf("after releases: total %d, by %v", g.total, g.by)
	}
}

// TestUnaryCallLimit: a principal at its cap of calls in flight is refused the next one.
func TestUnaryCallLimit(t *testing.T) {
	s := newServer(nil, Options{Limits: Limits{MaxCalls: 10, MaxCallsPerPrincipal: 1}})
	ctx := withCaller(context.Background(), &caller{principal: "a", roles: []Role{RoleViewer}})
	release, err := s.limit(ctx, s.calls, erasurev1.ErasureService_Status_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := s.limit(ctx, s.calls, erasurev1.ErasureService_Status_FullMethodName); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second call in flight: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := s.limit(ctx, s.calls, "/grpc.health.v1.Health/Check"); err != nil {
		t.Errorf("health is limited: %v", err)
	}
}

// openHealthWatch opens a health Watch on conn and waits for its first message.
func openHealthWatch(t *testing.T, conn *grpc.ClientConn) (context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	t.Cleanup(cancel)
	return cancel, nil
}

// TestHealthWatchLimits: health needs no credentials, so its Watch streams are capped per peer
// address, whatever connection they come on, and count against the server's cap of streams.
func TestHealthWatchLimits(t *testing.T) {
	callers := Callers{Tokens: []TokenPrincipal{{Principal: "a", SHA256: tokenHash("token-a"), Roles: []Role{RoleViewer}}}}
	e := newTLSEnv(t, callers, Options{Limits: Limits{MaxStreams: 4, MaxStreamsPerPrincipal: 4, MaxHealthStreamsPerPeer: 3}})
	var closeHealth []context.CancelFunc
	for i := range 3 {
		c, err := openHealthWatch(t, e.dial()) // a connection each: the cap is the address's
		if err != nil {
			t.Fatalf("health stream %d: %v", i+1, err)
		}
		closeHealth = append(closeHealth, c)
	}
	_, err := openHealthWatch(t, e.dial())
	if status.Code(err) != codes.ResourceExhausted || errorInfo(err).GetMetadata()["scope"] != "peer" {
		t.Fatalf("fourth health stream of the address: %v, want RESOURCE_EXHAUSTED for the peer", err)
	}
	if !strings.Contains(e.logs.String(), `"peer.address":"127.0.0.1"`) {
		t.Errorf("the refusal is not logged with the peer address: %s", e.logs.String())
	}
	if _, err := healthpb.NewHealthClient(e.dial()).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health Check with the address at its cap: %v", err)
	}
	// The health streams hold 3 of the server's 4.
	client := e.client()
	if _, err := openWatch(t, client, "token-a"); err != nil {
		t.Fatalf("a's stream: %v", err)
	}
	if _, err := openWatch(t, client, "token-a"); status.Code(err) != codes.ResourceExhausted || errorInfo(err).GetMetadata()["scope"] != "server" {
		t.Fatalf("a's second stream with the server full of health streams: %v, want RESOURCE_EXHAUSTED for the server", err)
	}
	closeHealth[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := openWatch(t, client, "token-a")
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a's stream after a health stream closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

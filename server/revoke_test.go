package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// TestUpdateEndsStreamsOfRevokedCallers: after Auth.Update, a Watch whose token is gone ends
// UNAUTHENTICATED and one whose certificate's principal lost the viewer role ends
// PERMISSION_DENIED, each before any further event reaches it; a Watch of a caller the update
// left as it was keeps streaming. The revoked streams end although nothing happens on them:
// their heartbeat carries the check.
func TestUpdateEndsStreamsOfRevokedCallers(t *testing.T) {
	callers := testCallers()
	callers.Tokens = append(callers.Tokens, TokenPrincipal{Principal: "keeper", SHA256: tokenHash("keeper-token"), Roles: []Role{RoleViewer}})
	e := newTLSEnv(t, callers, Options{Heartbeat: 50 * time.Millisecond})

	open := func(ctx context.Context, client erasurev1.ErasureServiceClient) erasurev1.ErasureService_WatchClient {
		t.Helper()
		w, err := client.Watch(ctx, &erasurev1.WatchRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Recv(); err != nil {
			t.Fatal(err)
		}
		return w
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	byToken := open(withToken(ctx, "secret-viewer"), e.client())
	byCert := open(ctx, e.client(e.clientCA.clientCert(t, "cn-viewer")))
	kept := open(withToken(ctx, "keeper-token"), e.client())

	// The update drops t-viewer's token, leaves c-viewer only the metrics role, and keeps the
	// rest as they were.
	var next Callers
	for _, tp := range callers.Tokens {
		if tp.Principal != "t-viewer" {
			next.Tokens = append(next.Tokens, tp)
		}
	}
	for _, cp := range callers.Certificates {
		if cp.Principal == "c-viewer" {
			cp.Roles = []Role{RoleMetrics}
		}
		next.Certificates = append(next.Certificates, cp)
	}
	if err := e.srv.opts.Auth.Update(next); err != nil {
		t.Fatal(err)
	}
	// ended reads w until it ends, which must be with want and before any event reaches it.
	ended := func(name string, w erasurev1.ErasureService_WatchClient, want codes.Code) {
		t.Helper()
		for {
			r, err := w.Recv()
			if err != nil {
				if status.Code(err) != want {
					t.Errorf("%s: stream ended with %v, want %v", name, err, want)
				}
				return
			}
			if len(r.GetEvents()) > 0 {
				t.Errorf("%s: an event reached the stream after the update", name)
				return
			}
		}
	}
	// Nothing happens: the revoked token's stream ends all the same, at a heartbeat.
	ended("revoked token", byToken, codes.Unauthenticated)
	// An event for every watcher: only the kept one may see it.
	if _, err := e.client().Submit(withToken(ctx, "secret-submitter"), &erasurev1.SubmitRequest{
		RequestId: uuid.NewString(), AccountId: "1234", Subject: customerID("ABC-123")}); err != nil {
		t.Fatal(err)
	}
	ended("certificate without the role", byCert, codes.PermissionDenied)
	for {
		r, err := kept.Recv()
		if err != nil {
			t.Fatalf("the unchanged caller's stream ended: %v", err)
		}
		if len(r.GetEvents()) > 0 {
			break
		}
	}
	if n := strings.Count(e.logs.String(), `"msg":"stream ended: its caller is no longer allowed"`); n != 2 {
		t.Errorf("%d log lines of ended streams, want 2", n)
	}
}

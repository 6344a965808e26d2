package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

// serveCtl serves svc over the real gRPC server on a loopback port until the test ends, and
// returns its address.
func serveCtl(t *testing.T, svc *service.Service, opts server.Options) string {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return lis.Addr().String()
}

// ctlService is a service over a store in a temporary directory, without a pipeline: its
// erasures stay RECEIVED unless a call changes them.
func ctlService(t *testing.T) *service.Service {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := service.NewKeyring("ctl", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, keys, service.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// runCtl runs `erasured ctl --addr addr ARGS…` and returns its stdout, stderr and error.
func runCtl(t *testing.T, env map[string]string, addr string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := ctlMain(ctx, append([]string{"--addr", addr}, args...), &out, &errOut, func(k string) string { return env[k] })
	return out.String(), errOut.String(), err
}

// mustCtl runs a ctl command that must succeed.
func mustCtl(t *testing.T, addr string, args ...string) string {
	t.Helper()
	out, _, err := runCtl(t, nil, addr, args...)
	if err != nil {
		t.Fatalf("ctl %v: %v", args, err)
	}
	return out
}

const ctlReq1 = "2f6a1c9e-4b7d-4e21-9a3f-7c5d8e9f0a1b"

func TestCtlCommands(t *testing.T) {
	addr := serveCtl(t, ctlService(t), server.Options{})

	// submit: a new request id is made and printed; the answer is the erasure in full.
	out, errOut, err := runCtl(t, nil, addr, "submit", "--account", "1234", "--customer-id", "DEMO-CUST-1", "--external-ref", "TICKET-1")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`request id ([0-9a-f-]{36})`).FindStringSubmatch(errOut)
	if m == nil || !strings.Contains(out, "request id:") || !strings.Contains(out, m[1]) || !strings.Contains(out, "STATE_RECEIVED") {
		t.Fatalf("submit printed %q / %q; want the new request id on both and the state", out, errOut)
	}
	first := regexp.MustCompile(`erasures/[0-9a-f-]+`).FindString(out)

	// The same request id again returns the same erasure: -o json is the SubmitResponse.
	var resp *erasurev1.SubmitResponse
	for i := range 2 {
		js := mustCtl(t, addr, "submit", "--account", "1234", "--email", "ada@example.com", "--request-id", ctlReq1, "--manual", "-o", "json")
		r := &erasurev1.SubmitResponse{}
		if err := protojson.Unmarshal([]byte(js), r); err != nil {
			t.Fatalf("submit -o json printed %q: %v", js, err)
		}
		if i == 1 && r.Erasure.GetName() != resp.Erasure.GetName() {
			t.Errorf("retried submit = %s, want %s", r.Erasure.GetName(), resp.Erasure.GetName())
		}
		resp = r
	}
	second := resp.Erasure.GetName()
	if resp.Erasure.GetConfirmation() != erasurev1.Confirmation_CONFIRMATION_MANUAL || second == first {
		t.Fatalf("submit --manual = %v", resp.Erasure)
	}

	// list: one line per erasure with its state, blocked_on, due and at-risk; filters reach the server.
	list := mustCtl(t, addr, "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], first) ||
		!regexp.MustCompile(`STATE_RECEIVED\s+-\s+\d{4}-\d\d-\d\dT[0-9:]+Z\s+no\s+TICKET-1`).MatchString(lines[1]) {
		t.Errorf("list printed\n%s", list)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--state", "STATE_RECEIVED"}, first + "\n" + second + "\n"},
		{[]string{"--state", "received", "--state", "cancelled"}, first + "\n" + second + "\n"},
		{[]string{"--state", "COMPLETED"}, ""},
		{[]string{"--account", "999"}, ""},
		{[]string{"--account", "1234", "-o", "name"}, first + "\n" + second + "\n"},
	} {
		if got := mustCtl(t, addr, append([]string{"list", "-o", "name"}, tc.args...)...); got != tc.want {
			t.Errorf("list %v = %q, want %q", tc.args, got, tc.want)
		}
	}

	// get, by name or bare id; -o json is the StatusResponse.
	var st erasurev1.StatusResponse
	if err := protojson.Unmarshal([]byte(mustCtl(t, addr, "get", strings.TrimPrefix(first, "erasures/"), "-o", "json")), &st); err != nil ||
		st.Erasure.GetName() != first || st.Erasure.GetExternalRef() != "TICKET-1" {
		t.Errorf("get -o json = %v, %v", st.Erasure, err)
	}

	// cancel, then a watch from revision 1 replays the erasure's changes and ends at CANCELLED.
	if out := mustCtl(t, addr, "cancel", first, "--reason", "duplicate ticket"); !strings.Contains(out, "STATE_CANCELLED") {
		t.Errorf("cancel printed %q", out)
	}
	w := mustCtl(t, addr, "watch", first, "--from", "1")
	if !strings.Contains(w, "created STATE_RECEIVED") || !strings.Contains(w, "STATE_RECEIVED -> STATE_CANCELLED") ||
		strings.Contains(w, second) {
		t.Errorf("watch --from 1 printed\n%s", w)
	}

	// audit: the submits and the cancel, with their principal and outcome.
	var audit erasurev1.ListAuditRecordsResponse
	if err := protojson.Unmarshal([]byte(mustCtl(t, addr, "audit", "--erasure", first, "-o", "json")), &audit); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range audit.Records {
		actions = append(actions, r.Action+":"+r.Outcome)
	}
	if got := strings.Join(actions, ","); got != "submit:OK,cancel:OK" {
		t.Errorf("audit --erasure = %s", got)
	}
}

// TestCtlWatchLive: a named watch prints the erasure as it is, then each change live, and ends
// by itself once the erasure is final.
func TestCtlWatchLive(t *testing.T) {
	addr := serveCtl(t, ctlService(t), server.Options{})
	name := strings.TrimSpace(mustCtl(t, addr, "submit", "--account", "1234", "--customer-id", "C-1", "-o", "name"))
	var out, errOut syncBuffer
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { done <- ctlMain(ctx, []string{"--addr", addr, "watch", name}, &out, &errOut, noEnv) }()
	for !strings.Contains(out.String(), "now STATE_RECEIVED") {
		if ctx.Err() != nil {
			t.Fatalf("watch printed %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustCtl(t, addr, "cancel", name, "--reason", "test")
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "STATE_RECEIVED -> STATE_CANCELLED") {
			t.Errorf("watch = %v, printed %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when the erasure was cancelled")
	}
}

// TestCtlErrors: gRPC errors come back with their canonical code, ErrorInfo reason and field
// violations, and usage mistakes are refused before any call.
func TestCtlErrors(t *testing.T) {
	addr := serveCtl(t, ctlService(t), server.Options{})
	name := strings.TrimSpace(mustCtl(t, addr, "submit", "--account", "1234", "--customer-id", "C-1", "-o", "name"))
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"submit", "--account", "12-34", "--email", "not-an-email", "--request-id", "nope"},
			[]string{"INVALID_ARGUMENT: ", "reason: INVALID_REQUEST", "field request_id: ", "field account_id: ", "field subject.email: "}},
		{[]string{"confirm", name, "--etag", "abc"}, []string{"FAILED_PRECONDITION: ", "reason: "}},
		{[]string{"get", "erasures/nope"}, []string{"NOT_FOUND: ", "reason: "}},
		{[]string{"confirm", name}, []string{"--etag is required"}},
		{[]string{"cancel", name}, []string{"--reason is required"}},
		{[]string{"reject", name, "--reason", " "}, []string{"--reason is required"}},
		{[]string{"submit", "--account", "1234", "--email", "a@b.c", "--phone", "+4412345"}, []string{"exactly one of"}},
		{[]string{"submit", "--customer-id", "C-1"}, []string{"--account is required"}},
		{[]string{"get"}, []string{"usage: erasured ctl get NAME"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"list", "--state", "DONE"}, []string{`unknown state "DONE"`}},
		{[]string{"list", "-o", "yaml"}, []string{"-o must be text, json or name"}},
		{[]string{"--addr", "192.0.2.1:50051", "list"}, []string{"refusing a plaintext connection to 192.0.2.1:50051"}},
		{[]string{"--addr", "erasured.example.com:50051", "list"}, []string{"refusing a plaintext connection"}},
		{[]string{"list", "--cert", "c.pem", "--key", "k.pem"}, []string{"--cert needs --cacert"}},
		{[]string{"list", "--cert", "c.pem"}, []string{"--cert and --key go together"}},
	} {
		_, _, err := runCtl(t, nil, addr, tc.args...)
		if err == nil {
			t.Errorf("ctl %v succeeded, want an error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ctl %v = %q, want it to hold %q", tc.args, err, w)
			}
		}
	}
	for _, args := range [][]string{{"--help"}, {}, {"help"}, {"get", "-h"}} {
		out, _, err := runCtl(t, nil, addr, args...)
		if err != nil || !strings.Contains(out, "Commands:") || !strings.Contains(out, "watch [NAME] [--from REV]") {
			t.Errorf("ctl %v = %v, printed %q; want the usage and no error", args, err, out)
		}
	}
}

// TestCtlManualConfirmAndReject: a MANUAL erasure resolved by the pipeline is reviewed with
// plan and approved with its etag; another is rejected with a reason.
func TestCtlManualConfirmAndReject(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	addr := serveCtl(t, e.svc, server.Options{})
	submit := func(id string) string {
		return strings.TrimSpace(mustCtl(t, addr, "submit", "--account", e2eAcct, "--customer-id", id, "--manual", "-o", "name"))
	}
	jane, john := submit("DEMO-CUST-1"), submit("DEMO-CUST-2")
	e.waitState(jane, service.StateAwaitingConfirmation)
	e.waitState(john, service.StateAwaitingConfirmation)

	plan := mustCtl(t, addr, "plan", jane)
	m := regexp.MustCompile(`plan etag:\s+(\S+)`).FindStringSubmatch(plan)
	if m == nil || !strings.Contains(plan, "TARGET_STATUS_FOUND") || !strings.Contains(plan, "STATE_AWAITING_CONFIRMATION") {
		t.Fatalf("plan printed\n%s", plan)
	}
	if got := mustCtl(t, addr, "list", "--state", "AWAITING_CONFIRMATION"); !strings.Contains(got, "BLOCKED_ON_CONFIRMATION") {
		t.Errorf("list of erasures awaiting confirmation:\n%s", got)
	}
	if _, _, err := runCtl(t, nil, addr, "confirm", jane, "--etag", "stale"); err == nil || !strings.Contains(err.Error(), "ABORTED: ") {
		t.Errorf("confirm with a stale etag = %v, want ABORTED", err)
	}
	if out := mustCtl(t, addr, "confirm", jane, "--etag", m[1]); !strings.Contains(out, "STATE_SCHEDULED") {
		t.Errorf("confirm printed\n%s", out)
	}
	if out := mustCtl(t, addr, "reject", john, "--reason", "not our customer"); !strings.Contains(out, "STATE_REJECTED") ||
		!strings.Contains(out, "not our customer") {
		t.Errorf("reject printed\n%s", out)
	}
}

// TestCtlTLSAndToken: with --cacert ctl speaks TLS to a non-loopback-only server and sends the
// token read from a private file or ERASURED_TOKEN; an open token file is refused.
func TestCtlTLSAndToken(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	tlsFiles, err := server.LoadTLS(pki.CertFile, pki.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	const token = "ctl-test-token-0123456789abcdef"
	auth, err := server.NewAuth(server.Callers{Tokens: []server.TokenPrincipal{{Principal: "ops", SHA256: hashOf(t, token),
		Roles: []server.Role{server.RoleSubmitter, server.RoleViewer}}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveCtl(t, ctlService(t), server.Options{TLS: tlsFiles, Auth: auth})
	private := writeFile(t, dir, "token", token+"\n", 0o600)
	open := writeFile(t, dir, "token-open", token+"\n", 0o644)

	out, _, err := runCtl(t, nil, addr, "--cacert", pki.CAFile, "--token-file", private,
		"submit", "--account", "1234", "--customer-id", "C-1", "-o", "json")
	sub := &erasurev1.SubmitResponse{}
	if err != nil || protojson.Unmarshal([]byte(out), sub) != nil || sub.Erasure.GetSubmittedBy() != "ops" {
		t.Fatalf("submit over TLS with a token file = %v, printed %q; want it submitted by ops", err, out)
	}
	if out, _, err := runCtl(t, map[string]string{"ERASURED_TOKEN": token}, addr, "--cacert", pki.CAFile, "list", "-o", "name"); err != nil ||
		!strings.HasPrefix(out, "erasures/") {
		t.Errorf("list with ERASURED_TOKEN = %v, %q", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cacert", pki.CAFile, "list"}, "UNAUTHENTICATED: "},
		{[]string{"--cacert", pki.CAFile, "--token-file", open, "list"}, "--token-file"},
		{[]string{"--token-file", private, "list"}, "UNAVAILABLE: "}, // plaintext to a TLS server
		{[]string{"--cacert", filepath.Join(dir, "missing.crt"), "list"}, "--cacert"},
	} {
		if _, _, err := runCtl(t, nil, addr, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ctl %v = %v, want an error holding %q", tc.args, err, tc.want)
		}
	}
	if fi, err := os.Stat(open); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("token-open: %v %v", fi, err)
	}
}

// TestCtlWatchResumesAfterUnavailable: a server restart ends the stream with UNAVAILABLE; the
// watch reconnects from the revision after the last one it saw, so the change made while it
// was away is printed once, and nothing is printed twice.
func TestCtlWatchResumesAfterUnavailable(t *testing.T) {
	defer func(p time.Duration) { ctlWatchPause = p }(ctlWatchPause)
	ctlWatchPause = 50 * time.Millisecond
	svc := ctlService(t)
	srv, err := server.New(svc, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	go srv.Serve(lis)
	name := strings.TrimSpace(mustCtl(t, addr, "submit", "--account", "1234", "--customer-id", "C-1", "-o", "name"))

	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ctlMain(ctx, []string{"--addr", addr, "watch", name}, &out, &errOut, noEnv) }()
	for !strings.Contains(out.String(), "now STATE_RECEIVED") && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(sctx)
	scancel()
	// While no server listens, the erasure is cancelled.
	if _, err := svc.Cancel(context.Background(), name, "test"); err != nil {
		t.Fatal(err)
	}
	serveOn(t, svc, addr)
	select {
	case err := <-done:
		if err != nil || strings.Count(out.String(), "STATE_RECEIVED -> STATE_CANCELLED") != 1 || !strings.Contains(errOut.String(), "resuming from revision 2") {
			t.Errorf("watch = %v, printed %q, %q", err, out.String(), errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("watch did not resume: %q %q", out.String(), errOut.String())
	}
}

// serveOn serves svc on a given loopback address until the test ends.
func serveOn(t *testing.T, svc *service.Service, addr string) {
	t.Helper()
	srv, err := server.New(svc, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
}

package main

// End-to-end tests of callers through the binary: TLS, bearer tokens and client certificates,
// roles, the metrics listener, SIGHUP reloads, and the listeners refused at start.

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson/lpsim"
)

// startLPSimProcess runs `erasured lpsim` with args and returns its address.
func startLPSimProcess(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"lpsim", "--listen", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "lpsim listening on http://"); ok {
			go io.Copy(io.Discard, out)
			return a
		}
	}
	t.Fatal("the simulator did not start")
	return ""
}

// authSetup is a directory with a CA, a server certificate, a master key, a client secret for
// the simulator's demo account, and a configuration file for erasured.
type authSetup struct {
	dir, bin, config, tokensFile string
	pki                          *testPKI
}

// newAuthSetup writes everything a TLS + token erasured needs; extra is appended to its
// configuration file.
func newAuthSetup(t *testing.T, bin, simAddr, extra string) *authSetup {
	t.Helper()
	dir := t.TempDir()
	s := &authSetup{dir: dir, bin: bin, pki: newTestPKI(t, dir)}
	key := make([]byte, 32)
	crand.Read(key)
	master := writeFile(t, dir, "master.key", base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	acct := lpsim.DefaultAccount(lpsim.DemoAccount, "us")
	secret := writeFile(t, dir, "client-secret", acct.ClientSecret+"\n", 0o600)
	s.tokensFile = filepath.Join(dir, "tokens.yaml")
	s.setTokens(t, map[string]string{"submitter-token": "portal:submitter", "viewer-token": "watcher:viewer",
		"metrics-token": "prometheus:metrics"})
	s.config = writeFile(t, dir, "erasured.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
db: %s
liveperson:
  domain_api_url: http://%s
accounts:
  - id: "%s"
    region: us
    auth:
      oauth2:
        client_id: %s
        client_secret_file: %s
privacy:
  master_key_file: %s
tls:
  cert_file: %s
  key_file: %s
  client_ca_file: %s
auth:
  tokens_file: %s
  certificates:
    - {principal: dpo-desk, common_name: dpo-desk, roles: [approver, viewer]}
    - {principal: prometheus-mtls, common_name: prometheus-mtls, roles: [metrics]}
%s`, filepath.Join(dir, "erasure.db"), simAddr, acct.ID, acct.ClientID, secret, master,
		s.pki.CertFile, s.pki.KeyFile, s.pki.CAFile, s.tokensFile, extra), 0o600)
	return s
}

// setTokens writes auth.tokens_file: token → "principal:role".
func (s *authSetup) setTokens(t *testing.T, tokens map[string]string) {
	t.Helper()
	var b strings.Builder
	for tok, who := range tokens {
		p, role, _ := strings.Cut(who, ":")
		fmt.Fprintf(&b, "- {principal: %s, sha256: %s, roles: [%s]}\n", p, tokenHash(tok), role)
	}
	if err := os.WriteFile(s.tokensFile, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dialTLS connects to erasured over TLS trusting the test CA, with a client certificate of
// common name cn unless cn is "".
func (s *authSetup) dialTLS(t *testing.T, addr, cn string) erasurev1.ErasureServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccreds.NewTLS(s.pki.client(t, cn))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return erasurev1.NewErasureServiceClient(conn)
}

// bearer is a context whose calls carry the token ("" = none).
func bearer(token string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return ctx, cancel
}

func authRequest(n int) *erasurev1.SubmitRequest {
	r := crashRequest(n)
	r.AccountId = lpsim.DemoAccount
	return r
}

// waitLog waits until erasured's log (dir/erasured.log) has a line with msg, and returns it.
func waitLog(t *testing.T, dir, msg string, after int) (map[string]any, int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		raw, _ := os.ReadFile(filepath.Join(dir, "erasured.log"))
		lines := strings.Split(string(raw), "\n")
		for i := after; i < len(lines); i++ {
			var l map[string]any
			if json.Unmarshal([]byte(lines[i]), &l) == nil && l["msg"] == msg {
				return l, i + 1
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("erasured did not log %q", msg)
	return nil, 0
}

// TestAuthThroughBinary: erasured with TLS, tokens from a tokens file and a client-certificate
// principal. No token and a wrong token are UNAUTHENTICATED, a viewer's Submit is
// PERMISSION_DENIED, the submitter's works, the certificate's principal reads, a plaintext
// client gets nowhere; the metrics listener beyond loopback answers a metrics token only. A
// SIGHUP after the tokens file changed keeps an open Watch stream, which sees a Submit by the
// new token, while the removed token is refused.
func TestAuthThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	sim := startLPSimProcess(t, bin, "--consumers", "20")
	s := newAuthSetup(t, bin, sim, "metrics_listen: 0.0.0.0:0\n")
	p := startArgs(t, bin, s.dir, "--config", s.config, "--no-credential-check")
	client := s.dialTLS(t, p.addr, "")

	for _, tc := range []struct {
		name, token string
		call        func(context.Context) error
		want        codes.Code
	}{
		{"List without a token", "", func(ctx context.Context) error {
			_, err := client.List(ctx, &erasurev1.ListRequest{})
			return err
		}, codes.Unauthenticated},
		{"List with a wrong token", "not-a-token", func(ctx context.Context) error {
			_, err := client.List(ctx, &erasurev1.ListRequest{})
			return err
		}, codes.Unauthenticated},
		{"Submit by a viewer", "viewer-token", func(ctx context.Context) error {
			_, err := client.Submit(ctx, authRequest(1))
			return err
		}, codes.PermissionDenied},
		{"Submit by the metrics principal", "metrics-token", func(ctx context.Context) error {
			_, err := client.Submit(ctx, authRequest(1))
			return err
		}, codes.PermissionDenied},
		{"Submit by the submitter", "submitter-token", func(ctx context.Context) error {
			_, err := client.Submit(ctx, authRequest(1))
			return err
		}, codes.OK},
		{"List by a viewer", "viewer-token", func(ctx context.Context) error {
			_, err := client.List(ctx, &erasurev1.ListRequest{})
			return err
		}, codes.OK},
	} {
		ctx, cancel := bearer(tc.token)
		if got := status.Code(tc.call(ctx)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		cancel()
	}

	// A client certificate names its principal.
	ctx, cancel := bearer("")
	defer cancel()
	if _, err := s.dialTLS(t, p.addr, "dpo-desk").List(ctx, &erasurev1.ListRequest{}); err != nil {
		t.Errorf("List with the dpo-desk certificate: %v", err)
	}
	if _, err := s.dialTLS(t, p.addr, "stranger").List(ctx, &erasurev1.ListRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("List with a certificate of an unknown common name: %v, want Unauthenticated", err)
	}

	// Plaintext to a TLS server gets nowhere, token or not.
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pctx, pcancel := bearer("viewer-token")
	_, err = erasurev1.NewErasureServiceClient(conn).List(pctx, &erasurev1.ListRequest{})
	pcancel()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext List: %v, want Unavailable", err)
	}

	s.checkMetrics(t)
	s.checkReload(t, p, client)
	hctx, hcancel := bearer("viewer-token") // a viewer's token, kept by the reload
	defer hcancel()
	checkHistoryOver(t, hctx, client)
}

// checkMetrics scrapes the metrics listener (beyond loopback, so over TLS with a token).
func (s *authSetup) checkMetrics(t *testing.T) {
	t.Helper()
	l, _ := waitLog(t, s.dir, "metrics serving", 0)
	_, port, _ := net.SplitHostPort(l["listen"].(string))
	url := "https://127.0.0.1:" + port + "/metrics"
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.pki.client(t, "")}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	for token, want := range map[string]int{"": 401, "not-a-token": 401, "viewer-token": 403, "metrics-token": 200} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Errorf("scrape with %q: %v", token, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("scrape with %q: %d, want %d", token, resp.StatusCode, want)
		}
		if want == 200 && !strings.Contains(string(body), "erasured_erasures{") {
			t.Errorf("scrape with the metrics token holds no erasured metrics")
		}
	}
	// A client certificate names the scraper too.
	for cn, want := range map[string]int{"prometheus-mtls": 200, "dpo-desk": 403, "stranger": 401} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: s.pki.client(t, cn)}, Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			t.Errorf("scrape with certificate %s: %v", cn, err)
			continue
		}
		resp.Body.Close()
		c.CloseIdleConnections()
		if resp.StatusCode != want {
			t.Errorf("scrape with certificate %s: %d, want %d", cn, resp.StatusCode, want)
		}
	}
	// Plain http to the TLS listener gets no metrics.
	if resp, err := http.Get("http://127.0.0.1:" + port + "/metrics"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain http scrape answered 200")
		}
		resp.Body.Close()
	}
}

// checkReload rewrites the tokens file and sends SIGHUP with a Watch stream open.
func (s *authSetup) checkReload(t *testing.T, p *process, client erasurev1.ErasureServiceClient) {
	t.Helper()
	wctx, wcancel := bearer("viewer-token")
	defer wcancel()
	w, err := client.Watch(wctx, &erasurev1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Header(); err != nil {
		t.Fatal(err)
	}
	_, mark := waitLog(t, s.dir, "erasured serving", 0)
	s.setTokens(t, map[string]string{"rotated-token": "portal:submitter", "viewer-token": "watcher:viewer",
		"metrics-token": "prometheus:metrics"})
	p.cmd.Process.Signal(syscall.SIGHUP)
	l, _ := waitLog(t, s.dir, "SIGHUP: callers and TLS files reloaded", mark)
	if l["tokens_added"] != 1.0 || l["tokens_removed"] != 1.0 {
		t.Errorf("reload line %v, want one token added and one removed", l)
	}
	ctx, cancel := bearer("submitter-token")
	_, err = client.Submit(ctx, authRequest(2))
	cancel()
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("Submit with the removed token after SIGHUP: %v, want Unauthenticated", err)
	}
	ctx, cancel = bearer("rotated-token")
	res, err := client.Submit(ctx, authRequest(3))
	cancel()
	if err != nil {
		t.Fatalf("Submit with the new token after SIGHUP: %v", err)
	}
	for {
		ev, err := w.Recv()
		if err != nil {
			t.Fatalf("the Watch stream opened before SIGHUP: %v", err)
		}
		if len(ev.GetEvents()) > 0 && ev.GetEvents()[0].GetErasure().GetName() == res.GetErasure().GetName() {
			break
		}
	}
	select {
	case err := <-p.done:
		t.Fatalf("erasured exited: %v", err)
	default:
	}
}

// TestListenersRefusedAtStart: erasured refuses to start, naming the listener, when a listener
// would be reachable beyond loopback without callers, or with callers but without TLS.
func TestListenersRefusedAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	key := make([]byte, 32)
	crand.Read(key)
	master := writeFile(t, dir, "master.key", base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	secret := writeFile(t, dir, "secret", "s\n", 0o600)
	base := fmt.Sprintf(`db: %s
liveperson:
  domain_api_url: http://127.0.0.1:1
accounts:
  - {id: "1234", region: us, auth: {oauth2: {client_id: c, client_secret_file: %s}}}
privacy:
  master_key_file: %s
`, filepath.Join(dir, "erasure.db"), secret, master)
	withAuth := "auth:\n  tokens:\n    - {principal: p, sha256: " + tokenHash("t") + ", roles: [viewer]}\n"
	for _, tc := range []struct {
		name, config string
		args         []string
		want         string
	}{
		{"sandbox metrics beyond loopback", "", []string{"--metrics-listen", "0.0.0.0:0"},
			`refusing the metrics listener on "0.0.0.0:0" (metrics_listen / --metrics-listen) without caller authentication`},
		{"sandbox gRPC beyond loopback", "", []string{"--listen", "0.0.0.0:0"},
			`refusing the gRPC listener on "0.0.0.0:0" (listen / --listen) without caller authentication`},
		{"configured metrics beyond loopback without auth", base + "listen: 127.0.0.1:0\nmetrics_listen: 0.0.0.0:0\n", nil,
			"refusing the metrics listener"},
		{"tokens without TLS beyond loopback", base + withAuth + "listen: 0.0.0.0:0\n", nil,
			`refusing the gRPC listener on "0.0.0.0:0" (listen / --listen) without TLS`},
		{"tokens without TLS, metrics beyond loopback", base + withAuth + "listen: 127.0.0.1:0\nmetrics_listen: 0.0.0.0:0\n", nil,
			"refusing the metrics listener on \"0.0.0.0:0\" (metrics_listen / --metrics-listen) without TLS"},
	} {
		args := tc.args
		if tc.config != "" {
			args = append([]string{"--config", writeFile(t, dir, "c.yaml", tc.config, 0o600)}, args...)
		}
		run := t.TempDir() // the sandbox writes under var/
		cmd := exec.Command(bin, args...)
		cmd.Dir = run
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		out, err := cmd.CombinedOutput()
		timer.Stop()
		if err == nil {
			t.Errorf("%s: erasured exited 0, want a refusal", tc.name)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: output does not say %q:\n%s", tc.name, tc.want, out)
		}
	}
}

package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/server"
)

// writeFile writes a file of the test's directory and returns its path.
func writeFile(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// testMasterKey is a master key file in dir, made at the first call: a configuration that
// names one is checked by reading it.
func testMasterKey(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "master.key")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if _, err := newKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// callersConfig writes a configuration file whose tls and auth sections are body (the rest:
// what a start needs) and loads it.
func callersConfig(t *testing.T, dir, body string, flags ...string) (Config, error) {
	t.Helper()
	secret := writeFile(t, dir, "client-secret", "s3cret\n", 0o600)
	key := testMasterKey(t, dir)
	path := writeFile(t, dir, "erasured.yaml", fmt.Sprintf(`
accounts:
  - id: "1234"
    region: us
    auth:
      oauth2:
        client_id: abc
        client_secret_file: %s
privacy:
  master_key_file: %s
%s`, secret, key, body), 0o600)
	return loadConfig(append([]string{"--config", path}, flags...), noEnv)
}

func hashOf(t *testing.T, token string) [32]byte {
	t.Helper()
	raw, _ := hex.DecodeString(tokenHash(token))
	return [32]byte(raw)
}

// TestCallersFromConfig: tokens from the file and from auth.tokens_file, certificates, TLS and
// limits reach the server as written.
func TestCallersFromConfig(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	tokens := writeFile(t, dir, "tokens.yaml", fmt.Sprintf(`
- principal: ops-bot
  sha256: %s
  roles: [operator, metrics]
`, strings.ToUpper(tokenHash("t-ops"))), 0o644)
	c, err := callersConfig(t, dir, fmt.Sprintf(`
tls:
  cert_file: %s
  key_file: %s
  client_ca_file: %s
auth:
  tokens:
    - principal: privacy-portal
      sha256: "%s"
      roles: [submitter, viewer]
  tokens_file: %s
  certificates:
    - principal: dpo-desk
      common_name: dpo-desk.example
      roles: [approver, viewer]
limits:
  max_streams: 10
  max_calls_per_principal: 3
`, pki.CertFile, pki.KeyFile, pki.CAFile, tokenHash("t-portal"), tokens), "--listen", "0.0.0.0:50051")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.callers()
	if err != nil {
		t.Fatal(err)
	}
	want := server.Callers{
		Tokens: []server.TokenPrincipal{
			{Principal: "privacy-portal", SHA256: hashOf(t, "t-portal"), Roles: []server.Role{server.RoleSubmitter, server.RoleViewer}},
			{Principal: "ops-bot", SHA256: hashOf(t, "t-ops"), Roles: []server.Role{server.RoleOperator, server.RoleMetrics}},
		},
		Certificates: []server.CertPrincipal{{Principal: "dpo-desk", CommonName: "dpo-desk.example",
			Roles: []server.Role{server.RoleApprover, server.RoleViewer}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("callers (-want +got):\n%s", diff)
	}
	if l := c.Limits.limits(); l != (server.Limits{MaxStreams: 10, MaxCallsPerPrincipal: 3}) {
		t.Errorf("limits = %+v", l)
	}
	acc, err := newAccess(&c)
	if err != nil {
		t.Fatal(err)
	}
	if acc.auth == nil || acc.tls == nil {
		t.Fatalf("access = %+v, want auth and TLS", acc)
	}
	if p, _, ok := acc.auth.Token("t-ops"); !ok || p != "ops-bot" {
		t.Errorf("Token(t-ops) = %q, %v; want ops-bot", p, ok)
	}
}

// TestCallersReportEveryProblem: every mistake in the tls, auth and limits sections is
// reported at once, each naming its key.
func TestCallersReportEveryProblem(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "server.key", "not a key", 0o644)
	tokens := writeFile(t, dir, "tokens.yaml", "- principal: \"\"\n  sha256: abc\n  roles: []\n", 0o600)
	_, err := callersConfig(t, dir, fmt.Sprintf(`
tls:
  key_file: %s
  client_ca_file: /nowhere/ca.crt
auth:
  tokens:
    - principal: anonymous
      sha256: "%[2]s"
      roles: [submitter, admin]
    - principal: portal
      sha256: "%[2]s"
      roles: [viewer]
    - principal: short
      sha256: "abcd"
      roles: [viewer]
    - principal: ali ce
      sha256: "%[4]s"
      roles: [viewer]
    - principal: Anonymous
      sha256: "%[5]s"
      roles: [viewer]
  tokens_file: %[3]s
  certificates:
    - principal: desk
      common_name: ""
      roles: [approver]
    - principal: Portal
      common_name: portal
      roles: [approver]
limits:
  max_streams: -1
`, key, tokenHash("x"), tokens, tokenHash("y"), tokenHash("z")))
	if err == nil {
		t.Fatal("loadConfig succeeded, want errors")
	}
	for _, want := range []string{
		"tls.cert_file is required with tls.key_file",
		"tls.key_file: " + key + " is accessible by group or others",
		`auth.tokens[0].principal: "anonymous"`,
		`auth.tokens[0].roles[1]: unknown role "admin"`,
		"auth.tokens[1].sha256 is the same token as auth.tokens[0]",
		"auth.tokens[2].sha256 must be 64 hex digits",
		"auth.tokens_file " + tokens + "[0].principal is required",
		"auth.tokens_file " + tokens + "[0].roles: at least one role",
		"auth.tokens_file " + tokens + "[0].sha256 must be 64 hex digits",
		"auth.certificates[0].common_name is required",
		`auth.tokens[3].principal: principal "ali ce": only letters`,
		`auth.tokens[4].principal: principal "anonymous" is reserved`,
		`auth.certificates[1].principal "Portal" differs only by case from "portal" of auth.tokens[1]`,
		"limits.max_streams must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), tokenHash("x")) {
		t.Error("the error repeats a token hash")
	}

	// mTLS pieces without TLS.
	_, err = callersConfig(t, t.TempDir(), `
tls:
  client_ca_file: /etc/ca.crt
auth:
  certificates:
    - {principal: desk, common_name: desk, roles: [approver]}
`)
	for _, want := range []string{"tls.client_ca_file needs tls.cert_file and tls.key_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("client CA without TLS: %v, want %q", err, want)
		}
	}
	_, err = callersConfig(t, t.TempDir(), `
auth:
  certificates:
    - {principal: desk, common_name: desk, roles: [approver]}
`)
	if want := "auth.certificates need tls.client_ca_file"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("certificates without a client CA: %v, want %q", err, want)
	}
}

// TestCheckListeners: without callers both listeners stay on loopback; with callers but no TLS
// too; with callers and TLS anything goes. The error names the listener.
func TestCheckListeners(t *testing.T) {
	for _, tc := range []struct {
		listen, metrics string
		auth, tls       bool
		want            string // "" = accepted; else a part of the error
	}{
		{listen: "127.0.0.1:50051"},
		{listen: "localhost:1", metrics: "[::1]:9090"},
		{listen: "0.0.0.0:50051", want: "gRPC listener on \"0.0.0.0:50051\" (listen / --listen) without caller authentication"},
		{listen: ":50051", want: "gRPC listener"},
		{listen: "erasured.internal:50051", want: "gRPC listener"},
		{listen: "127.0.0.1:50051", metrics: "0.0.0.0:9090", want: "metrics listener on \"0.0.0.0:9090\" (metrics_listen / --metrics-listen) without caller authentication"},
		{listen: "10.0.0.1:50051", auth: true, want: "gRPC listener on \"10.0.0.1:50051\" (listen / --listen) without TLS"},
		{listen: "127.0.0.1:50051", metrics: "10.0.0.1:9090", auth: true, want: "metrics listener on \"10.0.0.1:9090\" (metrics_listen / --metrics-listen) without TLS"},
		{listen: "0.0.0.0:50051", metrics: "0.0.0.0:9090", auth: true, tls: true},
		{listen: "127.0.0.1:50051", tls: true},
		{listen: "nowhere", want: "gRPC listener \"nowhere\""},
	} {
		c := defaultConfig()
		c.Listen, c.MetricsListen = tc.listen, tc.metrics
		if tc.auth {
			c.Auth.Tokens = []TokenConfig{{Principal: "p", SHA256: tokenHash("t"), Roles: []string{"viewer"}}}
		}
		if tc.tls {
			c.TLS = TLSConfig{CertFile: "c", KeyFile: "k"}
		}
		err := c.checkListeners()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkListeners(%+v) = %v, want nil", tc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkListeners(%+v) = %v, want an error with %q", tc, err, tc.want)
		}
	}
}

// TestReloadCallers: a SIGHUP's reload swaps the tokens of auth.tokens_file (a new token works,
// a removed one no longer does) and logs the counts; a broken file keeps the callers in use and
// logs an ERROR naming the key, never a token.
func TestReloadCallers(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	tokensFile := filepath.Join(dir, "tokens.yaml")
	setTokens := func(body string) {
		if err := os.WriteFile(tokensFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setTokens(fmt.Sprintf("- {principal: portal, sha256: %s, roles: [submitter]}\n", tokenHash("old-token")))
	c, err := callersConfig(t, dir, fmt.Sprintf(`
tls:
  cert_file: %s
  key_file: %s
auth:
  tokens:
    - {principal: viewer, sha256: %s, roles: [viewer]}
  tokens_file: %s
`, pki.CertFile, pki.KeyFile, tokenHash("viewer-token"), tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := newAccess(&c)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	has := func(token string) bool { _, _, ok := acc.auth.Token(token); return ok }

	setTokens(fmt.Sprintf("- {principal: portal, sha256: %s, roles: [submitter]}\n", tokenHash("new-token")))
	acc.reload(log)
	if has("old-token") || !has("new-token") || !has("viewer-token") {
		t.Errorf("after reload: old %v, new %v, viewer %v; want false, true, true", has("old-token"), has("new-token"), has("viewer-token"))
	}
	if !strings.Contains(logs.String(), `"tokens":2,"tokens_added":1,"tokens_removed":1,"tokens_changed":0`) {
		t.Errorf("reload log = %s, want the counts", logs.String())
	}

	// In order: each leaves the files broken in its own way only.
	valid := fmt.Sprintf("- {principal: portal, sha256: %s, roles: [submitter]}\n", tokenHash("new-token"))
	key, err := os.ReadFile(pki.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		name   string
		break_ func()
	}{
		{"bad hash", func() { setTokens("- {principal: portal, sha256: nothex, roles: [submitter]}\n") }},
		{"unknown role", func() { setTokens(fmt.Sprintf("- {principal: p, sha256: %s, roles: [root]}\n", tokenHash("x"))) }},
		{"missing file", func() { os.Remove(tokensFile) }},
		{"tokens file writable by others", func() { setTokens(valid); os.Chmod(tokensFile, 0o666) }},
		{"config file writable by group", func() { os.Chmod(tokensFile, 0o600); os.Chmod(c.path, 0o620) }},
		{"open key file", func() { os.Chmod(c.path, 0o600); setTokens(""); os.Chmod(pki.KeyFile, 0o640) }},
		{"bad key file", func() { os.Chmod(pki.KeyFile, 0o600); os.WriteFile(pki.KeyFile, []byte("garbage"), 0o600) }},
		{"key file of another user", func() { os.WriteFile(pki.KeyFile, key, 0o600); asOtherUser(t, pki.KeyFile) }},
	} {
		name, broken := b.name, b.break_
		logs.Reset()
		broken()
		acc.reload(log)
		if !has("new-token") || !has("viewer-token") {
			t.Errorf("%s: a failed reload changed the callers", name)
		}
		if !strings.Contains(logs.String(), `"level":"ERROR","msg":"SIGHUP: configuration not reloaded`) {
			t.Errorf("%s: reload log = %s, want an ERROR", name, logs.String())
		}
		if strings.Contains(logs.String(), "new-token") || strings.Contains(logs.String(), tokenHash("new-token")) {
			t.Errorf("%s: the log holds a token or its hash", name)
		}
	}
}

// TestReloadNeverAppliesCallersBeforeTLS: a reload reads and checks the TLS files before it
// swaps the callers, so a reload whose key file is broken never lets the new callers in, not
// even while the files are read.
func TestReloadNeverAppliesCallersBeforeTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	tokensFile := writeFile(t, dir, "tokens.yaml", fmt.Sprintf("- {principal: portal, sha256: %s, roles: [viewer]}\n", tokenHash("old-token")), 0o600)
	c, err := callersConfig(t, dir, fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nauth: {tokens_file: %s}\n", pki.CertFile, pki.KeyFile, tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := newAccess(&c)
	if err != nil {
		t.Fatal(err)
	}
	has := func(token string) bool { _, _, ok := acc.auth.Token(token); return ok }
	var readingKey bool // set when the key was read while the new token was already accepted
	acc.tls, err = server.LoadTLSFrom(pki.CertFile, pki.KeyFile, "", server.TLSReaders{
		Key: func(p string) ([]byte, error) {
			readingKey = readingKey || has("new-token")
			return readSecretFile(p)
		},
		Public: readTrustFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	os.WriteFile(tokensFile, []byte(fmt.Sprintf("- {principal: portal, sha256: %s, roles: [viewer]}\n", tokenHash("new-token"))), 0o600)
	key, _ := os.ReadFile(pki.KeyFile)
	os.WriteFile(pki.KeyFile, []byte("garbage"), 0o600)
	acc.reload(log)
	if readingKey || has("new-token") || !has("old-token") {
		t.Errorf("a reload with a broken key: new token in use while the key was read %v, after %v; old token %v", readingKey, has("new-token"), has("old-token"))
	}
	os.WriteFile(pki.KeyFile, key, 0o600)
	acc.reload(log)
	if readingKey || !has("new-token") || has("old-token") {
		t.Errorf("a good reload: new token in use while the key was read %v, after %v; old token %v; log %s", readingKey, has("new-token"), has("old-token"), logs.String())
	}
}

// TestReloadWarnsOfTheRestOfTheFile: a SIGHUP checks the whole file again. A problem outside
// tls and auth does not stop the callers' reload, but a WARN names it; account secrets are not
// read again (a secret file changed since start is not judged).
func TestReloadWarnsOfTheRestOfTheFile(t *testing.T) {
	dir := t.TempDir()
	tokensFile := writeFile(t, dir, "tokens.yaml", fmt.Sprintf("- {principal: portal, sha256: %s, roles: [viewer]}\n", tokenHash("old-token")), 0o600)
	c, err := callersConfig(t, dir, fmt.Sprintf("auth: {tokens_file: %s}\n", tokensFile))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := newAccess(&c)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	raw, _ := os.ReadFile(c.path)
	os.WriteFile(c.path, append(raw, "pipeline: {workers: 0}\nhistory: {keep_revisions: 0}\n"...), 0o600)
	os.Chmod(filepath.Join(dir, "client-secret"), 0o644)
	os.WriteFile(tokensFile, []byte(fmt.Sprintf("- {principal: portal, sha256: %s, roles: [viewer]}\n", tokenHash("new-token"))), 0o600)
	acc.reload(log)
	if _, _, ok := acc.auth.Token("new-token"); !ok {
		t.Errorf("the callers were not reloaded: %s", logs.String())
	}
	out := logs.String()
	for _, want := range []string{`"level":"WARN","msg":"SIGHUP: the configuration file would not start erasured`,
		"pipeline.workers must be between 1 and 1000", "history.keep_revisions must be positive"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload log does not hold %q: %s", want, out)
		}
	}
	if strings.Contains(out, "client-secret") {
		t.Errorf("the reload read an account secret: %s", out)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// asOtherUser makes path belong to a user that is neither erasured's nor root: as root the
// file is given away; otherwise erasured is made to believe it runs as another user.
func asOtherUser(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return
	}
	was := euid
	t.Cleanup(func() { euid = was })
	euid = func() int { return was() + 1 }
}

// TestSecretFileChecks: a secret file is refused, by name, when group or others may reach it,
// when another user than erasured's or root owns it, or when it is not a regular file (a FIFO
// does not hang the start); a symbolic link is judged by its target.
func TestSecretFileChecks(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := writeFile(t, dir, name, "s3cret\n", 0o600)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	other := file("other", 0o600)
	asOtherUser(t, other)
	for _, tc := range []struct {
		name, path, want string // want "": read
	}{
		{"own, 0600", file("own", 0o600), ""},
		{"own, 0400", file("ro", 0o400), ""},
		{"readable by group", file("g", 0o640), "accessible by group or others (mode 0640)"},
		{"writable by others", file("o", 0o602), "accessible by group or others"},
		{"another user's", other, "belongs to user"},
		{"link to a closed file", link("link-ok", file("target-ok", 0o600)), ""},
		{"link to an open file", link("link-open", file("target-open", 0o644)), "accessible by group or others"},
		{"link to another user's file", link("link-other", other), "belongs to user"},
		{"a FIFO", fifo, "not a regular file"},
	} {
		raw, err := readSecretFile(tc.path)
		switch {
		case tc.want == "" && (err != nil || string(raw) != "s3cret\n"):
			t.Errorf("%s: readSecretFile = %q, %v; want the secret", tc.name, raw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path)):
			t.Errorf("%s: readSecretFile = %v, want an error naming %s with %q", tc.name, err, tc.path, tc.want)
		}
	}
}

// TestRootOwnedSecretAccepted: a secret file of root's is accepted whoever erasured runs as
// (secret volumes are often root's).
func TestRootOwnedSecretAccepted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs a file of root's")
	}
	p := writeFile(t, t.TempDir(), "secret", "s3cret\n", 0o600)
	was := euid
	t.Cleanup(func() { euid = was })
	euid = func() int { return 4242 }
	if _, err := readSecretFile(p); err != nil {
		t.Errorf("readSecretFile of a root file as user 4242 = %v", err)
	}
}

// TestTrustFilesWritableByOthersRefused: the configuration file, auth.tokens_file, the TLS
// certificate and the client CA decide who is trusted: when group or others may write one, the
// start is refused naming it, and so is a reload.
func TestTrustFilesWritableByOthersRefused(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	tokens := writeFile(t, dir, "tokens.yaml", fmt.Sprintf("- {principal: ops, sha256: %s, roles: [viewer]}\n", tokenHash("t")), 0o600)
	body := fmt.Sprintf(`
tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
auth: {tokens_file: %s}
`, pki.CertFile, pki.KeyFile, pki.CAFile, tokens)
	if _, err := callersConfig(t, dir, body); err != nil {
		t.Fatalf("with every file closed to writers: %v", err)
	}
	for _, tc := range []struct {
		key, path string
		mode      os.FileMode
	}{
		{"auth.tokens_file", tokens, 0o620},
		{"tls.cert_file", pki.CertFile, 0o646},
		{"tls.client_ca_file", pki.CAFile, 0o664},
	} {
		os.Chmod(tc.path, tc.mode)
		_, err := callersConfig(t, dir, body)
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), "may be written by group or others") {
			t.Errorf("%s mode %04o: %v, want a refusal naming the key and the file", tc.key, tc.mode, err)
		}
		os.Chmod(tc.path, 0o644)
	}

	cfgFile := writeFile(t, dir, "open.yaml", "db: x.db\nprivacy: {master_key_file: /run/k}\n", 0o600)
	os.Chmod(cfgFile, 0o666)
	if _, err := loadConfig([]string{"--config", cfgFile}, noEnv); err == nil || !strings.Contains(err.Error(), cfgFile) || !strings.Contains(err.Error(), "may be written") {
		t.Errorf("a configuration file writable by others: %v, want a refusal naming it", err)
	}
}

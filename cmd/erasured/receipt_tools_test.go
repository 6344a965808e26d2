package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The receipt an auditor receives is checked here by tools that are not this code: node's
// built-in crypto (examples/receipt-verify/verify.mjs) and openssl
// (examples/receipt-verify/verify-openssl.sh), each with the key as `erasured ctl receipt-keys`
// hands it out. Each must accept the receipt and refuse it changed.

var receiptExamples = filepath.Join("..", "..", "examples", "receipt-verify")

// runTool runs a verifier and returns its combined output and whether it exited 0.
func runTool(t *testing.T, name string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), err == nil
}

func TestReceiptVerifiesWithStandardTools(t *testing.T) {
	node, nodeErr := exec.LookPath("node")
	openssl, opensslErr := exec.LookPath("openssl")
	if opensslErr == nil && !openssl3(t, openssl) {
		opensslErr = exec.ErrNotFound
	}
	if nodeErr != nil && opensslErr != nil {
		t.Skip("neither node nor openssl 3 is on this machine: no standard tool to check a receipt with")
	}
	addr, status, e := completedOverTheWire(t)
	dir := t.TempDir()
	good := writeFile(t, dir, "status.json", string(status), 0o600)
	changed := writeFile(t, dir, "changed.json", string(editReceipt(t, status, func(r map[string]any) { r["accountId"] = "9999" })), 0o600)
	chain := writeFile(t, dir, "chain.json", string(editReceipt(t, status, func(r map[string]any) { r["hash"] = strings.Repeat("0", 64) })), 0o600)
	forged := writeFile(t, dir, "forged.json", string(editReceipt(t, status, func(r map[string]any) {
		parts := strings.Split(r["jws"].(string), ".")
		sig := []byte(parts[2])
		if sig[3] = 'A'; parts[2][3] == 'A' { // another signature of the same length
			sig[3] = 'B'
		}
		r["jws"] = parts[0] + "." + parts[1] + "." + string(sig)
	})), 0o600)
	jwk := writeFile(t, dir, "key.jwk", mustCtl(t, addr, "receipt-keys", "--format", "jwk"), 0o600)
	pem := writeFile(t, dir, "key.pem", mustCtl(t, addr, "receipt-keys", "--format", "pem"), 0o600)
	if key, _ := readPublicKey(jwk); string(key) != string(e.keys.PublicKey()) {
		t.Fatal("ctl receipt-keys handed out another key than the service's")
	}

	type check struct {
		name, file string
		ok         bool
	}
	checks := []check{{"the receipt", good, true}, {"a field changed", changed, false}, {"the hash changed", chain, false}, {"the signature changed", forged, false}}

	t.Run("node", func(t *testing.T) {
		if nodeErr != nil {
			t.Skip("no node on this machine")
		}
		script := filepath.Join(receiptExamples, "verify.mjs")
		for _, c := range checks {
			out, ok := runTool(t, node, script, c.file, jwk)
			if ok != c.ok {
				t.Errorf("node verify.mjs on %s: exit ok = %v, want %v:\n%s", c.name, ok, c.ok, out)
			}
		}
	})
	t.Run("openssl", func(t *testing.T) {
		if opensslErr != nil {
			t.Skip("no openssl 3 on this machine (Ed25519 with -rawin needs it)")
		}
		script := filepath.Join(receiptExamples, "verify-openssl.sh")
		for _, c := range checks {
			if c.file == changed {
				continue // openssl checks signature and hash; comparing the fields is node's (or the reader's)
			}
			out, ok := runTool(t, "sh", script, c.file, pem)
			if ok != c.ok {
				t.Errorf("verify-openssl.sh on %s: exit ok = %v, want %v:\n%s", c.name, ok, c.ok, out)
			}
			if c.ok && !strings.Contains(out, `"accountId":"`+e2eAcct+`"`) {
				t.Errorf("verify-openssl.sh does not print the signed payload:\n%s", out)
			}
		}
	})
}

// openssl3 reports whether openssl is version 3 or later, whose pkeyutl verifies Ed25519 over
// raw input.
func openssl3(t *testing.T, openssl string) bool {
	out, err := exec.Command(openssl, "version").Output()
	if err != nil {
		t.Logf("openssl version: %v", err)
		return false
	}
	m := regexp.MustCompile(`^OpenSSL (\d+)\.`).FindSubmatch(out)
	if m == nil {
		t.Logf("openssl version %q: not OpenSSL", strings.TrimSpace(string(out)))
		return false
	}
	major, _ := strconv.Atoi(string(m[1]))
	return major >= 3
}

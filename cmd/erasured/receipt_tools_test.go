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

	noHash := writeFile(t, dir, "no-hash.json", string(editReceipt(t, status, func(r map[string]any) { delete(r, "hash") })), 0o600)
	otherKid := writeFile(t, dir, "other-kid.json", string(editReceipt(t, status, func(r map[string]any) { r["keyId"] = "rk-000000000000" })), 0o600)
	unsigned := writeFile(t, dir, "unsigned.json", string(editReceipt(t, status, func(r map[string]any) { r["allChannelsSearched"] = true })), 0o600)
	otherAccount := writeFile(t, dir, "other-account.json", string(editErasure(t, status, func(e map[string]any) { e["accountId"] = "9999" })), 0o600)
	var jws string
	editReceipt(t, status, func(r map[string]any) { jws = r["jws"].(string) })
	jwsAlone := writeFile(t, dir, "receipt.jws", jws+"\n", 0o600)

	// What each tool must make of each file: "ok", "fail", or "" where the tool does not check
	// it (openssl checks the JWS and the hash, not the fields shown, nor the Erasure around
	// them; node reads the receipt's JSON, not a JWS alone).
	checks := []struct {
		name, file    string
		node, openssl string
	}{
		{"the receipt", good, "ok", "ok"},
		{"a field changed", changed, "fail", ""},
		{"the hash changed", chain, "fail", "fail"},
		{"the hash deleted", noHash, "fail", "fail"},
		{"the signature changed", forged, "fail", "fail"},
		{"the key id changed", otherKid, "fail", "fail"},
		{"a field a receipt has not added", unsigned, "fail", ""},
		{"the Erasure names another account", otherAccount, "fail", ""},
		{"the JWS alone", jwsAlone, "", "ok"},
	}
	run := func(t *testing.T, label, tool string, want func(i int) string, args func(file string) []string) {
		for i, c := range checks {
			if want(i) == "" {
				continue
			}
			out, ok := runTool(t, tool, args(c.file)...)
			if ok != (want(i) == "ok") {
				t.Errorf("%s on %s: exit ok = %v, want %s:\n%s", label, c.name, ok, want(i), out)
			}
			if ok && !strings.Contains(out, "valid") {
				t.Errorf("%s on %s says nothing of validity:\n%s", label, c.name, out)
			}
		}
	}

	t.Run("node", func(t *testing.T) {
		if nodeErr != nil {
			t.Skip("no node on this machine")
		}
		script := filepath.Join(receiptExamples, "verify.mjs")
		run(t, "verify.mjs", node, func(i int) string { return checks[i].node }, func(file string) []string { return []string{script, file, jwk} })
		if out, _ := runTool(t, node, script, good, jwk); !strings.Contains(out, "only erasure.receipt is signed") {
			t.Errorf("verify.mjs on a Status response does not say the Erasure around the receipt is not signed:\n%s", out)
		}
	})
	t.Run("openssl", func(t *testing.T) {
		if opensslErr != nil {
			t.Skip("no openssl 3 on this machine (Ed25519 with -rawin needs it)")
		}
		script := filepath.Join(receiptExamples, "verify-openssl.sh")
		run(t, "verify-openssl.sh", "sh", func(i int) string { return checks[i].openssl }, func(file string) []string { return []string{script, file, pem} })
		if out, _ := runTool(t, "sh", script, good, pem); !strings.Contains(out, `"accountId":"`+e2eAcct+`"`) {
			t.Errorf("verify-openssl.sh does not print the signed payload:\n%s", out)
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

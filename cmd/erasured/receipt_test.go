package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// completedOverTheWire runs one erasure through the pipeline to COMPLETED, serves the service
// over the real gRPC server, and returns its address and the erasure's Status response as
// `erasured ctl get -o json` prints it: the receipt exactly as a user receives it.
func completedOverTheWire(t *testing.T) (addr string, status []byte, e *e2eEnv) {
	t.Helper()
	e = newE2E(t, e2eOptions{})
	name := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
	addr = serveCtl(t, e.svc, server.Options{})
	status = []byte(mustCtl(t, addr, "get", name, "-o", "json"))
	var resp erasurev1.StatusResponse
	if err := protojson.Unmarshal(status, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.GetErasure().GetReceipt().GetJws() == "" {
		t.Fatal("Status shows the completed erasure's receipt without its JWS")
	}
	return addr, status, e
}

// editReceipt returns status with its receipt changed by edit.
func editReceipt(t *testing.T, status []byte, edit func(r map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(status, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["erasure"].(map[string]any)["receipt"].(map[string]any))
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editErasure returns status with the Erasure holding its receipt changed by edit.
func editErasure(t *testing.T, status []byte, edit func(e map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(status, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["erasure"].(map[string]any))
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReceiptVerifyCommand(t *testing.T) {
	addr, status, e := completedOverTheWire(t)
	dir := t.TempDir()
	keyB64 := strings.TrimSpace(mustCtl(t, addr, "receipt-keys", "--format", "base64"))
	if keyB64 != base64.StdEncoding.EncodeToString(e.keys.PublicKey()) {
		t.Fatalf("ctl receipt-keys --format base64 = %s, not the service's key", keyB64)
	}
	jwkFile := writeFile(t, dir, "key.jwk", mustCtl(t, addr, "receipt-keys", "--format", "jwk"), 0o600)
	pemFile := writeFile(t, dir, "key.pem", mustCtl(t, addr, "receipt-keys", "--format", "pem"), 0o600)
	other, _ := service.NewKeyring("other", []byte("fedcba9876543210fedcba9876543210"))
	otherKey := base64.StdEncoding.EncodeToString(other.PublicKey())

	tamperPayload := func(r map[string]any) {
		parts := strings.Split(r["jws"].(string), ".")
		p, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString(bytes.Replace(p, []byte(`"accountId":"`+e2eAcct+`"`), []byte(`"accountId":"9999"`), 1))
		r["jws"] = strings.Join(parts, ".")
	}
	legacy, err := os.ReadFile("testdata/receipt-before-jws.json")
	if err != nil {
		t.Fatal(err)
	}
	const legacyKey = "wIO1zPExq76j0lOUYG3bvCEtG/cYeWIeuTt6vLTOAqw=" // the key that signed the fixture
	var legacyDoc map[string]any
	json.Unmarshal(legacy, &legacyDoc)
	legacyDoc["unverifiableCount"] = 2
	legacyTampered, _ := json.Marshal(legacyDoc)
	var unsignedDoc map[string]any
	json.Unmarshal(legacy, &unsignedDoc)
	unsignedDoc["allChannelsSearched"] = true
	legacyWithUnsigned, _ := json.Marshal(unsignedDoc)

	// Fields a receipt does not have: no signature covers them, so a receipt showing them
	// says more than was verified.
	addUnsigned := func(r map[string]any) { r["allChannelsSearched"] = true; r["verifiedBy"] = "DPO" }
	addUnsignedCount := func(r map[string]any) {
		r["counts"].([]any)[0].(map[string]any)["verified"] = true
	}
	withoutJWS := func(edit func(r map[string]any)) func(r map[string]any) {
		return func(r map[string]any) { edit(r); delete(r, "jws") }
	}
	var receiptAlone []byte
	editReceipt(t, status, func(r map[string]any) { receiptAlone, _ = json.Marshal(r) })
	var statusDoc map[string]any
	json.Unmarshal(status, &statusDoc)
	erasureAlone, _ := json.Marshal(statusDoc["erasure"])

	tests := []struct {
		name    string
		receipt []byte
		key     string
		want    string // in the output, or in the error when bad
		bad     bool
	}{
		{"JWS, base64 key", status, keyB64, "its JWS (EdDSA) checked", false},
		{"JWS, JWK file", status, jwkFile, "its JWS (EdDSA) checked", false},
		{"JWS, PEM file", status, pemFile, "its JWS (EdDSA) checked", false},
		{"JWS left out", editReceipt(t, status, func(r map[string]any) { delete(r, "jws") }), keyB64, "rebuilt from its fields", false},
		{"a visible field changed", editReceipt(t, status, func(r map[string]any) { r["accountId"] = "9999" }), keyB64, "NOT valid", true},
		{"a visible field changed, JWS left out", editReceipt(t, status, func(r map[string]any) { r["accountId"] = "9999"; delete(r, "jws") }), keyB64, "NOT valid", true},
		{"the signed payload changed", editReceipt(t, status, tamperPayload), keyB64, "NOT valid", true},
		{"another key", status, otherKey, "NOT valid", true},
		{"signed before the JWS form", legacy, legacyKey, "signed before receipts carried a JWS", false},
		{"signed before the JWS form, changed", legacyTampered, legacyKey, "NOT valid", true},
		{"fields a receipt has not added", editReceipt(t, status, addUnsigned), keyB64, "NOT valid", true},
		{"fields a receipt has not added, JWS left out", editReceipt(t, status, withoutJWS(addUnsigned)), keyB64, "NOT valid", true},
		{"a field a count has not added", editReceipt(t, status, addUnsignedCount), keyB64, "NOT valid", true},
		{"signed before the JWS form, a field it has not added", legacyWithUnsigned, legacyKey, "NOT valid", true},
		{"the receipt alone", receiptAlone, keyB64, "its JWS (EdDSA) checked", false},
		{"an Erasure", erasureAlone, keyB64, "only erasure.receipt is signed", false},
		{"a Status response", status, keyB64, "only erasure.receipt is signed", false},
		{"the Erasure names another account", editErasure(t, status, func(e map[string]any) { e["accountId"] = "9999" }), keyB64, "differs from it in accountId", true},
		{"the Erasure names another erasure", editErasure(t, status, func(e map[string]any) { e["name"] = "erasures/other" }), keyB64, "differs from it in name", true},
		{"the Erasure names another subject", editErasure(t, status, func(e map[string]any) { e["subjectFingerprint"] = "ff" }), keyB64, "differs from it in subjectFingerprint", true},
		{"the Erasure has no receipt", editErasure(t, status, func(e map[string]any) { delete(e, "receipt") }), keyB64, "no receipt found", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "status.json", string(tt.receipt), 0o600)
			var out bytes.Buffer
			err := receiptMain([]string{"verify", "--public-key", tt.key, file}, &out)
			switch {
			case tt.bad && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("receipt verify = %v (%s), want an error with %q", err, out.String(), tt.want)
			case !tt.bad && (err != nil || !strings.Contains(out.String(), tt.want)):
				t.Errorf("receipt verify = %v, %q; want success saying %q", err, out.String(), tt.want)
			}
		})
	}
}

// writeServerConfig writes a configuration whose paths are dir/data/… (absolute, or relative
// to dir when rel), with a master key file, and returns the config's path.
func writeServerConfig(t *testing.T, dir string, rel bool) string {
	t.Helper()
	base := filepath.Join(dir, "data")
	if rel {
		base = "data"
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	writeFile(t, filepath.Join(dir, "data"), "master.key", base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	return writeFile(t, dir, "erasured.yaml", "db: "+filepath.Join(base, "erasure.db")+"\nprivacy:\n  master_key_file: "+filepath.Join(base, "master.key")+"\n"+accountsYAML(t, dir), 0o600)
}

func publicKeyOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := receiptMain(append([]string{"public-key"}, args...), &out)
	return strings.TrimSpace(out.String()), err
}

// TestReceiptPublicKeyFindsTheServersKey: `receipt public-key` finds the key the server signs
// with from any working directory, by the same configuration; where it cannot, it fails,
// makes nothing and says where to ask instead.
func TestReceiptPublicKeyFindsTheServersKey(t *testing.T) {
	t.Setenv("ERASURED_MASTER_KEY", "")
	t.Setenv("ERASURED_CONFIG", "")
	serverDir, elsewhere := t.TempDir(), t.TempDir()
	cfgPath := writeServerConfig(t, serverDir, false)
	cfg, err := loadConfig([]string{"--config", cfgPath}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := openKeyring(&cfg, e2eT0) // the server's own way, at its start
	if err != nil {
		t.Fatal(err)
	}
	want := base64.StdEncoding.EncodeToString(keys.PublicKey())

	t.Chdir(elsewhere)
	for _, format := range []string{"base64", "jwk", "pem"} {
		got, err := publicKeyOut(t, "--config", cfgPath, "--format", format)
		if err != nil {
			t.Fatalf("public-key --format %s: %v", format, err)
		}
		key, err := readPublicKey(got)
		if err != nil || base64.StdEncoding.EncodeToString(key) != want {
			t.Errorf("public-key --format %s from another directory = %s (%v), want the server's key %s", format, got, err, want)
		}
	}
	if got, _ := publicKeyOut(t, "--config", cfgPath); got != want {
		t.Errorf("public-key (base64 by default) = %q, want %s", got, want)
	}
	t.Setenv("ERASURED_CONFIG", cfgPath)
	if got, err := publicKeyOut(t); got != want {
		t.Errorf("public-key with ERASURED_CONFIG = %q, %v; want %s", got, err, want)
	}
	t.Setenv("ERASURED_CONFIG", "")

	// The sandbox's paths are relative; run from a directory without them, the command fails
	// instead of making a master key and printing a key no receipt was signed with.
	if got, err := publicKeyOut(t); err == nil || !strings.Contains(err.Error(), "erasured ctl receipt-keys") ||
		!strings.Contains(err.Error(), filepath.Join(elsewhere, "var", "master.key")) {
		t.Errorf("sandbox public-key from an empty directory = %q, %v; want an error naming the path looked at and ctl receipt-keys", got, err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "var")); !os.IsNotExist(err) {
		t.Errorf("public-key made %s (stat: %v)", filepath.Join(elsewhere, "var"), err)
	}

	// Relative paths in a configuration are taken from the working directory, as the server
	// takes them: the same answer where the server runs, a refusal elsewhere.
	relDir := t.TempDir()
	relCfg := writeServerConfig(t, relDir, true)
	t.Chdir(relDir)
	rcfg, err := loadConfig([]string{"--config", relCfg}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	rkeys, err := openKeyring(&rcfg, e2eT0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := publicKeyOut(t, "--config", relCfg); got != base64.StdEncoding.EncodeToString(rkeys.PublicKey()) {
		t.Errorf("public-key where the server runs = %q, %v; want its key", got, err)
	}
	t.Chdir(elsewhere)
	if _, err := publicKeyOut(t, "--config", relCfg); err == nil || !strings.Contains(err.Error(), "working directory") {
		t.Errorf("public-key with relative paths from elsewhere = %v, want an error explaining them", err)
	}
	if _, err := publicKeyOut(t, "--config", cfgPath, "--format", "der"); err == nil {
		t.Error("public-key --format der accepted")
	}
}

func TestCtlReceiptKeys(t *testing.T) {
	svc := ctlService(t)
	addr := serveCtl(t, svc, server.Options{})
	k := svc.ReceiptKeys()[0]
	out := mustCtl(t, addr, "receipt-keys")
	jwk, _ := k.JWK()
	pem, _ := k.PEM()
	for _, want := range []string{k.ID + " (signs new receipts)", "base64: " + base64.StdEncoding.EncodeToString(k.PublicKey), "jwk:    " + jwk, "\n  pem:\n" + pem} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl receipt-keys lacks %q:\n%s", want, out)
		}
	}
	var resp erasurev1.GetReceiptKeysResponse
	if err := protojson.Unmarshal([]byte(mustCtl(t, addr, "receipt-keys", "-o", "json")), &resp); err != nil || len(resp.GetKeys()) != 1 || resp.GetKeys()[0].GetKeyId() != k.ID {
		t.Errorf("ctl receipt-keys -o json = %v, %v; want the one key", &resp, err)
	}
	if got := strings.TrimSpace(mustCtl(t, addr, "receipt-keys", "-o", "name")); got != k.ID {
		t.Errorf("ctl receipt-keys -o name = %q, want %s", got, k.ID)
	}
	if _, _, err := runCtl(t, nil, addr, "receipt-keys", "--format", "der"); err == nil {
		t.Error("ctl receipt-keys --format der accepted")
	}
}

// TestReceiptVerifyFlagHelp: the flag package takes a back-quoted word in a usage for the
// flag's argument; --public-key's usage has none, so its help reads as written.
func TestReceiptVerifyFlagHelp(t *testing.T) {
	fs, _ := verifyFlags()
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	if help := out.String(); !strings.Contains(help, "-public-key string") || strings.Contains(help, "`") {
		t.Errorf("receipt verify's flag help:\n%s\nwant -public-key taking a string, and no back-quotes", help)
	}
}

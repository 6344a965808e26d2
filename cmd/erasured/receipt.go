package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/encoding/protojson"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// receiptMain handles `erasured receipt verify` and `erasured receipt public-key`.
func receiptMain(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: erasured receipt verify --public-key KEY [FILE] | erasured receipt public-key [--config FILE] [--format base64|jwk|pem]")
	}
	switch args[0] {
	case "verify":
		return receiptVerify(args[1:], stdout)
	case "public-key":
		return receiptPublicKey(args[1:], stdout)
	}
	return fmt.Errorf("unknown receipt command %q", args[0])
}

// receiptVerify checks a receipt offline against a public key: its JWS when it carries one
// (signature, kid, and a payload equal to the fields shown), and its hash and signature in the
// form it was signed in. Given a Status response or an Erasure, it also requires the Erasure to
// name the receipt's erasure, account and subject fingerprint: the Erasure is not signed.
func receiptVerify(args []string, stdout io.Writer) error {
	fs, pub := verifyFlags()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pub == "" {
		return errors.New("--public-key is required")
	}
	in := io.Reader(os.Stdin)
	if fs.NArg() > 0 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	raw, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		return err
	}
	key, err := readPublicKey(*pub)
	if err != nil {
		return err
	}
	rc, jws, around, err := parseReceipt(raw)
	if err != nil {
		return err
	}
	if err := service.VerifyReceipt(rc, key); err != nil {
		return fmt.Errorf("receipt for %s is NOT valid: %w", rc.Erasure, err)
	}
	form := "signed before receipts carried a JWS"
	if jws != "" {
		if err := service.VerifyReceiptJWS(rc, jws, key); err != nil {
			return fmt.Errorf("receipt for %s is NOT valid: %w", rc.Erasure, err)
		}
		form = "its JWS (EdDSA) checked, and its fields are what was signed"
	} else if service.ReceiptJWS(rc) != "" {
		form = "signed as a JWS, which was rebuilt from its fields"
	}
	wrapper := ""
	if around != nil {
		if err := matchesErasure(rc, around); err != nil {
			return fmt.Errorf("receipt for %s is NOT valid as given: %w", rc.Erasure, err)
		}
		wrapper = "; the Erasure around it names the same erasure, account and subject fingerprint, " +
			"but only erasure.receipt is signed"
	}
	fmt.Fprintf(stdout, "receipt for %s is valid: signed by %s, %s; hash %s, previous %s%s\n",
		rc.Erasure, rc.KeyID, form, rc.Hash, orNone(rc.PreviousHash), wrapper)
	return nil
}

// verifyFlags are the flags of `receipt verify`: the FlagSet and its --public-key.
func verifyFlags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("receipt verify", flag.ContinueOnError)
	pub := fs.String("public-key", "", "the receipt-signing public key, as erasured receipt public-key or erasured ctl receipt-keys print it (base64, JWK or PEM), or a file holding it")
	return fs, pub
}

// matchesErasure requires the Erasure a receipt was given in to name the receipt's erasure,
// account and subject fingerprint. The Erasure is not signed, and a reader takes these from it
// as readily as from the receipt: where they differ, the input says more than was verified.
func matchesErasure(rc service.Receipt, e *erasurev1.Erasure) error {
	var differ []string
	if e.GetName() != rc.Erasure {
		differ = append(differ, "name (the receipt's erasure)")
	}
	if e.GetAccountId() != rc.AccountID {
		differ = append(differ, "accountId")
	}
	if e.GetSubjectFingerprint() != rc.SubjectFingerprint {
		differ = append(differ, "subjectFingerprint")
	}
	if len(differ) > 0 {
		return fmt.Errorf("the Erasure around the receipt differs from it in %s; only erasure.receipt is signed", strings.Join(differ, ", "))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(first in chain)"
	}
	return s
}

// readPublicKey reads a receipt-signing public key given as a value or as a file holding it: a
// JWK, a PEM "PUBLIC KEY" block or 32 bytes in base64.
func readPublicKey(v string) (ed25519.PublicKey, error) {
	if b, err := os.ReadFile(v); err == nil {
		v = string(b)
	}
	v = strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(v, "{"):
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON([]byte(v)); err != nil {
			return nil, fmt.Errorf("public key JWK: %w", err)
		}
		pub, ok := k.Key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key JWK holds a %T, want an Ed25519 public key", k.Key)
		}
		return pub, nil
	case strings.HasPrefix(v, "-----BEGIN"):
		block, _ := pem.Decode([]byte(v))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, errors.New(`public key PEM: want a "PUBLIC KEY" block`)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key PEM: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key PEM holds a %T, want an Ed25519 key", k)
		}
		return pub, nil
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, errors.New("public key must be a JWK, a PEM PUBLIC KEY block, or 32 bytes in base64")
	}
	return key, nil
}

// parseReceipt accepts the receipt as grpcurl and `erasured ctl get -o json` print it: the
// Receipt message alone, or a Status response / Erasure holding it. jws is its Receipt.jws;
// around is the Erasure holding it, if any. The Receipt is decoded strictly: a field it does
// not have is no part of what was signed, and a receipt showing one says more than was
// verified. What holds it is decoded leniently: it is not signed, and only the Erasure's name,
// account and subject fingerprint are read from it, to be compared with the receipt's.
func parseReceipt(raw []byte) (rc service.Receipt, jws string, around *erasurev1.Erasure, err error) {
	obj, err := jsonObject(raw)
	if err != nil {
		return service.Receipt{}, "", nil, fmt.Errorf("receipt is not JSON: %w", err)
	}
	if inner, ok := obj["erasure"]; ok && isObject(inner) { // a Status response
		raw = inner
		if obj, err = jsonObject(raw); err != nil {
			return service.Receipt{}, "", nil, fmt.Errorf("erasure is not JSON: %w", err)
		}
	}
	if _, named := obj["name"]; named && !isObject(obj["receipt"]) {
		return service.Receipt{}, "", nil, errors.New("no receipt found in the input: the erasure has none until it is COMPLETED")
	}
	if inner, ok := obj["receipt"]; ok && isObject(inner) { // an Erasure
		around = &erasurev1.Erasure{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, around); err != nil {
			return service.Receipt{}, "", nil, fmt.Errorf("decode the erasure around the receipt: %w", err)
		}
		raw = inner
	}
	var pr erasurev1.Receipt
	if err := protojson.Unmarshal(raw, &pr); err != nil {
		return service.Receipt{}, "", nil, fmt.Errorf("receipt is NOT valid: it is not a receipt as the API writes it, "+
			"and nothing outside a receipt's fields is signed: %w", err)
	}
	rc = server.ReceiptFromProto(&pr)
	if rc.Erasure == "" || rc.Hash == "" {
		return service.Receipt{}, "", nil, errors.New("no receipt found in the input")
	}
	return rc, pr.GetJws(), around, nil
}

func jsonObject(raw []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	err := json.Unmarshal(raw, &obj)
	return obj, err
}

func isObject(v json.RawMessage) bool { return strings.HasPrefix(strings.TrimSpace(string(v)), "{") }

// receiptPublicKey prints the receipt-signing public key of the server configured as given:
// the same configuration loading as the server's (the file, ERASURED_* variables, defaults),
// the same master key and key directory. It only reads: it makes no master key (as the
// sandbox's start does), no key directory and no period key, so that run from the wrong
// place it fails instead of printing a key no receipt was signed with.
func receiptPublicKey(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("receipt public-key", flag.ContinueOnError)
	config := fl.String("config", "", "the server's configuration file (default: env ERASURED_CONFIG; without either: the sandbox's)")
	db := fl.String("db", "", "the server's --db, if it was started with one")
	format := fl.String("format", "base64", "base64 (32 bytes), jwk (a JSON Web Key, for JOSE tools and node) or pem (for openssl)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	var cargs []string
	if *config != "" {
		cargs = append(cargs, "--config", *config)
	}
	if *db != "" {
		cargs = append(cargs, "--db", *db)
	}
	cfg, err := readConfig(cargs, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Store.shared() {
		// On etcd the root secret is in the store, not in a key directory: a running replica
		// answers from it.
		return errors.New("receipt public-key: reads a key directory, and store.backend is etcd: ask a running replica instead: erasured ctl receipt-keys")
	}
	master, _, err := readMasterKey(cfg.Privacy.MasterKeyFile, false, cfg.env)
	if errors.Is(err, fs.ErrNotExist) {
		abs, _ := filepath.Abs(cfg.Privacy.MasterKeyFile)
		return fmt.Errorf("no master key at %s: relative paths are taken from the working directory, as the server takes them; "+
			"run this where the server runs, with its --config, or ask the running server: erasured ctl receipt-keys", abs)
	}
	if err != nil {
		return err
	}
	k, err := service.ReadReceiptKey(masterKeyID(cfg.Privacy.MasterKeyID, master), master, keyDirOf(&cfg))
	if err != nil {
		return err
	}
	out, err := formatReceiptKey(k.ID, k.PublicKey, *format)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, strings.TrimRight(out, "\n"))
	return err
}

// formatReceiptKey writes a receipt-signing key in one of the forms `receipt verify` reads.
func formatReceiptKey(id string, pub ed25519.PublicKey, format string) (string, error) {
	k := service.ReceiptKey{ID: id, PublicKey: pub}
	switch format {
	case "base64":
		return base64.StdEncoding.EncodeToString(pub), nil
	case "jwk":
		return k.JWK()
	case "pem":
		return k.PEM()
	}
	return "", fmt.Errorf("--format must be base64, jwk or pem, not %q", format)
}

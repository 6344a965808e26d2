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
// form it was signed in.
func receiptVerify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("receipt verify", flag.ContinueOnError)
	pub := fs.String("public-key", "", "the receipt-signing public key, as `erasured receipt public-key` or `erasured ctl receipt-keys` print it (base64, JWK or PEM), or a file holding it")
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
	rc, jws, err := parseReceipt(raw)
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
	fmt.Fprintf(stdout, "receipt for %s is valid: signed by %s, %s; hash %s, previous %s\n", rc.Erasure, rc.KeyID, form, rc.Hash, orNone(rc.PreviousHash))
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
// Receipt message alone, or a Status response / Erasure holding it. jws is its Receipt.jws.
func parseReceipt(raw []byte) (rc service.Receipt, jws string, err error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return service.Receipt{}, "", fmt.Errorf("receipt is not JSON: %w", err)
	}
	for _, wrap := range []string{"erasure", "receipt"} {
		if inner, ok := probe[wrap]; ok && strings.HasPrefix(strings.TrimSpace(string(inner)), "{") {
			return parseReceipt(inner)
		}
	}
	var pr erasurev1.Receipt
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &pr); err != nil {
		return service.Receipt{}, "", fmt.Errorf("decode receipt: %w", err)
	}
	rc = server.ReceiptFromProto(&pr)
	if rc.Erasure == "" || rc.Hash == "" {
		return service.Receipt{}, "", errors.New("no receipt found in the input")
	}
	return rc, pr.GetJws(), nil
}

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

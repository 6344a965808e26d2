package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// receiptMain handles `erasured receipt verify` and `erasured receipt public-key`.
func receiptMain(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: erasured receipt verify --public-key KEY [FILE] | erasured receipt public-key [--config FILE]")
	}
	switch args[0] {
	case "verify":
		fs := flag.NewFlagSet("receipt verify", flag.ContinueOnError)
		pub := fs.String("public-key", "", "the receipt-signing public key (base64, as `erasured receipt public-key` prints it), or a file holding it")
		if err := fs.Parse(args[1:]); err != nil {
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
		rc, err := parseReceipt(raw)
		if err != nil {
			return err
		}
		if err := service.VerifyReceipt(rc, key); err != nil {
			return fmt.Errorf("receipt for %s is NOT valid: %w", rc.Erasure, err)
		}
		fmt.Fprintf(stdout, "receipt for %s is valid: signed by %s, hash %s, previous %s\n", rc.Erasure, rc.KeyID, rc.Hash, orNone(rc.PreviousHash))
		return nil
	case "public-key":
		cfg, err := loadConfig(args[1:], os.Getenv)
		if err != nil {
			return err
		}
		// The signing key comes from the key directory's root secret, which rotation keeps: a
		// key derived from the master key alone would change with each rotation.
		keys, err := openKeyring(&cfg, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(keys.PublicKey()))
		return nil
	}
	return fmt.Errorf("unknown receipt command %q", args[0])
}

func orNone(s string) string {
	if s == "" {
		return "(first in chain)"
	}
	return s
}

func readPublicKey(v string) (ed25519.PublicKey, error) {
	if b, err := os.ReadFile(v); err == nil {
		v = strings.TrimSpace(string(b))
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, errors.New("public key must be 32 bytes in base64")
	}
	return key, nil
}

// parseReceipt accepts the receipt as grpcurl prints it: the Receipt message alone, or a Status
// response / Erasure holding it.
func parseReceipt(raw []byte) (service.Receipt, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return service.Receipt{}, fmt.Errorf("receipt is not JSON: %w", err)
	}
	for _, wrap := range []string{"erasure", "receipt"} {
		if inner, ok := probe[wrap]; ok && strings.HasPrefix(strings.TrimSpace(string(inner)), "{") {
			return parseReceipt(inner)
		}
	}
	var pr erasurev1.Receipt
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &pr); err != nil {
		return service.Receipt{}, fmt.Errorf("decode receipt: %w", err)
	}
	rc := server.ReceiptFromProto(&pr)
	if rc.Erasure == "" || rc.Hash == "" {
		return service.Receipt{}, errors.New("no receipt found in the input")
	}
	return rc, nil
}

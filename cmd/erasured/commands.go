package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand of erasured.
type command struct {
	name    string
	summary string // one line, for the list of commands
	// usage is printed for `erasured NAME --help`. Empty: the command prints its own help, and
	// the flag.ErrHelp it returns then means success.
	usage string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands are erasured's subcommands, in the order the help lists them. A new subcommand is
// one more entry here: the dispatch, the list in --help and `NAME --help` follow from it.
func commands() []command {
	return []command{
		{name: "receipt", summary: "verify a signed receipt; print the receipt-signing public key", usage: receiptUsage,
			run: func(_ context.Context, args []string, stdout, _ io.Writer) error { return receiptMain(args, stdout) }},
		{name: "keys", summary: "rotate the master key (with the server stopped)", usage: keysUsage,
			run: func(ctx context.Context, args []string, stdout, _ io.Writer) error {
				return keysMain(ctx, args, stdout)
			}},
		{name: "config", summary: "check a configuration file, reporting every problem at once", usage: configUsage,
			run: func(_ context.Context, args []string, stdout, _ io.Writer) error {
				return configMain(args, stdout, os.Getenv)
			}},
		{name: "lpsim", summary: "run the LivePerson simulator on its own", run: lpsimMain},
		{name: "ctl", summary: "operate a running erasured: list, get, plan, watch, confirm, reject, cancel, submit, audit, backup, receipt-keys",
			run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				return ctlMain(ctx, args, stdout, stderr, os.Getenv)
			}},
		{name: "version", summary: "print the version, the source revision and the Go version", usage: "usage: erasured version\n",
			run: func(_ context.Context, _ []string, stdout, _ io.Writer) error { return writeVersion(stdout) }},
	}
}

const receiptUsage = `usage:
  erasured receipt verify --public-key KEY [FILE]
      check a receipt: its JWS (EdDSA signature, key id, and a signed payload equal to the
      fields shown), or for a receipt signed before receipts carried one, its signature; and
      its hash. FILE (default: standard input) holds the receipt, or a Status response or
      Erasure holding it, as JSON (grpcurl's, or erasured ctl get -o json). KEY is the public
      key in base64, as a JWK or as PEM, or a file holding it. A receipt with fields a Receipt
      does not have is refused; given a Status response or Erasure, its name, accountId and
      subjectFingerprint must be the receipt's (only erasure.receipt is signed).
  erasured receipt public-key [--config FILE] [--db FILE] [--format base64|jwk|pem]
      print the receipt-signing public key of the server configured by FILE (default: env
      ERASURED_CONFIG; without either: the sandbox's), found as the server finds it: the same
      configuration, master key and key directory, relative paths from the working directory.
      It writes nothing. A running server hands it out too: erasured ctl receipt-keys.
`

const keysUsage = `usage:
  erasured keys rotate --config FILE --new-master-key-file FILE [--new-master-key-id ID]
      seal the key directory again under a new master key; stop the server first.
      Receipts keep verifying against the same public key.
`

// serveFlags are the server's flags as the help lists them; a test checks them against the
// flags the configuration loader defines.
const serveFlags = `flags:
  --config FILE            configuration file (YAML; or env ERASURED_CONFIG); without it
                           erasured runs the sandbox
  --listen ADDR            gRPC listen address (default 127.0.0.1:50051)
  --db FILE                bbolt database file (default var/erasure.db)
  --metrics-listen ADDR    Prometheus metrics listen address (default: off)
  --log-level LEVEL        debug, info, warn or error (default info); SIGHUP reads it again
  --no-credential-check    skip the start-up call that checks each account's LivePerson
                           credentials
  --help, -h               print this help
  --version                print the version, the source revision and the Go version
`

// writeUsage prints erasured's help: how to serve, the commands, the server's flags.
func writeUsage(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`erasured carries out GDPR erasure requests against a brand's LivePerson data.

usage:
  erasured [flags]             serve gRPC until SIGTERM or SIGINT; SIGHUP reloads the
                               callers and the TLS files
  erasured COMMAND [ARGS]      run a command
  erasured COMMAND --help      print a command's usage

commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\n" + serveFlags)
	_, err := io.WriteString(w, b.String())
	return err
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help", "help":
		return true
	}
	return false
}

// dispatch runs what args name other than the server: the help, the version, or a command.
// handled is false when args are the server's.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) (handled bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	switch {
	case isHelp(args[0]) && len(args) > 1 && args[0] == "help":
		// `erasured help NAME` is `erasured NAME --help`.
		return dispatch(ctx, []string{args[1], "--help"}, stdout, stderr)
	case isHelp(args[0]):
		return true, writeUsage(stdout)
	case args[0] == "-version" || args[0] == "--version":
		return true, writeVersion(stdout)
	}
	for _, c := range commands() {
		if args[0] != c.name {
			continue
		}
		if c.usage != "" && len(args) > 1 && isHelp(args[1]) {
			_, err := io.WriteString(stdout, c.usage)
			return true, err
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			err = nil // the command's flags were asked for, and printed
		}
		return true, err
	}
	if !strings.HasPrefix(args[0], "-") {
		return true, fmt.Errorf("unknown command %q; `erasured --help` lists the commands", args[0])
	}
	// The server's flags with a help flag among them (`erasured --config F --help`): the help,
	// not the "flag: help requested" error of the flag package.
	for _, a := range args {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && isHelp(a) {
			return true, writeUsage(stdout)
		}
	}
	return false, nil
}

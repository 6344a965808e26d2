package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

const ctlUsage = `usage: erasured ctl [FLAGS] COMMAND [ARGS] [FLAGS]

An operator's client for a running erasured, over its gRPC API.

Commands:
  list [--account A] [--state STATE]... [--external-ref REF]
                                          erasures, oldest first (--state repeats;
                                          --external-ref matches exactly)
  get NAME                                one erasure in full
  plan NAME                               an erasure's deletion plan and its etag
  watch [NAME] [--from REV]               stream changes; a named watch ends at a final state
  confirm NAME --etag E                   approve a MANUAL erasure's plan
  reject NAME --reason R                  reject a MANUAL erasure's plan
  cancel NAME --reason R                  cancel an erasure while nothing is final at LivePerson
  submit --account A (--customer-id X | --email X | --phone X | --consumer-id X)
         [--request-id UUID] [--external-ref REF] [--manual]
                                          submit an erasure (a new request id is printed)
  audit [--erasure NAME]                  the audit trail, oldest first
  backup FILE                             a consistent snapshot of the server's store
                                          (operator role; the key directory is not in it)
  receipt-keys [--format base64|jwk|pem]
                                          the keys that verify receipts; with --format, the
                                          signing key alone in that form

Flags (before or after the command):
  --addr HOST:PORT   erasured's gRPC address (default 127.0.0.1:50051, env ERASURED_ADDR)
  --cacert FILE      speak TLS, trusting this CA; without it only loopback addresses are allowed
  --cert FILE --key FILE   a client certificate (with --cacert)
  --token-file FILE  a bearer token (the file must be private); or env ERASURED_TOKEN
  -o text|json|name  output: readable text (default), protojson, or names only
  --timeout D        deadline of each call, not of watch (default 30s)

NAME is erasures/ID; a bare ID is accepted. The token is never taken on the command line.
`

// ctlOptions are the flags every ctl command takes.
type ctlOptions struct {
	addr, cacert, cert, key, tokenFile, output string
	timeout                                    time.Duration
}

// register adds the common flags to fs, each defaulting to its current value, so that they
// may be given before the command and after it alike.
func (o *ctlOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "addr", o.addr, "")
	fs.StringVar(&o.cacert, "cacert", o.cacert, "")
	fs.StringVar(&o.cert, "cert", o.cert, "")
	fs.StringVar(&o.key, "key", o.key, "")
	fs.StringVar(&o.tokenFile, "token-file", o.tokenFile, "")
	fs.StringVar(&o.output, "o", o.output, "")
	fs.StringVar(&o.output, "output", o.output, "")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "")
}

// ctl is one ctl invocation: its options, its connection and where it writes.
type ctl struct {
	opts   ctlOptions
	client erasurev1.ErasureServiceClient
	out    io.Writer
	errOut io.Writer
}

// ctlMain runs `erasured ctl`. Errors come back formatted for an operator (a gRPC error with its
// code, ErrorInfo reason and field violations), and make the command exit non-zero.
func ctlMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	o := ctlOptions{addr: "127.0.0.1:50051", output: "text", timeout: 30 * time.Second}
	if a := getenv("ERASURED_ADDR"); a != "" {
		o.addr = a
	}
	fs := newCtlFlags("ctl")
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return ctlFlagError(err, stdout)
	}
	if fs.NArg() == 0 || fs.Arg(0) == "help" {
		fmt.Fprint(stdout, ctlUsage)
		return nil
	}
	cmd, ok := ctlCommands[fs.Arg(0)]
	if !ok {
		return fmt.Errorf("ctl: unknown command %q (see erasured ctl --help)", fs.Arg(0))
	}
	cfs := newCtlFlags("ctl " + fs.Arg(0))
	o.register(cfs)
	check, run := cmd.setup(cfs)
	pos, err := parseInterleaved(cfs, fs.Args()[1:])
	if err != nil {
		return ctlFlagError(err, stdout)
	}
	if len(pos) < cmd.minArgs || len(pos) > cmd.maxArgs {
		return fmt.Errorf("ctl %s: usage: erasured ctl %s", fs.Arg(0), cmd.usage)
	}
	if err := check(); err != nil {
		return fmt.Errorf("ctl %s: %w", fs.Arg(0), err)
	}
	switch o.output {
	case "text", "json", "name":
	default:
		return fmt.Errorf("ctl: -o must be text, json or name, not %q", o.output)
	}
	conn, err := ctlDial(o, getenv)
	if err != nil {
		return fmt.Errorf("ctl: %w", err)
	}
	defer conn.Close()
	c := &ctl{opts: o, client: erasurev1.NewErasureServiceClient(conn), out: stdout, errOut: stderr}
	if err := run(ctx, c, pos); err != nil {
		return describeError(err)
	}
	return nil
}

func newCtlFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // ctl prints its own usage and errors
	return fs
}

// ctlFlagError turns -h into the usage (exit 0) and any other flag problem into an error.
func ctlFlagError(err error, stdout io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, ctlUsage)
		return nil
	}
	return fmt.Errorf("ctl: %v (see erasured ctl --help)", err)
}

// parseInterleaved parses flags that may come before, between and after the positional
// arguments (`confirm NAME --etag E`), which flag.Parse alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ctlDial opens the connection: TLS when a CA is given, otherwise plaintext, and then only to a
// loopback address, so that neither a token nor an erasure's details cross a network in the
// clear. The token comes from a private file or the environment, never from the command line,
// where other users of the machine could read it.
func ctlDial(o ctlOptions, getenv func(string) string) (*grpc.ClientConn, error) {
	if (o.cert == "") != (o.key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	var creds grpccreds.TransportCredentials
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", o.cacert)
		}
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if o.cert != "" {
			pair, err := tls.LoadX509KeyPair(o.cert, o.key)
			if err != nil {
				return nil, fmt.Errorf("--cert/--key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		creds = grpccreds.NewTLS(cfg)
	} else {
		if o.cert != "" {
			return nil, errors.New("--cert needs --cacert: a client certificate is sent over TLS only")
		}
		if !loopbackAddr(o.addr) {
			return nil, fmt.Errorf("refusing a plaintext connection to %s, which is not a loopback address: give --cacert to speak TLS", o.addr)
		}
		creds = insecure.NewCredentials()
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	token, err := ctlToken(o.tokenFile, getenv)
	if err != nil {
		return nil, err
	}
	if token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(bearerToken(token)))
	}
	return grpc.NewClient(o.addr, dopts...)
}

// ctlToken reads the bearer token from --token-file (refused when group or others may read
// it, as the server refuses its own secrets) or from ERASURED_TOKEN.
func ctlToken(file string, getenv func(string) string) (string, error) {
	if file == "" {
		return strings.TrimSpace(getenv("ERASURED_TOKEN")), nil
	}
	raw, err := readSecretFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	return tok, nil
}

// loopbackAddr reports whether host:port names this machine: localhost or a loopback IP.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearerToken sends the token with every call. The connection is TLS, or plaintext to a
// loopback address only (ctlDial refuses anything else), so it does not ask for transport
// security itself: a server on loopback without TLS takes tokens too.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// call returns a context for one unary call, bounded by --timeout.
func (c *ctl) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.opts.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.timeout)
}

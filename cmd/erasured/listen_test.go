package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostsMapsLocalhostEverywhere stands in a resolver whose /etc/hosts says "0.0.0.0 localhost":
// a listen on localhost binds every interface.
func hostsMapsLocalhostEverywhere(t *testing.T) {
	t.Helper()
	was := listenTCP
	t.Cleanup(func() { listenTCP = was })
	listenTCP = func(network, addr string) (net.Listener, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == "localhost" {
			addr = net.JoinHostPort("0.0.0.0", port)
		}
		return was(network, addr)
	}
}

// TestListenCheckedRefusesBeyondLoopback: where loopback is required, a listener whose address
// resolved beyond loopback is refused and closed, naming the listener; where it is not, or the
// address is loopback, it is kept.
func TestListenCheckedRefusesBeyondLoopback(t *testing.T) {
	hostsMapsLocalhostEverywhere(t)
	var bound net.Listener
	inner := listenTCP
	listenTCP = func(network, addr string) (net.Listener, error) {
		l, err := inner(network, addr)
		bound = l
		return l, err
	}
	for _, tc := range []struct {
		addr     string
		mustLoop bool
		ok       bool
	}{
		{"localhost:0", true, false},
		{"0.0.0.0:0", true, false},
		{"127.0.0.1:0", true, true},
		{"localhost:0", false, true},
	} {
		lis, err := listenChecked("metrics listener", tc.addr, tc.mustLoop)
		switch {
		case tc.ok && err != nil:
			t.Errorf("listenChecked(%q, %v) = %v, want a listener", tc.addr, tc.mustLoop, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "refusing the metrics listener")):
			t.Errorf("listenChecked(%q, %v) = %v, want a refusal naming the metrics listener", tc.addr, tc.mustLoop, err)
		case !tc.ok:
			if _, aerr := bound.Accept(); !errors.Is(aerr, net.ErrClosed) {
				t.Errorf("listenChecked(%q): the refused listener is not closed (%v)", tc.addr, aerr)
			}
		}
		if lis != nil {
			lis.Close()
		}
	}
}

// startConfig writes a configuration without accounts (db and master key in dir), with the
// listeners given, for realMain.
func startConfig(t *testing.T, dir, listen, metrics string) []string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	mk := writeFile(t, dir, "master.key", base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
	cfg := writeFile(t, dir, "erasured.yaml", fmt.Sprintf("listen: %q\nmetrics_listen: %q\ndb: %s\nprivacy: {master_key_file: %s}\n",
		listen, metrics, filepath.Join(dir, "erasure.db"), mk)+accountsYAML(t, dir), 0o600)
	return []string{"--config", cfg, "--no-credential-check"}
}

// accountsYAML is the accounts section of a test configuration: one account, its OAuth 2.0
// client secret in a file under dir. Nothing calls LivePerson unless an erasure is submitted.
func accountsYAML(t *testing.T, dir string) string {
	t.Helper()
	secret := writeFile(t, dir, "client.secret", "test-secret\n", 0o600)
	return fmt.Sprintf("accounts: [{id: \"1234\", region: us, auth: {oauth2: {client_id: test-client, client_secret_file: %s}}}]\n", secret)
}

// runUntil runs realMain for at most d; a start that serves returns nil when d ends.
func runUntil(t *testing.T, args []string, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return realMain(ctx, args)
}

// TestStartRefusesListenersBoundBeyondLoopback: without callers, a listen address whose name
// resolves beyond loopback stops erasured at start, for each listener.
func TestStartRefusesListenersBoundBeyondLoopback(t *testing.T) {
	hostsMapsLocalhostEverywhere(t)
	for _, tc := range []struct{ listen, metrics, want string }{
		{"localhost:0", "", "refusing the gRPC listener"},
		{"127.0.0.1:0", "localhost:0", "refusing the metrics listener"},
	} {
		err := runUntil(t, startConfig(t, t.TempDir(), tc.listen, tc.metrics), 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("listen %q, metrics %q: realMain = %v, want an error with %q", tc.listen, tc.metrics, err, tc.want)
		}
	}
}

// TestStartStopsWhenMetricsCannotListen: a metrics address already in use stops erasured at
// start, naming the metrics listener, instead of serving without metrics.
func TestStartStopsWhenMetricsCannotListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = runUntil(t, startConfig(t, t.TempDir(), "127.0.0.1:0", taken.Addr().String()), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "metrics listener") {
		t.Errorf("realMain = %v, want an error naming the metrics listener", err)
	}
}

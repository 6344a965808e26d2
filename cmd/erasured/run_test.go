package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// startEverything is the command line and environment of an erasured that starts every part
// there is: the sandbox's simulated LivePerson, tracing to a collector of the test's, the
// metrics listener on metrics, the credential check. It returns the arguments and a function
// that stops the collector.
func startEverything(t *testing.T, listen, metrics string) (args []string, stopCollector func()) {
	t.Helper()
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, &fakeCollector{})
	clis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); gs.Serve(clis) }()
	t.Setenv("ERASURED_TRACING_ENABLED", "true")
	t.Setenv("ERASURED_TRACING_OTLP_ENDPOINT", clis.Addr().String())
	t.Setenv("ERASURED_TRACING_INSECURE", "true")
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("ERASURED_MASTER_KEY", base64.StdEncoding.EncodeToString(key)) // the sandbox writes no key file then
	db := filepath.Join(t.TempDir(), "erasure.db")
	return []string{"--db", db, "--listen", listen, "--metrics-listen", metrics}, func() { gs.Stop(); <-served }
}

// verifyNoneLeft fails the test if a goroutine started since ignore was taken is still running.
// Idle keep-alive connections of the default HTTP transport (the credential check's calls to the
// simulator) are pooled for the process, not left by realMain: they are closed first.
func verifyNoneLeft(t *testing.T, ignore goleak.Option) {
	t.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after realMain returned: %v", err)
	}
}

// TestRealMainEarlyErrorLeavesNoGoroutine: realMain returns an error that stops the start with
// every goroutine of what it had built ended. The metrics listener is bound last of all (after
// tracing, the simulator, the store, the service, the server and its health monitor, the
// LivePerson client and the pipeline); the LivePerson client is built after the server, and
// is made to refuse its setting by changing the configuration after its check.
func TestRealMainEarlyErrorLeavesNoGoroutine(t *testing.T) {
	t.Run("metrics listener taken", func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		args, stopCollector := startEverything(t, "127.0.0.1:0", taken.Addr().String())
		var runErr error
		captureOutput(t, func() { runErr = runUntil(t, args, 10*time.Second) })
		if runErr == nil || !strings.Contains(runErr.Error(), "metrics listener") {
			t.Fatalf("realMain = %v, want an error naming the metrics listener", runErr)
		}
		stopCollector()
		taken.Close()
		verifyNoneLeft(t, ignore)
	})
	t.Run("LivePerson client refused", func(t *testing.T) {
		// The configuration's check refuses every setting the client would, so the setting is
		// changed after load checked it: wire then fails at the client, after the server.
		ignore := goleak.IgnoreCurrent()
		var wireErr error
		captureOutput(t, func() {
			l, err := load(startConfig(t, t.TempDir(), "127.0.0.1:0", ""))
			if err != nil {
				t.Errorf("load = %v", err)
				return
			}
			l.cfg.LivePerson.DomainAPIURL = "https://api.liveperson.net/x"
			_, wireErr = wire(context.Background(), l)
		})
		if wireErr == nil || !strings.Contains(wireErr.Error(), "domain API URL") {
			t.Fatalf("wire = %v, want the LivePerson client's error", wireErr)
		}
		verifyNoneLeft(t, ignore)
	})
}

// TestRealMainShutdownLeavesNoGoroutine: a server that served (gRPC and metrics answered, the
// credential check ran) and was then asked to stop returns nil with every goroutine it started
// ended: the pipeline, the credential check, the compaction, the SIGHUP reloads, the metrics
// listener, the gRPC server and its health monitor, the simulator, the tracing exporter.
func TestRealMainShutdownLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	addr, maddr := freeAddr(t), freeAddr(t)
	args, stopCollector := startEverything(t, addr, maddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	captureOutput(t, func() {
		go func() { done <- realMain(ctx, args) }()
		conn, client := dial(t, addr)
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if _, err := client.List(cctx, &erasurev1.ListRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Errorf("List: %v", err)
		}
		if resp, err := http.Get("http://" + maddr + "/healthz"); err != nil {
			t.Errorf("metrics: %v", err)
		} else {
			resp.Body.Close()
		}
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("realMain = %v, want nil after a shutdown", err)
		}
	})
	stopCollector()
	verifyNoneLeft(t, ignore)
}

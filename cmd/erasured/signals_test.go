package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestShutdownLogsTheSignal: the shutdown's first line names the signal that ended erasured,
// as operators write it; a shutdown for another reason says only that it shuts down.
func TestShutdownLogsTheSignal(t *testing.T) {
	for _, tt := range []struct {
		cause error
		want  string
	}{
		{signalCause{syscall.SIGTERM}, `"msg":"received SIGTERM, shutting down","signal":"SIGTERM"`},
		{signalCause{syscall.SIGINT}, `"msg":"received SIGINT, shutting down","signal":"SIGINT"`},
		{context.Canceled, `"msg":"shutting down","watchers"`},
	} {
		t.Run(tt.cause.Error(), func(t *testing.T) {
			args := startConfig(t, t.TempDir(), "127.0.0.1:0", "")
			// Ended before it starts: erasured starts, serves, and shuts down at once.
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(tt.cause)
			var err error
			_, logs := captureOutput(t, func() { err = realMain(ctx, args) })
			if err != nil {
				t.Fatalf("realMain: %v\n%s", err, logs)
			}
			if !strings.Contains(logs, tt.want) || !strings.Contains(logs, `"msg":"stopped"`) {
				t.Errorf("logs lack %s and the stop:\n%s", tt.want, logs)
			}
		})
	}
}

// TestSignalsThroughTheBinary: a SIGHUP to the sandbox (nothing to reload) leaves it serving;
// a SIGTERM with a health Watch open is logged by name and ends erasured cleanly, the health
// Watch ending with NOT_SERVING then UNAVAILABLE, without waiting for the shutdown deadline.
func TestSignalsThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := start(t, bin, dir)
	conn, _ := dial(t, p.addr)
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "erasure.v1.ErasureService"})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Watch first = %v, %v", first, err)
	}

	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, dir, "SIGHUP: the sandbox has no configuration file to reload", 0)
	if res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("after SIGHUP: %v, %v; want SERVING", res, err)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	var last healthpb.HealthCheckResponse_ServingStatus
	for {
		res, err := stream.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("health Watch ended with %v, want UNAVAILABLE", err)
			}
			break
		}
		last = res.GetStatus()
	}
	if last != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health Watch's last status %v, want NOT_SERVING", last)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("erasured still running after SIGTERM")
	}
	l, _ := waitLog(t, dir, "received SIGTERM, shutting down", 0)
	if l["signal"] != "SIGTERM" {
		t.Errorf("shutdown line %v, want signal SIGTERM", l)
	}
	waitLog(t, dir, "stopped", 0)
	raw, _ := os.ReadFile(filepath.Join(dir, "erasured.log"))
	if strings.Contains(string(raw), "shutdown deadline reached") {
		t.Errorf("the shutdown waited for its deadline:\n%s", raw)
	}
}

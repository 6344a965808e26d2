// Command erasured runs the erasure service. Without --config it starts the sandbox: gRPC on
// 127.0.0.1:50051, the store under var/, no auth (loopback only) and a generated master key.
// `erasured --help` lists its commands and flags.
package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
)

func main() {
	// SIGTERM and SIGINT shut down gracefully; the shutdown's log line names the signal.
	ctx, stop := notifyShutdown(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "erasured:", err)
		os.Exit(1)
	}
}

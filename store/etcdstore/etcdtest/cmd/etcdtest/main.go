// Command etcdtest runs an etcd cluster of embedded members for tests that need it in a process of
// their own: it prints {"endpoints": [...]} on one line of standard output once every member is
// ready, and runs until it is killed or its standard input closes.
//
//	etcdtest -members 3 -dir /tmp/x
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

func main() {
	members := flag.Int("members", 1, "number of members")
	dir := flag.String("dir", "", "data directory (default: a new temporary directory)")
	noFsync := flag.Bool("no-fsync", false, "turn etcd's fsync off")
	watchStdin := flag.Bool("stdin", false, "exit when standard input closes")
	flag.Parse()

	c, err := etcdtest.New(etcdtest.Config{Members: *members, Dir: *dir, NoFsync: *noFsync})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(1)
	}
	defer c.Close()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"endpoints": c.Endpoints()}); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	stdinClosed := make(chan struct{})
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(stdinClosed)
		}()
	}
	select {
	case <-stop:
	case <-stdinClosed:
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// The multi-replica tests run their three-member etcd cluster in a process of its own: the test
// binary again, running TestEtcdClusterProcess. Embedded members of one cluster keep pooled
// connections to each other after they stop, which the package's leak check would report at
// the end of the run; and the replicas reach etcd as they would another host's. The process
// takes commands on its standard input, one a line, and answers each on its standard output:
//
//	stop N      stop member N (its data stays)
//	restart N   start member N again on its data and ports
//
// It exits when its standard input closes.

// etcdProcEnv, set to a directory, makes TestEtcdClusterProcess run the cluster there.
const etcdProcEnv = "ERASURED_TEST_ETCD_CLUSTER_DIR"

// TestEtcdClusterProcess is the etcd cluster process (see above); it is skipped in a normal run.
func TestEtcdClusterProcess(t *testing.T) {
	dir := os.Getenv(etcdProcEnv)
	if dir == "" {
		t.Skip("the etcd cluster process of the multi-replica tests")
	}
	c, err := etcdtest.New(etcdtest.Config{Members: 3, Dir: dir, NoFsync: true})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(c.Endpoints())
	fmt.Printf("endpoints %s\n", out)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(arg)
		switch {
		case err != nil || i < 0 || i >= c.Members():
			fmt.Printf("error: no member %q\n", arg)
		case verb == "stop":
			c.Stop(i)
			fmt.Println("ok")
		case verb == "restart":
			if err := c.Restart(i); err != nil {
				fmt.Printf("error: %v\n", err)
			} else {
				fmt.Println("ok")
			}
		default:
			fmt.Printf("error: unknown command %q\n", verb)
		}
	}
	// The test that started the process is done: no clean stop, no leak check, no verdict.
	os.Exit(0)
}

// etcdProc is the etcd cluster process, as the test that started it sees it.
type etcdProc struct {
	t         *testing.T
	endpoints []string
	mu        sync.Mutex
	in        io.WriteCloser
	out       *bufio.Scanner
}

// startEtcdProc starts the etcd cluster process (three members, data under a temporary
// directory) and waits until every member is ready; it is killed when the test ends.
func startEtcdProc(t *testing.T) *etcdProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestEtcdClusterProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), etcdProcEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	e := &etcdProc{t: t, in: in, out: bufio.NewScanner(out)}
	line := e.line()
	js, ok := strings.CutPrefix(line, "endpoints ")
	if !ok || json.Unmarshal([]byte(js), &e.endpoints) != nil {
		t.Fatalf("etcd cluster process: %s", line)
	}
	return e
}

// line is the process's next line of output.
func (e *etcdProc) line() string {
	if !e.out.Scan() {
		e.t.Fatalf("etcd cluster process: no answer (%v)", e.out.Err())
	}
	return e.out.Text()
}

// Endpoints are the client URLs of every member.
func (e *etcdProc) Endpoints() []string { return e.endpoints }

// Stop stops member i.
func (e *etcdProc) Stop(i int) { e.command("stop", i) }

// Restart starts member i again and waits until it is ready.
func (e *etcdProc) Restart(i int) { e.command("restart", i) }

func (e *etcdProc) command(verb string, i int) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := fmt.Fprintf(e.in, "%s %d\n", verb, i); err != nil {
		e.t.Fatalf("etcd cluster process: %v", err)
	}
	if ans := e.line(); ans != "ok" {
		e.t.Fatalf("etcd cluster process: %s %d: %s", verb, i, ans)
	}
}

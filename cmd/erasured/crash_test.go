package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// process is an erasured subprocess.
type process struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// envCycles reads a kill count from the environment, or gives def.
func envCycles(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// buildBinary compiles erasured, with the build tags in ERASURED_CRASH_TAGS (used to build the
// deliberately broken variants the harness must catch).
func buildBinary(t *testing.T) string {
	t.Helper()
	return buildBinaryTags(t, os.Getenv("ERASURED_CRASH_TAGS"))
}

// start runs erasured in dir (the sandbox: its master key lives in dir/var) and waits until it
// serves, reading the bound address from its log.
func start(t *testing.T, bin, dir string) *process {
	t.Helper()
	return startArgs(t, bin, dir, "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "erasure.db"))
}

// startArgs runs erasured with args in dir and waits until it serves.
func startArgs(t *testing.T, bin, dir string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	logf, err := os.OpenFile(filepath.Join(dir, "erasured.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	t.Cleanup(func() { cmd.Process.Kill() }) // a test that stops early leaves no erasured behind
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			fmt.Fprintln(logf, sc.Text())
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "erasured serving" {
				ready <- line.Listen
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case p.addr = <-ready:
	case err := <-p.done:
		t.Fatalf("erasured exited before serving: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("erasured did not start within 30s")
	}
	return p
}

func dial(t *testing.T, addr string) (*grpc.ClientConn, erasurev1.ErasureServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return conn, erasurev1.NewErasureServiceClient(conn)
}

func crashRequest(n int) *erasurev1.SubmitRequest {
	return &erasurev1.SubmitRequest{
		RequestId: fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
		AccountId: "1234",
		Subject:   &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: fmt.Sprint("crash-", n)}},
	}
}

// TestCrashKeepsAcknowledgedSubmits kills erasured with SIGKILL at random moments under
// concurrent Submits, restarts it, and checks that every acknowledged Submit survived, that the
// change history has every creation exactly once in order, and that the bbolt file is sound.
// ERASURED_CRASH_CYCLES sets the number of kills (default 5; `make crash` runs more).
func TestCrashKeepsAcknowledgedSubmits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cycles := envCycles("ERASURED_CRASH_CYCLES", 5)
	bin := buildBinary(t)
	dir := t.TempDir()
	acked := map[int]string{} // request number → erasure name
	next := 0
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))

	for c := range cycles {
		p := start(t, bin, dir)
		conn, client := dial(t, p.addr)
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 16 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					next++
					n := next
					mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					res, err := client.Submit(ctx, crashRequest(n))
					cancel()
					if err != nil {
						continue // unacknowledged: may or may not have been stored
					}
					mu.Lock()
					acked[n] = res.GetErasure().GetName()
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		close(stop)
		wg.Wait()
		conn.Close()
		t.Logf("cycle %d: %d acknowledged so far", c+1, len(acked))
	}

	p := start(t, bin, dir)
	conn, client := dial(t, p.addr)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for n, name := range acked {
		res, err := client.Submit(ctx, crashRequest(n))
		if err != nil || res.GetErasure().GetName() != name {
			t.Errorf("acknowledged request %d (%s) after restart: %v, %v", n, name, res.GetErasure().GetName(), err)
		}
	}
	// The history: revisions contiguous from 1, and every stored erasure's creation in it exactly
	// once (the pipeline adds further changes of its own meanwhile).
	stored := 0
	all, err := listAll(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	stored = len(all)
	if stored < len(acked) {
		t.Errorf("%d erasures stored, %d acknowledged", stored, len(acked))
	}
	w, err := client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	for rev := int64(1); len(created) < stored; {
		res, err := w.Recv()
		if err != nil {
			t.Fatalf("Watch after %d events (%d creations): %v", rev-1, len(created), err)
		}
		for _, ev := range res.GetEvents() {
			if ev.GetRevision() != rev {
				t.Fatalf("event revision %d, want %d", ev.GetRevision(), rev)
			}
			rev++
			if ev.GetPreviousState() != erasurev1.State_STATE_UNSPECIFIED {
				continue
			}
			if name := ev.GetErasure().GetName(); created[name] {
				t.Errorf("erasure %s created twice in the history", name)
			} else {
				created[name] = true
			}
		}
	}
	checkHistoryOver(t, ctx, client)
	// SIGTERM with the Watch stream still open: a clean exit within the shutdown deadline.
	begin := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if d := time.Since(begin); d > 12*time.Second {
		t.Errorf("SIGTERM with an open Watch stream took %v", d)
	}
	checkBolt(t, filepath.Join(dir, "erasure.db"))
	t.Logf("%d kills, %d acknowledged Submits, %d stored, all present", cycles, len(acked), stored)
}

// checkBolt runs bbolt's consistency check (what `bbolt check` does) on a closed database file.
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open for check: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

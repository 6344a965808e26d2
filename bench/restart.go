package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// The restart scenario: how long the real erasured takes from exec to health SERVING on a store
// of many erasures, and what memory it then holds per open erasure.
//
// The store (restartbuild.go) is built once and cached by its size and layout; every run starts
// erasured (sandbox mode, with its pipeline, on a copy of the store) and polls gRPC health until
// it answers SERVING, then waits restartSettle and reads the process's memory: VmRSS, RssAnon
// (heap, stacks, runtime: without the pages of the bbolt file it has mapped, RssFile) and the Go
// heap in use (go_memstats_heap_inuse_bytes on the metrics endpoint). The same binary on an empty
// store gives the baseline; what the big store adds, divided by its open erasures, is the figure
// of the goal. It also times the first Submit answered, which waits for anything start-up left
// for later.
var restartScenario = Scenario{
	Name:  "restart",
	About: "start-up time and memory with a large store",
	Flags: func(fs *flag.FlagSet) {
		fs.IntVar(&restartFlags.erasures, "restart-erasures", 1_000_000, "restart: erasures in the store (a tenth open)")
		fs.StringVar(&restartFlags.cache, "restart-cache", "", "restart: directory the built stores are kept in (default: the user cache directory, erasured-bench)")
		fs.StringVar(&restartFlags.bin, "restart-bin", "", "restart: the erasured binary to start (default: go build ./cmd/erasured)")
	},
	Run: runRestart,
}

var restartFlags struct {
	erasures int
	cache    string
	bin      string
}

// Goals of the scenario.
const (
	restartGoalServing  = 2 * time.Second
	restartGoalPerOpen  = 512 // bytes of memory per open erasure
	restartSettle       = 2 * time.Second
	restartServeTimeout = 5 * time.Minute
	// restartStopTimeout bounds the wait for erasured to stop: the work it started (its key
	// keeper reads every erasure) ends before it does.
	restartStopTimeout = 5 * time.Minute
)

// restartSample is one start of erasured: its times from exec, and its memory once its first
// Submit is answered and again restartSettle later (by then its pipeline is at work on the open
// erasures, which all fall due at once).
type restartSample struct {
	serving, firstSubmit time.Duration
	stop                 time.Duration // from SIGTERM to exit
	started, settled     memSample
}

// memSample is a process's memory, in bytes.
type memSample struct {
	rss, anon, file uint64 // VmRSS, RssAnon, RssFile
	heap            uint64 // Go heap in use
}

// readMemory reads the memory of process pid, whose metrics are served at metricsAddr.
func readMemory(pid int, metricsAddr string) (memSample, error) {
	var m memSample
	for _, f := range []struct {
		name string
		to   *uint64
	}{{"VmRSS", &m.rss}, {"RssAnon", &m.anon}, {"RssFile", &m.file}} {
		kb, err := procStatus(pid, f.name)
		if err != nil {
			return m, err
		}
		*f.to = kb * 1024
	}
	var err error
	m.heap, err = scrapeGauge("http://"+metricsAddr+"/metrics", "go_memstats_heap_inuse_bytes")
	return m, err
}

func runRestart(ctx context.Context, cfg Config, out io.Writer) error {
	root := restartFlags.cache
	if root == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		root = filepath.Join(base, "erasured-bench")
	}
	st, err := ensureRestartStore(ctx, root, restartFlags.erasures, cfg.Progress)
	if err != nil {
		return err
	}
	bin := restartFlags.bin
	if bin == "" {
		if bin, err = BuildErasured(ctx, cfg.Dir); err != nil {
			return err
		}
	}
	var full, empty []restartSample
	for run := range cfg.Runs {
		for _, withData := range []bool{false, true} {
			dir := filepath.Join(cfg.Dir, fmt.Sprintf("restart-%d-%t", run, withData))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			if withData {
				if err := copyStore(st.dir, dir); err != nil {
					return err
				}
			}
			s, err := startOnce(ctx, bin, dir)
			if err != nil {
				return fmt.Errorf("restart run %d (store of %d: %t): %w", run+1, st.n, withData, err)
			}
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			if withData {
				full = append(full, s)
			} else {
				empty = append(empty, s)
			}
			if cfg.Progress != nil {
				m := s.started
				fmt.Fprintf(cfg.Progress, "restart: run %d, %s: SERVING after %s, first Submit after %s, RSS %s (anon %s, file %s), heap in use %s; stopped %s after SIGTERM\n",
					run+1, cond(withData, fmt.Sprintf("%d erasures", st.n), "empty store"), s.serving.Round(time.Millisecond),
					s.firstSubmit.Round(time.Millisecond), mib(m.rss), mib(m.anon), mib(m.file), mib(m.heap), s.stop.Round(time.Millisecond))
			}
		}
	}
	reportRestart(out, st, bin, full, empty)
	return nil
}

func reportRestart(w io.Writer, st restartStore, bin string, full, empty []restartSample) {
	med := func(xs []restartSample, f func(restartSample) float64) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		return Median(v)
	}
	fmt.Fprintf(w, "\n## Restart and memory at scale\n\n")
	built := "from the cache"
	if st.buildTime > 0 {
		built = "built in " + st.buildTime.Round(time.Second).String()
	}
	fmt.Fprintf(w, "Store: %d erasures, %d open, %d final (half past the retention, shredded); %s (%s). Binary: %s. Medians of %d runs.\n\n",
		st.n, st.open, st.n-st.open, built, st.dir, bin, len(full))
	fmt.Fprintf(w, "| | empty store | %d erasures | added per open erasure |\n|---|---|---|---|\n", st.n)
	perOpen := map[string]float64{}
	row := func(name string, f func(restartSample) float64, memory bool) {
		e, d := med(empty, f), med(full, f)
		if !memory {
			fmt.Fprintf(w, "| %s | %.2f s | %.2f s | |\n", name, e, d)
			return
		}
		perOpen[name] = (d - e) / float64(st.open)
		fmt.Fprintf(w, "| %s | %s | %s | %.0f B |\n", name, mib(uint64(e)), mib(uint64(d)), perOpen[name])
	}
	row("exec to health SERVING", func(s restartSample) float64 { return s.serving.Seconds() }, false)
	row("exec to first Submit answered", func(s restartSample) float64 { return s.firstSubmit.Seconds() }, false)
	row("SIGTERM to exit (after the memory readings)", func(s restartSample) float64 { return s.stop.Seconds() }, false)
	for _, at := range []struct {
		name string
		of   func(restartSample) memSample
	}{{"at first Submit", func(s restartSample) memSample { return s.started }},
		{fmt.Sprintf("%s later", restartSettle), func(s restartSample) memSample { return s.settled }}} {
		mem := func(f func(memSample) uint64) func(restartSample) float64 {
			return func(s restartSample) float64 { return float64(f(at.of(s))) }
		}
		row("VmRSS "+at.name, mem(func(m memSample) uint64 { return m.rss }), true)
		row("RssAnon (heap, stacks, runtime) "+at.name, mem(func(m memSample) uint64 { return m.anon }), true)
		row("RssFile (bbolt pages mapped) "+at.name, mem(func(m memSample) uint64 { return m.file }), true)
		row("Go heap in use "+at.name, mem(func(m memSample) uint64 { return m.heap }), true)
	}
	serving := med(full, func(s restartSample) float64 { return s.serving.Seconds() })
	fmt.Fprintf(w, "\n- %s SERVING within %s of exec: %.2f s\n", cond(serving <= restartGoalServing.Seconds(), "PASS", "BELOW"), restartGoalServing, serving)
	for _, name := range []string{"RssAnon (heap, stacks, runtime) at first Submit", "Go heap in use at first Submit"} {
		fmt.Fprintf(w, "- %s at most %d B per open erasure, %s: %.0f B\n", cond(perOpen[name] <= restartGoalPerOpen, "PASS", "BELOW"),
			restartGoalPerOpen, name, perOpen[name])
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// startOnce starts bin in dir (sandbox mode, on dir/erasure.db), times it to SERVING and to its
// first Submit, reads its memory after restartSettle, and stops it.
func startOnce(ctx context.Context, bin, dir string) (restartSample, error) {
	var s restartSample
	grpcAddr, err := freePort()
	if err != nil {
		return s, err
	}
	metricsAddr, err := freePort()
	if err != nil {
		return s, err
	}
	cmd := exec.Command(bin, "--listen", grpcAddr, "--metrics-listen", metricsAddr, "--db", filepath.Join(dir, "erasure.db"), "--log-level", "warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	// Reconnect at once while erasured is not listening yet: gRPC's default backoff (a second,
	// growing) would be measured instead of erasured.
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1, MaxDelay: 5 * time.Millisecond},
			MinConnectTimeout: time.Second}))
	if err != nil {
		return s, err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		t := time.Now()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			s.stop = time.Since(t)
			return err
		case <-time.After(restartStopTimeout):
			_ = cmd.Process.Kill()
			return errors.Join(fmt.Errorf("erasured did not stop within %s of SIGTERM", restartStopTimeout), <-exited)
		}
	}
	fail := func(err error) (restartSample, error) { return s, errors.Join(err, stop()) }
	deadline := start.Add(restartServeTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		res, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && res.Status == healthpb.HealthCheckResponse_SERVING {
			s.serving = time.Since(start)
			break
		}
		select {
		case err := <-exited:
			return s, fmt.Errorf("erasured exited before SERVING: %v", err)
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not SERVING after %s", restartServeTimeout))
		}
	}
	if err := firstSubmit(ctx, conn); err != nil {
		return fail(fmt.Errorf("first Submit: %w", err))
	}
	s.firstSubmit = time.Since(start)
	if s.started, err = readMemory(cmd.Process.Pid, metricsAddr); err != nil {
		return fail(err)
	}
	time.Sleep(restartSettle)
	if s.settled, err = readMemory(cmd.Process.Pid, metricsAddr); err != nil {
		return fail(err)
	}
	err = stop() // sets s.stop
	return s, err
}

// freePort returns a loopback address no listener holds now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// scrapeGauge reads one unlabelled metric from a Prometheus text endpoint.
func scrapeGauge(url, name string) (uint64, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return uint64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// firstSubmit makes one Submit of a new subject, retried while the server answers UNAVAILABLE
// (it may take work only once what it loads at start is ready): it returns when one is answered.
func firstSubmit(ctx context.Context, conn *grpc.ClientConn) error {
	c := erasurev1.NewErasureServiceClient(conn)
	req := submitRequest(0, 0)
	for {
		cctx, cancel := context.WithTimeout(ctx, restartServeTimeout)
		_, err := c.Submit(cctx, req)
		cancel()
		if status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

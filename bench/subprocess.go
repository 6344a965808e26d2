package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Subprocess is a server in a child process, so that its memory can be read from /proc without
// the benchmark's clients in it. It is either a child of this benchmark serving what
// StartInProcess serves (StartChild), or the real cmd/erasured in sandbox mode (StartErasured).
type Subprocess struct {
	cmd     *exec.Cmd
	addr    string
	drained chan struct{} // closed when its stderr is at EOF (the process exited)
}

var _ Target = (*Subprocess)(nil)

// ChildFlag is the flag with which erasured-bench runs ServeChild instead of the benchmarks.
const ChildFlag = "serve-child"

// StartChild runs this executable with -serve-child dir: ServeChild, in its own process.
func StartChild(ctx context.Context, dir string) (*Subprocess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startProcess(ctx, exec.Command(self, "-"+ChildFlag, dir))
}

// ServeChild is the body of a StartChild process: the server of StartInProcess over a fresh store
// under dir, logging to stderr as cmd/erasured does, until ctx ends. It announces its address in
// cmd/erasured's own "erasured serving" log line.
func ServeChild(ctx context.Context, dir string) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	p, err := startServer(dir, log)
	if err != nil {
		return err
	}
	log.Info("erasured serving", "listen", p.Addr(), "db", p.Where)
	<-ctx.Done()
	return p.Close()
}

// BuildErasured compiles ./cmd/erasured of the module the go command finds from the working
// directory (make bench runs at the repository root) into dir and returns the binary's path.
func BuildErasured(ctx context.Context, dir string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "erasured")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/erasured")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/erasured in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// StartErasured starts the erasured binary bin in dir. Without --config, erasured runs the
// sandbox: it creates its master key under dir/var, relative to its working directory, and runs
// its pipeline against a simulated LivePerson.
func StartErasured(ctx context.Context, bin, dir string) (*Subprocess, error) {
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "erasure.db"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("ERASURED_LIMITS_MAX_STREAMS=%d", benchLimits.MaxStreams),
		fmt.Sprintf("ERASURED_LIMITS_MAX_STREAMS_PER_PRINCIPAL=%d", benchLimits.MaxStreamsPerPrincipal),
		fmt.Sprintf("ERASURED_LIMITS_MAX_CALLS=%d", benchLimits.MaxCalls),
		fmt.Sprintf("ERASURED_LIMITS_MAX_CALLS_PER_PRINCIPAL=%d", benchLimits.MaxCallsPerPrincipal))
	return startProcess(ctx, cmd)
}

// startProcess starts cmd and waits for its "erasured serving" log line, which names the address.
func startProcess(ctx context.Context, cmd *exec.Cmd) (*Subprocess, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Subprocess{cmd: cmd, drained: make(chan struct{})}
	found := make(chan string, 1)
	var head bytes.Buffer // the first lines, to explain a failed start; read only after drained
	go func() {           // owned by s: it ends at EOF, when the process has exited
		defer close(s.drained)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		reported := false
		for sc.Scan() {
			if reported {
				continue // the per-call log lines: drained, not read
			}
			if head.Len() < 4096 {
				head.Write(sc.Bytes())
				head.WriteByte('\n')
			}
			var line struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "erasured serving" {
				reported = true
				found <- line.Listen
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // a line too long for the scanner: keep draining
	}()
	select {
	case s.addr = <-found:
		return s, nil
	case <-s.drained:
		err = fmt.Errorf("%s exited before serving:\n%s", cmd.Path, head.String())
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("%s did not report serving within 30s", cmd.Path)
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, s.Close())
}

// Addr implements Target.
func (s *Subprocess) Addr() string { return s.addr }

// Memory implements Target: the anonymous resident memory of the process (RssAnon) — heap,
// stacks, runtime. It leaves out RssFile, the pages of the bbolt file mapped into memory, which
// grow with the data rather than with streams.
func (s *Subprocess) Memory() (uint64, error) {
	kb, err := procStatus(s.cmd.Process.Pid, "RssAnon")
	return kb * 1024, err
}

// MemoryKind implements Target.
func (s *Subprocess) MemoryKind() string { return "RssAnon of the server process" }

// procStatus reads one "Name: N kB" field of /proc/PID/status.
func procStatus(pid int, field string) (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		return strconv.ParseUint(num, 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Close stops the process with SIGTERM, its normal shutdown, and kills it if that takes longer
// than erasured's own shutdown deadline plus a margin.
func (s *Subprocess) Close() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.drained:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.drained
	}
	err := s.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) && !exit.Exited() {
		return fmt.Errorf("%s did not stop on SIGTERM: %w", s.cmd.Path, err)
	}
	return err
}

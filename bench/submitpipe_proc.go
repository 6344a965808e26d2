package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
)

// LPSim is an `erasured lpsim` process: the LivePerson simulator on a loopback port.
type LPSim struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when its stdout is at EOF
}

// StartLPSim runs `bin lpsim` with the simulator's account and args, and waits until it listens.
func StartLPSim(ctx context.Context, bin string, args ...string) (*LPSim, error) {
	cmd := exec.Command(bin, append([]string{"lpsim", "--listen", "127.0.0.1:0", "--accounts", lpsim.DemoAccount + ":us",
		"--consumers", "100"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &LPSim{cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() { // ends at EOF, when the process has exited
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "lpsim listening on http://"); ok {
				found <- a
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case s.addr = <-found:
		return s, nil
	case <-s.done:
		err = fmt.Errorf("%s lpsim exited before listening", bin)
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("%s lpsim did not listen within 30s", bin)
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, s.Close())
}

// Addr is the simulator's host:port.
func (s *LPSim) Addr() string { return s.addr }

// Close stops the simulator.
func (s *LPSim) Close() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = s.cmd.Wait()
	return nil
}

// StartErasuredReal starts the erasured binary bin in real mode in dir: a config file naming a
// bbolt database under dir, a master key file, and the simulator at simAddr as the one account's
// LivePerson (its Domain API on loopback, OAuth 2.0 client credentials from a secret file), as
// the README's "Running for real" sets it up. Timings are LivePerson's at the simulator's own
// speed of 1. The server's call and stream limits are lifted as for every benchmark target.
func StartErasuredReal(ctx context.Context, bin, dir, simAddr string) (*Subprocess, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	acct := lpsim.DefaultAccount(lpsim.DemoAccount, "us")
	write := func(name, body string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(body), 0o600)
	}
	secret, err := write("lp-client-secret", acct.ClientSecret+"\n")
	if err != nil {
		return nil, err
	}
	master, err := write("master.key", base64.StdEncoding.EncodeToString(key)+"\n")
	if err != nil {
		return nil, err
	}
	cfg, err := write("erasured.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
db: %s
liveperson:
  domain_api_url: http://%s
accounts:
  - id: "%s"
    region: us
    auth:
      oauth2: {client_id: %s, client_secret_file: %s}
privacy:
  master_key_file: %s
`, filepath.Join(dir, "erasure.db"), simAddr, acct.ID, acct.ClientID, secret, master))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), benchLimitsEnv()...)
	return startProcess(ctx, cmd)
}

// benchLimitsEnv are the environment variables that give erasured benchLimits.
func benchLimitsEnv() []string {
	return []string{fmt.Sprintf("ERASURED_LIMITS_MAX_STREAMS=%d", benchLimits.MaxStreams),
		fmt.Sprintf("ERASURED_LIMITS_MAX_STREAMS_PER_PRINCIPAL=%d", benchLimits.MaxStreamsPerPrincipal),
		fmt.Sprintf("ERASURED_LIMITS_MAX_CALLS=%d", benchLimits.MaxCalls),
		fmt.Sprintf("ERASURED_LIMITS_MAX_CALLS_PER_PRINCIPAL=%d", benchLimits.MaxCallsPerPrincipal)}
}

// PID is the process id of the server, for a profiler.
func (s *Subprocess) PID() int { return s.cmd.Process.Pid }

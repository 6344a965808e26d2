package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// The multi-replica tests run three erasured processes of the built binary (real mode, each from
// its own configuration file: its own listen and metrics addresses, the same master key, the
// same etcd cluster and prefix) over a three-member etcd cluster embedded in the test, with the
// pipeline against one standalone simulator (`erasured lpsim`, as the crash harness runs it:
// the fast clock, 30% of create answers lost). Each replica reaches the simulator through a
// counting reverse proxy of its own, so that the test knows which replica sent what, and when.

// replicaLease is the replicas' store.etcd.lease_ttl: the shortest allowed, so that take-overs
// are quick.
const replicaLease = 3 * time.Second

// lpProxy is one replica's LivePerson: a reverse proxy to the simulator that keeps every
// request's arrival. The Host header passes unchanged, so the simulator's Domain API answers
// the proxy's own address and every later call of the replica comes back through it.
type lpProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	log []proxied
	// hold, when set, keeps each create from going on to the simulator until it is closed (or
	// a second passes): a test can stop or kill the replica while the create is in flight.
	hold chan struct{}
	// creates is signalled (without blocking) as each create arrives.
	creates chan struct{}
}

// proxied is one request a replica sent to LivePerson.
type proxied struct {
	at     time.Time
	method string
	path   string
}

// create reports whether the request creates a deletion request.
func (p proxied) create() bool {
	return p.method == http.MethodPost && strings.HasSuffix(p.path, "/personal-data-deletion")
}

func newLPProxy(t *testing.T, simAddr string) *lpProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: simAddr}
	rp := httputil.NewSingleHostReverseProxy(target)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	rp.Transport = tr
	p := &lpProxy{creates: make(chan struct{}, 1)}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := proxied{at: time.Now(), method: r.Method, path: r.URL.Path}
		p.mu.Lock()
		p.log = append(p.log, req)
		hold := p.hold
		p.mu.Unlock()
		if req.create() {
			select {
			case p.creates <- struct{}{}:
			default:
			}
			if hold != nil {
				select {
				case <-hold:
				case <-time.After(time.Second):
				}
			}
		}
		// A request on its way goes on to LivePerson even if the replica that sent it dies
		// meanwhile, as it would over the network: neither the request's context nor the
		// writer's close notification (hidden by the wrapper) cancels it.
		rp.ServeHTTP(struct{ http.ResponseWriter }{w}, r.WithContext(context.WithoutCancel(r.Context())))
	}))
	t.Cleanup(func() { p.srv.Close(); tr.CloseIdleConnections() })
	return p
}

func (p *lpProxy) addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// since returns the requests that arrived after t.
func (p *lpProxy) since(t time.Time) []proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []proxied
	for _, r := range p.log {
		if r.at.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// holdCreates starts holding creates; the function returned lets them go.
func (p *lpProxy) holdCreates() (release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.creates: // only creates from now on count
	default:
	}
	ch := make(chan struct{})
	p.hold = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.hold = nil
			p.mu.Unlock()
			close(ch)
		})
	}
}

// procReplica is one erasured process of the deployment, restarted on the same configuration.
type procReplica struct {
	name, dir, cfg, maddr string
	proxy                 *lpProxy
	mu                    sync.Mutex
	p                     *process // nil while down
	conn                  *grpc.ClientConn
	client                erasurev1.ErasureServiceClient
}

// procReplicas is the deployment: the etcd cluster, the simulator and the replicas.
type procReplicas struct {
	t       *testing.T
	bin     string
	etcd    *etcdProc
	simAddr string
	seed    uint64 // the simulator's readings
	reps    []*procReplica
}

// newProcReplicas builds the binary, starts the simulator, a three-member etcd cluster and n
// replicas, and waits until one of them leads.
func newProcReplicas(t *testing.T, n int) *procReplicas {
	t.Helper()
	seed, err := lpsimSeed()
	if err != nil {
		t.Fatalf("%s must be a positive integer: %v", lpsimSeedEnv, err)
	}
	e := &procReplicas{t: t, bin: buildBinary(t), seed: seed}
	e.simAddr = startSimulator(t, e.bin, seed)
	e.etcd = startEtcdProc(t)
	var master []byte
	for i := range n {
		r := &procReplica{name: fmt.Sprintf("replica-%d", i), dir: t.TempDir(), maddr: freeAddr(t)}
		r.proxy = newLPProxy(t, e.simAddr)
		// The crash harness's configuration (real mode, timings on the simulator's clock) with
		// this replica's LivePerson, the store on etcd and a metrics listener.
		r.cfg = writeCrashConfig(t, r.dir, r.proxy.addr())
		if i == 0 {
			if master, err = os.ReadFile(filepath.Join(r.dir, "master.key")); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(filepath.Join(r.dir, "master.key"), master, 0o600); err != nil {
			t.Fatal(err) // every replica has the deployment's one master key
		}
		f, err := os.OpenFile(r.cfg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, `metrics_listen: %s
store:
  backend: etcd
  replica_id: %s
  etcd:
    endpoints: [%s]
    prefix: /erasured/e2e/
    dial_timeout: 2s
    lease_ttl: %s
`, r.maddr, r.name, strings.Join(e.etcd.Endpoints(), ", "), replicaLease)
		f.Close()
		e.reps = append(e.reps, r)
	}
	for i := range e.reps {
		e.start(i)
	}
	e.waitLeader(30*time.Second, -1)
	return e
}

// start runs replica i and waits until it serves.
func (e *procReplicas) start(i int) {
	e.t.Helper()
	r := e.reps[i]
	p := startConfigured(e.t, e.bin, r.dir, r.cfg)
	conn, client := dial(e.t, p.addr)
	e.t.Cleanup(func() { conn.Close() })
	r.mu.Lock()
	r.p, r.conn, r.client = p, conn, client
	r.mu.Unlock()
}

// kill SIGKILLs replica i and waits for it to be gone.
func (e *procReplicas) kill(i int) {
	r := e.reps[i]
	r.mu.Lock()
	p, conn := r.p, r.conn
	r.p, r.conn, r.client = nil, nil, nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	conn.Close()
}

// signal sends sig to replica i's process.
func (e *procReplicas) signal(i int, sig syscall.Signal) {
	e.t.Helper()
	r := e.reps[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil {
		e.t.Fatalf("%s is not running", r.name)
	}
	if err := r.p.cmd.Process.Signal(sig); err != nil {
		e.t.Fatalf("%s: %v: %v", r.name, sig, err)
	}
}

// client is replica i's client; nil while it is down.
func (e *procReplicas) client(i int) erasurev1.ErasureServiceClient {
	r := e.reps[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.client
}

// stopAll stops every running replica with SIGTERM and checks that each exits cleanly.
func (e *procReplicas) stopAll() {
	e.t.Helper()
	for _, r := range e.reps {
		r.mu.Lock()
		p := r.p
		r.p = nil
		r.mu.Unlock()
		if p == nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				e.t.Errorf("%s: exit after SIGTERM: %v", r.name, err)
			}
		case <-time.After(20 * time.Second):
			e.t.Errorf("%s did not exit within 20s of SIGTERM", r.name)
		}
	}
}

// leader is the replica whose erasured_leader is 1, skipping skip (a paused replica, which
// cannot answer a scrape); -1 when none or more than one is.
func (e *procReplicas) leader(skip int) int {
	found := -1
	for i, r := range e.reps {
		if i == skip || e.client(i) == nil {
			continue
		}
		if scrapeGauge(r.maddr, "erasured_leader") == 1 {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// waitLeader waits until one replica other than skip leads, and returns it.
func (e *procReplicas) waitLeader(d time.Duration, skip int) int {
	e.t.Helper()
	l := -1
	waitFor(e.t, d, "a pipeline leader", func() bool { l = e.leader(skip); return l >= 0 })
	return l
}

// scrapeGauge is a label-free series of the metrics at addr; -1 when the scrape fails (within
// a second) or lacks it.
func scrapeGauge(addr, name string) float64 {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	v, ok := sample(string(body), name, nil)
	if !ok {
		return -1
	}
	return v
}

// leadershipLine is a "pipeline leadership acquired" or "lost" line of a replica's log.
type leadershipLine struct {
	at       time.Time
	acquired bool
	term     string
}

// leaderships reads replica i's log (all its runs) for its terms of leadership.
func (e *procReplicas) leaderships(i int) []leadershipLine {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.reps[i].dir, "erasured.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []leadershipLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			Term any       `json:"term"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case "pipeline leadership acquired", "pipeline leadership lost":
			out = append(out, leadershipLine{at: line.Time, acquired: line.Msg == "pipeline leadership acquired", term: fmt.Sprint(line.Term)})
		}
	}
	return out
}

// logs is every replica's log, all runs.
func (e *procReplicas) logs() string {
	var b strings.Builder
	for _, r := range e.reps {
		data, _ := os.ReadFile(filepath.Join(r.dir, "erasured.log"))
		b.Write(data)
	}
	return b.String()
}

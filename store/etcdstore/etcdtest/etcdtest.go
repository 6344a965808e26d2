// Package etcdtest starts etcd clusters for tests: 1 or 3 members (any number, really) embedded
// in the test process, on 127.0.0.1 with free ports, their data in a temporary directory, their
// logs silenced, and a transaction limit raised to what the etcd store's group commit uses. A test
// can stop one member and start it again on the same ports and data.
//
// The command etcdtest/cmd/etcdtest runs such a cluster in a process of its own, for tests that
// start the cluster outside the process under test.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// MaxTxnOps is the most operations one transaction may hold on a cluster this package starts.
// etcd's default is 128; the etcd store's tests use more to exercise large groups.
const MaxTxnOps = 1024

// Config tunes a cluster. Zero fields take their defaults.
type Config struct {
	Members int    // default 1
	Dir     string // where the members keep their data; default a new temporary directory
	// NoFsync turns etcd's fsync off: faster, and loses data on a machine crash (not on a killed
	// process). Tests that kill only processes may use it.
	NoFsync bool
	// TickMs and ElectionMs are the raft heartbeat and election timeout; defaults 100 and 1000
	// (etcd's own): a shorter election timeout lets a loaded machine's pauses start spurious
	// elections.
	TickMs, ElectionMs uint
	MaxTxnOps          uint // default MaxTxnOps
	MaxRequestBytes    uint // default etcd's 1.5 MiB
	// QuotaBackendBytes is the members' space quota (etcd's --quota-backend-bytes); default
	// etcd's 2 GiB. A small one lets a test fill the database.
	QuotaBackendBytes int64
	// Direct makes clients connect to the members' own ports. By default each member's client
	// endpoint is a proxy that Stop closes at once with all its connections, as a crash would;
	// stopping a member that clients still watch then takes milliseconds instead of seconds.
	Direct bool
}

// Cluster is a running etcd cluster of embedded members.
type Cluster struct {
	cfg     Config
	ownDir  bool // New made the directory: Close removes it
	members []*member
	mu      sync.Mutex
}

type member struct {
	name       string
	dir        string
	clientURL  url.URL // what clients dial: the proxy's, unless Direct
	serveURL   url.URL // the member's own client port
	peerURL    url.URL
	etcd       *embed.Etcd // nil while stopped
	proxy      *proxy      // nil when Direct; paused while stopped
	everServed bool
}

// Start starts a cluster of members members (1 when members <= 0) for t and stops it when t
// ends. It fails t if the cluster does not come up.
func Start(t testing.TB, members int) *Cluster {
	t.Helper()
	c, err := New(Config{Members: members, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// New starts a cluster outside of a test; Close stops it.
func New(cfg Config) (*Cluster, error) {
	if cfg.Members <= 0 {
		cfg.Members = 1
	}
	if cfg.TickMs == 0 {
		cfg.TickMs = 100
	}
	if cfg.ElectionMs == 0 {
		cfg.ElectionMs = 1000
	}
	if cfg.MaxTxnOps == 0 {
		cfg.MaxTxnOps = MaxTxnOps
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = embed.DefaultMaxRequestBytes
	}
	own := cfg.Dir == ""
	if own {
		dir, err := os.MkdirTemp("", "etcdtest-")
		if err != nil {
			return nil, err
		}
		cfg.Dir = dir
	}
	// The ports are free when chosen, not reserved: another process may take one before etcd
	// binds it. Then the cluster starts again on new ones.
	for attempt := 1; ; attempt++ {
		c, err := newCluster(cfg, own)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			if err != nil && own {
				_ = os.RemoveAll(cfg.Dir)
			}
			return c, err
		}
		for i := range cfg.Members {
			_ = os.RemoveAll(filepath.Join(cfg.Dir, fmt.Sprintf("m%d", i)))
		}
	}
}

// newCluster starts the members of a new cluster on free ports.
func newCluster(cfg Config, own bool) (*Cluster, error) {
	c := &Cluster{cfg: cfg, ownDir: own}
	for i := range cfg.Members {
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		m := &member{
			name:      fmt.Sprintf("m%d", i),
			dir:       filepath.Join(cfg.Dir, fmt.Sprintf("m%d", i)),
			clientURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])},
			peerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])},
		}
		m.serveURL = m.clientURL
		c.members = append(c.members, m)
		if !cfg.Direct {
			m.serveURL.Host = fmt.Sprintf("127.0.0.1:%d", ports[2])
			// Bound now and for the cluster's life: clients' port stays ours across Stop.
			if m.proxy, err = listenProxy(m.clientURL.Host, m.serveURL.Host); err != nil {
				c.closeMembers()
				return nil, fmt.Errorf("member %s: proxy: %w", m.name, err)
			}
		}
	}
	// Every member must be starting before any can finish: a new cluster's members wait for a
	// quorum before they report ready.
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i := range c.members {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.closeMembers()
			return nil, err
		}
	}
	return c, nil
}

// freePorts asks the kernel for n free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) initialCluster() string {
	var parts []string
	for _, m := range c.members {
		parts = append(parts, m.name+"="+m.peerURL.String())
	}
	return strings.Join(parts, ",")
}

// start starts member i (on its data, if it has run before) and waits until it is ready.
func (c *Cluster) start(i int) error {
	c.mu.Lock()
	m := c.members[i]
	c.mu.Unlock()
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.serveURL}
	cfg.AdvertiseClientUrls = []url.URL{m.serveURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.InitialCluster = c.initialCluster()
	cfg.InitialClusterToken = "etcdtest"
	if m.everServed {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	cfg.TickMs = c.cfg.TickMs
	cfg.ElectionMs = c.cfg.ElectionMs
	cfg.MaxTxnOps = c.cfg.MaxTxnOps
	cfg.MaxRequestBytes = c.cfg.MaxRequestBytes
	cfg.UnsafeNoFsync = c.cfg.NoFsync
	cfg.QuotaBackendBytes = c.cfg.QuotaBackendBytes
	cfg.ListenMetricsUrls = nil
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.Logger = "zap"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start member %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("member %s: %w", m.name, err)
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("member %s did not become ready", m.name)
	}
	c.mu.Lock()
	m.etcd = e
	m.everServed = true
	c.mu.Unlock()
	if m.proxy != nil {
		m.proxy.resume()
	}
	return nil
}

// Endpoints are the client URLs of every member, stopped ones included.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL.String())
	}
	return eps
}

// Endpoint is the client URL of member i.
func (c *Cluster) Endpoint(i int) string { return c.members[i].clientURL.String() }

// Members is the number of members, running or not.
func (c *Cluster) Members() int { return len(c.members) }

// Stop stops member i; its data stays for Restart. Its clients' connections drop at once (see
// Config.Direct). Stopping a stopped member does nothing.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	e, p := c.members[i].etcd, c.members[i].proxy
	c.members[i].etcd = nil
	c.mu.Unlock()
	if p != nil {
		p.pause()
	}
	if e != nil {
		e.Close()
	}
}

// Restart starts member i again, on its data and ports, and waits until it is ready.
func (c *Cluster) Restart(i int) error {
	c.Stop(i)
	return c.start(i)
}

// Client dials the cluster's members. The caller closes it.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
}

// TestClient dials the cluster for t and closes the client when t ends.
func (c *Cluster) TestClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.Client()
	if err != nil {
		t.Fatalf("etcdtest: dial: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Close stops every member, and removes the data directory if New made it (Start's is the
// test's, removed by the test).
func (c *Cluster) Close() {
	c.closeMembers()
	if c.ownDir {
		_ = os.RemoveAll(c.cfg.Dir)
	}
}

// closeMembers stops every member and closes the proxies.
func (c *Cluster) closeMembers() {
	for i, m := range c.members {
		c.Stop(i)
		if m.proxy != nil {
			m.proxy.close()
		}
	}
}

// WaitHealthy waits until a write through the cluster succeeds, or ctx ends.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(rctx, "etcdtest/health", "ok")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdtest: cluster not healthy: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

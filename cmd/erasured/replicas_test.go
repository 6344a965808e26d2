package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// replicaEnv is an etcd cluster, a LivePerson simulator and the files replicas of one
// deployment share: the master key and, the replicas being on one host here, the key directory.
type replicaEnv struct {
	t        *testing.T
	cluster  *etcdtest.Cluster
	dir      string
	master   string
	accounts string
	simURL   string
}

func newReplicaEnv(t *testing.T, members int) *replicaEnv {
	t.Helper()
	acct := lpsim.DefaultAccount("1234", "us")
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}})
	ts := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { ts.Close(); sim.Close() })
	dir := t.TempDir()
	secret := writeFile(t, dir, "client.secret", acct.ClientSecret+"\n", 0o600)
	cluster, err := etcdtest.New(etcdtest.Config{Members: members, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(cluster.Close)
	return &replicaEnv{t: t, cluster: cluster, dir: dir, master: testMasterKey(t, dir), simURL: ts.URL,
		accounts: fmt.Sprintf("accounts: [{id: %q, region: us, auth: {oauth2: {client_id: %s, client_secret_file: %s}}}]\n", acct.ID, acct.ClientID, secret)}
}

// replica is one erasured of the deployment, run by realMain in this process.
type replica struct {
	name, addr, maddr string
	stop              context.CancelFunc
	done              chan error
	conn              *grpc.ClientConn
	client            erasurev1.ErasureServiceClient
}

// start runs a replica named name and waits until it answers.
func (e *replicaEnv) start(name string) *replica {
	e.t.Helper()
	r := &replica{name: name, addr: freeAddr(e.t), maddr: freeAddr(e.t), done: make(chan error, 1)}
	cfg := writeFile(e.t, e.dir, name+".yaml", fmt.Sprintf(`listen: %q
metrics_listen: %q
liveperson: {domain_api_url: %s}
store:
  backend: etcd
  replica_id: %s
  etcd:
    endpoints: [%s]
    prefix: /erasured/test/
    lease_ttl: 3s
privacy: {master_key_file: %s, key_dir: %s}
`, r.addr, r.maddr, e.simURL, name, strings.Join(e.cluster.Endpoints(), ", "), e.master, filepath.Join(e.dir, "keys"))+e.accounts, 0o600)
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() { r.done <- realMain(ctx, []string{"--config", cfg, "--no-credential-check"}) }()
	r.conn, r.client = dial(e.t, r.addr)
	e.t.Cleanup(func() { r.conn.Close(); r.shutdown(e.t) })
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.client.List(wctx, &erasurev1.ListRequest{}, grpc.WaitForReady(true)); err != nil {
		e.t.Fatalf("replica %s does not answer: %v", name, err)
	}
	return r
}

// shutdown stops the replica and waits for realMain to return; once is enough.
func (r *replica) shutdown(t *testing.T) {
	t.Helper()
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("replica %s: realMain = %v", r.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("replica %s did not stop", r.name)
	}
}

// gauge is a label-free series of the replica's metrics; -1 when the scrape fails or lacks it.
func (r *replica) gauge(name string) float64 {
	resp, err := http.Get("http://" + r.maddr + "/metrics")
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

// waitFor polls cond every 50 ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicasOnEtcd: two replicas over one etcd cluster. One leads the pipeline at a time
// (erasured_leader, the leadership log lines); a Submit on the follower is visible on the leader
// at once; when the leader stops, it resigns and the follower takes over; while etcd is down the
// replica's health is NOT_SERVING (erasured_store_up 0, /readyz 503), and SERVING again once
// etcd is back.
func TestReplicasOnEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster and two replicas")
	}
	var logs string
	// The etcd cluster lives inside the capture: its goroutines read os.Stderr, which the
	// capture replaces and restores.
	_, logs = captureOutput(t, func() {
		e := newReplicaEnv(t, 1)
		defer e.cluster.Close()
		a := e.start("replica-a")
		waitFor(t, 10*time.Second, "replica-a to lead", func() bool { return a.gauge("erasured_leader") == 1 })
		b := e.start("replica-b")
		if v := b.gauge("erasured_leader"); v != 0 {
			t.Errorf("replica-b: erasured_leader %v while replica-a leads, want 0", v)
		}
		if v := b.gauge("erasured_store_up"); v != 1 {
			t.Errorf("replica-b: erasured_store_up %v, want 1", v)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := b.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: "00000000-0000-4000-8000-000000000001", AccountId: "1234",
			Subject: &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: "replica-subject"}}})
		if err != nil {
			t.Fatalf("Submit on the follower: %v", err)
		}
		got, err := a.client.Status(ctx, &erasurev1.StatusRequest{Name: res.GetErasure().GetName()})
		if err != nil || got.GetErasure().GetName() != res.GetErasure().GetName() {
			t.Errorf("the leader does not see the follower's erasure: %v, %v", got.GetErasure().GetName(), err)
		}

		// The leader stops: it resigns, and the follower leads.
		a.shutdown(t)
		waitFor(t, 10*time.Second, "replica-b to lead", func() bool { return b.gauge("erasured_leader") == 1 })

		// etcd goes away: health follows.
		health := healthpb.NewHealthClient(b.conn)
		serving := func() bool {
			hctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			r, err := health.Check(hctx, &healthpb.HealthCheckRequest{})
			return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
		}
		ready := func() int {
			resp, err := http.Get("http://" + b.maddr + "/readyz")
			if err != nil {
				return 0
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		e.cluster.Stop(0)
		// A request etcd had taken before its stop may still be answered as it stops: wait
		// for the failure to hold.
		waitFor(t, 20*time.Second, "NOT_SERVING and /readyz 503 with etcd down", func() bool {
			return !serving() && ready() == http.StatusServiceUnavailable
		})
		if v := b.gauge("erasured_store_up"); v != 0 {
			t.Errorf("erasured_store_up with etcd down = %v, want 0", v)
		}
		if err := e.cluster.Restart(0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "SERVING with etcd back", serving)
		waitFor(t, 30*time.Second, "a leader with etcd back", func() bool { return b.gauge("erasured_leader") == 1 })
		b.shutdown(t)
	})
	for _, want := range []string{
		`"msg":"pipeline leadership acquired","replica":"replica-a"`,
		`"msg":"pipeline leadership lost","replica":"replica-a"`,
		`"msg":"pipeline leadership acquired","replica":"replica-b"`,
		`"reason":"stopping"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log has no %s", want)
		}
	}
	if strings.Contains(logs, "resigning failed") {
		t.Error("a replica could not resign its term as it stopped")
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

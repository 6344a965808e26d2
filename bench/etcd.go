package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/etcdstore"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// The etcd scenario: Submit through the etcd backend next to etcd's own Put, on one embedded
// single-member etcd that the benchmark starts in its scratch directory, with etcd's fsync on as
// in production. Every point runs on the same etcd, one after the other: the raw Put, the
// store's Update, Submit, at each client count, so that the disk's mood hits the three alike.
// Each point writes under a prefix of its own, deleted afterwards, and etcd's history is then
// compacted and its file defragmented, so that no point pays for the data of the one before.

// EtcdSystem is what an etcd-scenario point measured.
type EtcdSystem int

// The systems, from the whole service down to etcd's own Put.
const (
	EtcdSubmit EtcdSystem = iota // Submit over gRPC: server, service, etcdstore, etcd
	EtcdFloor                    // Submit over the same gRPC server whose handler is one etcd Put of Submit's size
	EtcdStore                    // store.Update on etcdstore writing Submit's layout
	EtcdRaw                      // clientv3 Put of one value of Submit's size under a fresh key
	numEtcdSystems
)

func (s EtcdSystem) String() string {
	return [...]string{"Submit over gRPC, etcd store", "gRPC floor: the server, one etcd Put", "store.Update on etcd, Submit's layout", "raw etcd Put, one value"}[s]
}

func (s EtcdSystem) short() string { return [...]string{"Submit", "floor", "store", "Put"}[s] }

// EtcdResult is the etcd scenario at one --max-txn-ops: its own etcd member, its own sample.
type EtcdResult struct {
	MaxTxnOps int
	Bytes     SubmitBytes                         // what one Submit stores on the etcd backend
	Points    [numEtcdSystems]map[int][]EtcdPoint // by system, then concurrency: one per run
}

// EtcdPoint is an etcd-scenario point and what etcd did during it (warm-up included).
type EtcdPoint struct {
	Point
	Calls  int // operations completed over the whole point, warm-up included
	Txns   int // the store's etcd commits (one per group); 0 for the raw Put
	Fsyncs int // etcd's WAL fsyncs
}

// DefaultEtcdClients are the etcd scenario's client counts.
var DefaultEtcdClients = []int{16, 64}

// DefaultEtcdMaxTxnOps is etcd's own default --max-txn-ops, which the store assumes unless told.
const DefaultEtcdMaxTxnOps = 128

// runEtcd measures the etcd scenario into res: at each of cfg's --max-txn-ops settings, one after
// the other, each on an etcd member of its own.
func runEtcd(ctx context.Context, cfg Config, res *Results) error {
	settings := cfg.EtcdMaxTxnOps
	if len(settings) == 0 {
		settings = []int{DefaultEtcdMaxTxnOps}
	}
	for _, ops := range settings {
		if ops <= 0 {
			ops = DefaultEtcdMaxTxnOps
		}
		r, err := runEtcdAt(ctx, cfg, ops)
		if err != nil {
			return fmt.Errorf("--max-txn-ops %d: %w", ops, err)
		}
		res.Etcd = append(res.Etcd, r)
	}
	return nil
}

// runEtcdAt measures the etcd scenario on a member started with --max-txn-ops maxTxnOps.
func runEtcdAt(ctx context.Context, cfg Config, maxTxnOps int) (EtcdResult, error) {
	res := EtcdResult{MaxTxnOps: maxTxnOps}
	for i := range res.Points {
		res.Points[i] = map[int][]EtcdPoint{}
	}
	clients := cfg.EtcdClients
	if len(clients) == 0 {
		clients = DefaultEtcdClients
	}
	e := &etcdBench{maxTxnOps: maxTxnOps}
	_, err := inDir(cfg.Dir, "etcd", func(dir string) (struct{}, error) {
		cluster, err := etcdtest.New(etcdtest.Config{Dir: dir, Direct: true, MaxTxnOps: uint(e.maxTxnOps)})
		if err != nil {
			return struct{}{}, fmt.Errorf("start etcd: %w", err)
		}
		defer cluster.Close()
		e.cluster = cluster
		if e.admin, err = cluster.Client(); err != nil {
			return struct{}{}, err
		}
		defer e.admin.Close()
		if res.Bytes, err = e.sampleBytes(ctx, cfg.SampleSubmits); err != nil {
			return struct{}{}, fmt.Errorf("measure what Submit stores on etcd: %w", err)
		}
		cfg.logf("Submit stores %d bytes per call on etcd (%s), measured over %d Submits", res.Bytes.PerSubmit, bucketBytes(res.Bytes), res.Bytes.Erasures)
		layout := SubmitLayout(res.Bytes)
		size := res.Bytes.PerSubmit
		measure := [numEtcdSystems]func(prefix string, l Load) (EtcdPoint, error){
			EtcdRaw:    func(prefix string, l Load) (EtcdPoint, error) { return e.runRaw(ctx, prefix, size, l) },
			EtcdStore:  func(prefix string, l Load) (EtcdPoint, error) { return e.runStore(ctx, prefix, layout, l) },
			EtcdFloor:  func(prefix string, l Load) (EtcdPoint, error) { return e.runFloor(ctx, prefix, size, l) },
			EtcdSubmit: func(prefix string, l Load) (EtcdPoint, error) { return e.runSubmit(ctx, prefix, l) },
		}
		for run := 1; run <= cfg.Runs; run++ {
			for _, c := range clients {
				l := Load{Concurrency: c, Warmup: cfg.Warmup, Duration: cfg.Duration}
				line := fmt.Sprintf("run %d/%d  etcd ops %d c=%-3d", run, cfg.Runs, maxTxnOps, c)
				for sys := numEtcdSystems - 1; sys >= 0; sys-- {
					p, err := e.point(ctx, func(prefix string) (EtcdPoint, error) { return measure[sys](prefix, l) })
					if err != nil {
						return struct{}{}, fmt.Errorf("%s, %d callers: %w", sys, c, err)
					}
					res.Points[sys][c] = append(res.Points[sys][c], p)
					line += fmt.Sprintf(" | %s %.0f/s p50 %v", sys.short(), p.Rate(), ms(p.Latency.P50))
				}
				cfg.logf("%s", line)
			}
		}
		return struct{}{}, nil
	})
	return res, err
}

// etcdBench is the scenario's etcd and a client for its own requests.
type etcdBench struct {
	maxTxnOps int
	cluster   *etcdtest.Cluster
	admin     *clientv3.Client
	points    int
}

// point runs fn under a fresh prefix, counting etcd's WAL fsyncs, and then removes what it wrote.
func (e *etcdBench) point(ctx context.Context, fn func(prefix string) (EtcdPoint, error)) (EtcdPoint, error) {
	e.points++
	prefix := fmt.Sprintf("bench/%d/", e.points)
	before := walFsyncs()
	p, err := fn(prefix)
	p.Fsyncs = int(walFsyncs() - before)
	return p, errors.Join(err, e.clean(ctx, prefix))
}

// clean deletes everything under prefix, compacts etcd's history and defragments its file.
func (e *etcdBench) clean(ctx context.Context, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := e.admin.Delete(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("clean etcd: %w", err)
	}
	if _, err := e.admin.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact etcd: %w", err)
	}
	if _, err := e.admin.Defragment(ctx, e.cluster.Endpoint(0)); err != nil {
		return fmt.Errorf("defragment etcd: %w", err)
	}
	return nil
}

// sampleBytes measures what one Submit stores on etcd, on a prefix of its own.
func (e *etcdBench) sampleBytes(ctx context.Context, n int) (SubmitBytes, error) {
	var sb SubmitBytes
	_, err := e.point(ctx, func(prefix string) (EtcdPoint, error) {
		t, err := StartInProcessEtcd(ctx, e.cluster.Endpoints(), prefix, e.maxTxnOps)
		if err != nil {
			return EtcdPoint{}, err
		}
		sb, err = MeasureSubmitBytes(ctx, t, n)
		return EtcdPoint{}, errors.Join(err, t.Close())
	})
	return sb, err
}

// runRaw measures clientv3 Puts of size bytes (key and value), each under a fresh key, from
// l.Concurrency callers sharing one client (a gRPC connection) per clientsPerConn, as Submit's do.
func (e *etcdBench) runRaw(ctx context.Context, prefix string, size int, l Load) (EtcdPoint, error) {
	var clis []*clientv3.Client
	defer func() {
		for _, c := range clis {
			_ = c.Close()
		}
	}()
	for range (l.Concurrency + clientsPerConn - 1) / clientsPerConn {
		c, err := e.cluster.Client()
		if err != nil {
			return EtcdPoint{}, err
		}
		clis = append(clis, c)
	}
	keyLen := len(prefix) + 16
	value := string(make([]byte, max(size-keyLen, 0)))
	var calls atomic.Int64
	p, err := drive(ctx, l, func(ctx context.Context, worker, seq int) error {
		key := prefix + fmt.Sprintf("%08x%08x", worker, seq)
		if _, err := clis[worker%len(clis)].Put(ctx, key, value); err != nil {
			return err
		}
		calls.Add(1)
		return nil
	})
	return EtcdPoint{Point: p, Calls: int(calls.Load())}, err
}

// runStore measures store.Update on etcdstore (RunStore's writes) under prefix.
func (e *etcdBench) runStore(ctx context.Context, prefix string, layout Layout, l Load) (EtcdPoint, error) {
	if err := checkLayout(layout); err != nil {
		return EtcdPoint{}, err
	}
	var txns atomic.Int64
	db, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: e.cluster.Endpoints(), Prefix: prefix, Buckets: schema.Buckets,
		MaxTxnOps: e.maxTxnOps, OnCommit: func(time.Duration) { txns.Add(1) }})
	if err != nil {
		return EtcdPoint{}, err
	}
	var calls atomic.Int64
	counted := countingDB{DB: db, n: &calls}
	p, err := runUpdates(ctx, counted, layout, l)
	err = errors.Join(err, db.Close())
	return EtcdPoint{Point: p, Calls: int(calls.Load()), Txns: int(txns.Load())}, err
}

// runSubmit measures Submit on a server over etcdstore under prefix.
func (e *etcdBench) runSubmit(ctx context.Context, prefix string, l Load) (EtcdPoint, error) {
	t, err := StartInProcessEtcd(ctx, e.cluster.Endpoints(), prefix, e.maxTxnOps)
	if err != nil {
		return EtcdPoint{}, err
	}
	txns0 := t.commits()
	var calls atomic.Int64
	p, err := driveRPC(ctx, t, l, func(ctx context.Context, c erasurev1.ErasureServiceClient, worker, seq int) error {
		if _, err := c.Submit(ctx, submitRequest(worker, seq)); err != nil {
			return err
		}
		calls.Add(1)
		return nil
	})
	txns := t.commits() - txns0
	return EtcdPoint{Point: p, Calls: int(calls.Load()), Txns: int(txns)}, errors.Join(err, t.Close())
}

// walFsyncs is how many WAL fsyncs the etcd members of this process have made.
func walFsyncs() uint64 {
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0
	}
	for _, f := range fams {
		if f.GetName() == "etcd_disk_wal_fsync_duration_seconds" {
			var n uint64
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	return 0
}

// perCommit describes what the medians of ps carried per store transaction and per WAL fsync.
func etcdPerCommit(ps []EtcdPoint) string {
	var perTxn, perFsync []float64
	for _, p := range ps {
		if p.Txns > 0 {
			perTxn = append(perTxn, float64(p.Calls)/float64(p.Txns))
		}
		if p.Fsyncs > 0 {
			perFsync = append(perFsync, float64(p.Calls)/float64(p.Fsyncs))
		}
	}
	s := ""
	if len(perTxn) > 0 {
		s = strconv.FormatFloat(Median(perTxn), 'f', 1, 64) + " per txn, "
	}
	if len(perFsync) > 0 {
		s += strconv.FormatFloat(Median(perFsync), 'f', 1, 64) + " per fsync"
	}
	return s
}

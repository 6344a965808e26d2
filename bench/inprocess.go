package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
	"github.com/erasured/erasured/store/etcdstore"
)

// Target is a running erasured the scenarios drive over gRPC.
type Target interface {
	// Addr is the host:port it serves gRPC on.
	Addr() string
	// Memory is the memory the target accounts to itself, in bytes; MemoryKind says what it counts.
	Memory() (uint64, error)
	MemoryKind() string
	// Close shuts it down and releases its files.
	Close() error
}

// InProcess is erasured wired as cmd/erasured wires it (store, service, server over loopback TCP)
// inside this process. Clients and server share the process, its scheduler and its garbage
// collector, as they share the machine's two cores anyway.
type InProcess struct {
	DB     store.DB
	Where  string // the store: the bbolt file, or the etcd prefix
	srv    *server.Server
	addr   string
	served chan error
	txns   *atomic.Int64 // etcd commits; nil on bbolt
}

var _ Target = (*InProcess)(nil)

// StartInProcess opens a fresh store under dir and serves it on 127.0.0.1 at a free port.
//
// It wires what issue 2 built — store, service, server — as cmd/erasured does, but not the
// erasure pipeline and its LivePerson client, which cmd/erasured also starts: the pipeline would
// act on the benchmark's erasures (resolve them, retry, change their state) and measure itself.
func StartInProcess(dir string) (*InProcess, error) {
	// cmd/erasured logs every call as a JSON line on stderr; format them the same way but drop them,
	// so the cost of logging is measured without flooding the terminal.
	return startServer(dir, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

func startServer(dir string, log *slog.Logger) (*InProcess, error) {
	db, keys, err := openScratch(dir)
	if err != nil {
		return nil, err
	}
	return serve(db, db.Path(), keys, false, log)
}

// openScratch opens a fresh bbolt store in dir and a keyring with a random master key: what
// every in-process scenario runs erasured's service on.
func openScratch(dir string) (*boltstore.DB, *service.Keyring, error) {
	db, err := boltstore.Open(filepath.Join(dir, "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		return nil, nil, err
	}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := service.NewKeyring("bench", master)
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	return db, keys, nil
}

// StartInProcessEtcd serves, as StartInProcess does, a fresh store under prefix on the etcd
// cluster at endpoints, wired as cmd/erasured wires its etcd backend: the service told the store
// is shared (its Submit index decided in the store), its keyring kept in the store. maxTxnOps is
// the cluster's --max-txn-ops (0: etcd's default).
func StartInProcessEtcd(ctx context.Context, endpoints []string, prefix string, maxTxnOps int) (*InProcess, error) {
	return startInProcessEtcd(ctx, endpoints, prefix, maxTxnOps)
}

// startInProcessEtcd is StartInProcessEtcd with extra options for the gRPC server.
func startInProcessEtcd(ctx context.Context, endpoints []string, prefix string, maxTxnOps int, extra ...grpc.ServerOption) (*InProcess, error) {
	txns := new(atomic.Int64)
	db, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: endpoints, Prefix: prefix, Buckets: schema.Buckets,
		MaxTxnOps: maxTxnOps, OnCommit: func(time.Duration) { txns.Add(1) }})
	if err != nil {
		return nil, err
	}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	keys, err := service.OpenSharedKeyring(ctx, "bench", master, db, service.DefaultKeyPeriod, time.Now())
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	p, err := serve(db, "etcd "+prefix, keys, true, slog.New(slog.NewJSONHandler(io.Discard, nil)), extra...)
	if p != nil {
		p.txns = txns
	}
	return p, err
}

// serve starts the service and server over db, which it closes on failure and in Close.
func serve(db store.DB, where string, keys *service.Keyring, shared bool, log *slog.Logger, extra ...grpc.ServerOption) (*InProcess, error) {
	svc, err := service.New(db, keys, service.Config{
		DefaultConfirmation: service.ConfirmationAutomatic,
		Logger:              log,
		CancelWindow:        120 * time.Hour, // cmd/erasured's defaults
		DeletionWindow:      480 * time.Hour,
		Shared:              shared,
	})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	// The Watch scenario opens 10,000 streams from one (anonymous) caller: far beyond the caps a
	// production server keeps per principal, which are not what it measures.
	srv, err := server.New(svc, server.Options{Logger: log, Limits: benchLimits, ExtraOptions: extra})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		return nil, errors.Join(err, db.Close())
	}
	p := &InProcess{DB: db, Where: where, srv: srv, addr: lis.Addr().String(), served: make(chan error, 1)}
	go func() { p.served <- srv.Serve(lis) }() // ends with Shutdown in Close
	return p, nil
}

// commits is how many etcd transactions the store has committed; 0 on bbolt.
func (p *InProcess) commits() int64 {
	if p.txns == nil {
		return 0
	}
	return p.txns.Load()
}

// Addr implements Target.
func (p *InProcess) Addr() string { return p.addr }

// Memory implements Target: live heap and goroutine stacks after a forced collection. It counts
// this whole process, so the client side of every stream too.
func (p *InProcess) Memory() (uint64, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, nil
}

// MemoryKind implements Target.
func (p *InProcess) MemoryKind() string { return "heap+stacks of server and clients (in-process)" }

// Close shuts the server down as cmd/erasured does, then closes the store.
func (p *InProcess) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	err := <-p.served
	if cerr := p.DB.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	return err
}

// benchLimits lift the server's stream and call caps out of the benchmarks' way.
var benchLimits = server.Limits{MaxStreams: 1 << 20, MaxStreamsPerPrincipal: 1 << 20, MaxCalls: 1 << 20, MaxCallsPerPrincipal: 1 << 20}

package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// The etcd floor: a Submit call through erasured's own gRPC server — its listener, codec and
// whole interceptor chain (logging, limits, validation, recovery) — whose handler is replaced by
// one clientv3 Put of Submit's stored size under a fresh key, on a client of the server's own, and
// the reply a real Submit gave. It is the least any service can do that takes a request over gRPC
// and stores it in etcd on this machine: the client, the server's transports and etcd all share
// the cores, as they do for Submit. Submit/floor says what erasured adds to that; floor/raw Put
// what the gRPC hop in front of etcd costs.

// floorHandler is the innermost unary interceptor of a floor server: it answers Submit with one
// etcd Put once it holds a reply to give, and passes every other call (and the Submit that
// provides the reply) to the real handler.
type floorHandler struct {
	cli    *clientv3.Client
	prefix string
	value  string
	seq    atomic.Int64
	puts   atomic.Int64
	reply  atomic.Pointer[erasurev1.SubmitResponse]
}

func newFloorHandler(cli *clientv3.Client, prefix string, size int) *floorHandler {
	keyLen := len(prefix) + 16
	return &floorHandler{cli: cli, prefix: prefix, value: string(make([]byte, max(size-keyLen, 0)))}
}

// option is the server option that installs f after the server's own interceptors.
func (f *floorHandler) option() grpc.ServerOption {
	return grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		reply := f.reply.Load()
		if info.FullMethod != erasurev1.ErasureService_Submit_FullMethodName || reply == nil {
			return next(ctx, req)
		}
		key := f.prefix + fmt.Sprintf("%016x", f.seq.Add(1))
		if _, err := f.cli.Put(ctx, key, f.value); err != nil {
			return nil, err
		}
		f.puts.Add(1)
		return reply, nil
	})
}

// runFloor measures the floor: a server over etcdstore under prefix (so that it is the Submit
// server, bar the handler), a real Submit to take its reply, then l's Submits answered by one Put.
func (e *etcdBench) runFloor(ctx context.Context, prefix string, size int, l Load) (EtcdPoint, error) {
	cli, err := e.cluster.Client()
	if err != nil {
		return EtcdPoint{}, err
	}
	defer cli.Close()
	f := newFloorHandler(cli, prefix+"floor/", size)
	t, err := startInProcessEtcd(ctx, e.cluster.Endpoints(), prefix, e.maxTxnOps, f.option())
	if err != nil {
		return EtcdPoint{}, err
	}
	p, err := func() (Point, error) {
		pl, err := dialPool(t.Addr(), 1)
		if err != nil {
			return Point{}, err
		}
		defer pl.Close()
		resp, err := pl.client(0).Submit(ctx, submitRequest(-1, 0))
		if err != nil {
			return Point{}, fmt.Errorf("the Submit whose reply the floor gives: %w", err)
		}
		f.reply.Store(resp)
		return driveRPC(ctx, t, l, func(ctx context.Context, c erasurev1.ErasureServiceClient, worker, seq int) error {
			_, err := c.Submit(ctx, submitRequest(worker, seq))
			return err
		})
	}()
	return EtcdPoint{Point: p, Calls: int(f.puts.Load())}, errors.Join(err, t.Close())
}

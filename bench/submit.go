package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// clientsPerConn is how many Submit callers share one gRPC connection: separate callers would have
// separate connections, but one per caller at 64 would measure TCP more than erasured.
const clientsPerConn = 16

// pool is a set of client connections to one target, handed out round-robin.
type pool struct {
	conns   []*grpc.ClientConn
	clients []erasurev1.ErasureServiceClient
}

func dialPool(addr string, n int) (*pool, error) {
	p := &pool{}
	for range max(n, 1) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, errors.Join(err, p.Close())
		}
		p.conns = append(p.conns, cc)
		p.clients = append(p.clients, erasurev1.NewErasureServiceClient(cc))
	}
	return p, nil
}

// client returns the client for caller i.
func (p *pool) client(i int) erasurev1.ErasureServiceClient { return p.clients[i%len(p.clients)] }

func (p *pool) Close() error {
	var errs []error
	for _, cc := range p.conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

// submitRequest is a valid, distinct Submit: a fresh request_id and a subject no other call uses,
// so every call creates an erasure (no idempotent replay, no subject dedup).
func submitRequest(worker, seq int) *erasurev1.SubmitRequest {
	return &erasurev1.SubmitRequest{
		RequestId: uuid.NewString(),
		AccountId: "1234", // the sandbox's simulated account (lpsim.DemoAccount): erasured refuses accounts it is not configured for
		Subject: &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{
			CustomerId: fmt.Sprintf("bench-customer-%d-%d", worker, seq)}},
		ExternalRef: "BENCH-1",
	}
}

// RunSubmit measures Submit against t with l.Concurrency callers.
func RunSubmit(ctx context.Context, t Target, l Load) (Point, error) {
	return driveRPC(ctx, t, l, func(ctx context.Context, c erasurev1.ErasureServiceClient, worker, seq int) error {
		_, err := c.Submit(ctx, submitRequest(worker, seq))
		return err
	})
}

// RunStatusMiss measures, as RunSubmit does, a call that costs gRPC what Submit costs it — the
// same connections, interceptor chain (logging, validation, recovery) and callers — but does no
// work of its own: Status of an erasure that does not exist, answered NOT_FOUND after one read.
// Its rate is the most any RPC reaches on this machine at this concurrency, the ceiling of Submit
// over gRPC however fast the store.
func RunStatusMiss(ctx context.Context, t Target, l Load) (Point, error) {
	return driveRPC(ctx, t, l, func(ctx context.Context, c erasurev1.ErasureServiceClient, _, _ int) error {
		_, err := c.Status(ctx, &erasurev1.StatusRequest{Name: "erasures/" + uuid.NewString()})
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return fmt.Errorf("Status of an unknown erasure = %v, want NOT_FOUND", err)
	})
}

// driveRPC runs l against t's gRPC API: l.Concurrency callers, one connection per clientsPerConn.
func driveRPC(ctx context.Context, t Target, l Load, call func(ctx context.Context, c erasurev1.ErasureServiceClient, worker, seq int) error) (Point, error) {
	p, err := dialPool(t.Addr(), (l.Concurrency+clientsPerConn-1)/clientsPerConn)
	if err != nil {
		return Point{}, err
	}
	defer p.Close()
	return drive(ctx, l, func(ctx context.Context, worker, seq int) error {
		return call(ctx, p.client(worker), worker, seq)
	})
}

// SubmitBytes is what one Submit leaves in the store, measured after the fact.
type SubmitBytes struct {
	Erasures int // erasures created by the sample
	// PerSubmit is the mean of keys plus values per erasure, over every bucket Submit writes: its
	// erasure record, its event, its wrapped data key, its subject-index entry, its idempotency
	// record, and whatever else the service adds.
	PerSubmit int
	Buckets   map[string]Sizes // the mean per erasure, by bucket
}

// Sizes are the key and value bytes of one entry.
type Sizes struct{ Key, Value int }

func (sb SubmitBytes) bucketNames() []string { return slices.Sorted(maps.Keys(sb.Buckets)) }

// MeasureSubmitBytes submits n distinct erasures to p and reads back, bucket by bucket, how many
// key and value bytes they occupy. Events count as bbolt stores them: an 8-byte revision key and
// uvarint(len(key)) + key + value. The meta revision (rewritten once per commit, not per Submit)
// and bbolt's page overhead are left out: the raw baseline pays those too.
func MeasureSubmitBytes(ctx context.Context, p *InProcess, n int) (SubmitBytes, error) {
	if _, err := RunSubmitCount(ctx, p, n); err != nil {
		return SubmitBytes{}, err
	}
	total := map[string]Sizes{}
	entries := map[string]int{}
	add := func(b string, k, v int) {
		s := total[b]
		total[b] = Sizes{Key: s.Key + k, Value: s.Value + v}
		entries[b]++
	}
	var erasures int
	err := p.DB.View(func(tx store.Tx) error {
		for _, b := range schema.Buckets { // all of them, so that a Submit writing somewhere new is counted
			err := tx.Scan(b, nil, func(k, v []byte) (bool, error) {
				add(b.String(), len(k), len(v))
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		erasures = tx.Count(schema.Erasures)
		return nil
	})
	if err != nil {
		return SubmitBytes{}, err
	}
	evs, err := p.DB.Events(1, 0)
	if err != nil {
		return SubmitBytes{}, err
	}
	for _, ev := range evs {
		add("events", 8, uvarintLen(len(ev.Key))+len(ev.Key)+len(ev.Value))
	}
	if erasures == 0 {
		return SubmitBytes{}, errors.New("no erasure was stored")
	}
	sb := SubmitBytes{Erasures: erasures, Buckets: map[string]Sizes{}}
	for b, s := range total {
		mean := Sizes{Key: s.Key / erasures, Value: s.Value / erasures}
		if entries[b] < erasures/2 {
			// Fewer entries than Submits: entries every Submit shares and rewrites (the erasure
			// counts, an account's backlog count), written once per group commit, not once per
			// Submit.
			continue
		}
		sb.Buckets[b] = mean
		sb.PerSubmit += mean.Key + mean.Value
	}
	return sb, nil
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// RunSubmitCount submits n distinct erasures to t from 16 callers and returns their names, the
// i-th for the i-th request.
func RunSubmitCount(ctx context.Context, t Target, n int) ([]string, error) {
	const callers = 16
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := dialPool(t.Addr(), 1)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	names := make([]string, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range callers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				resp, err := p.client(0).Submit(ctx, submitRequest(0, i))
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				names[i] = resp.GetErasure().GetName()
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return names, firstErr
}

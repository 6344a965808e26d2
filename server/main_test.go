package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is a real server (full interceptor chain) over an in-memory connection.
type harness struct {
	t      *testing.T
	db     store.DB
	svc    *service.Service
	srv    *Server
	conn   *grpc.ClientConn
	client erasurev1.ErasureServiceClient
	logs   *lockedBuffer
	served chan error
	down   bool
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := service.NewKeyring("test", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, logs: &lockedBuffer{}}
	// The service logs through the handler that adds a call's request id, as erasured's does.
	opts.Logger = slog.New(LogHandler(slog.NewJSONHandler(h.logs, nil)))
	if h.svc, err = service.New(db, keys, service.Config{Logger: opts.Logger}); err != nil {
		t.Fatal(err)
	}
	if h.srv, err = New(h.svc, opts); err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	h.served = make(chan error, 1)
	go func() { h.served <- h.srv.Serve(lis) }()
	h.conn, err = grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.client = erasurev1.NewErasureServiceClient(h.conn)
	t.Cleanup(h.shutdown)
	return h
}

func (h *harness) shutdown() {
	if h.down {
		return
	}
	h.down = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.srv.Shutdown(ctx)
	if err := <-h.served; err != nil {
		h.t.Errorf("Serve: %v", err)
	}
	h.conn.Close()
	h.db.Close()
}

func (h *harness) submit(rid string, subject *erasurev1.Subject) *erasurev1.Erasure {
	h.t.Helper()
	res, err := h.client.Submit(context.Background(), &erasurev1.SubmitRequest{RequestId: rid, AccountId: "1234", Subject: subject})
	if err != nil {
		h.t.Fatalf("Submit: %v", err)
	}
	return res.GetErasure()
}

func customerID(id string) *erasurev1.Subject {
	return &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: id}}
}

// lockedBuffer collects log output from concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

var _ io.Writer = (*lockedBuffer)(nil)

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

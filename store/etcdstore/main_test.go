package etcdstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// cluster is the package's one embedded etcd, started by TestMain.
var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "etcdstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster, err = etcdtest.New(etcdtest.Config{Dir: dir, NoFsync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cluster.Close()
	closeBench()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// prefixOf derives a store prefix from a test directory, so that reopening the dir reopens the
// same store.
func prefixOf(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return "test/" + hex.EncodeToString(h[:8]) + "/"
}

// testOptions are the options of a test DB on the package's cluster.
func testOptions(prefix string, buckets []store.Bucket) Options {
	return Options{
		Endpoints:      cluster.Endpoints(),
		Prefix:         prefix,
		Buckets:        buckets,
		LeaseTTL:       2 * time.Second,
		MaxTxnOps:      etcdtest.MaxTxnOps,
		HealthInterval: 100 * time.Millisecond,
		HealthTimeout:  time.Second,
	}
}

// openTest opens a DB with opts and closes it when the test ends.
func openTest(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", opts.Prefix, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// newPrefix is a fresh prefix for t.
func newPrefix(t testing.TB) string { return prefixOf(t.TempDir()) }

// rawClient is a client of the package's cluster, closed when t ends.
func rawClient(t testing.TB) *clientv3.Client { return cluster.TestClient(t) }

var (
	bucketA     = store.Bucket{Name: "a"}
	bucketB     = store.Bucket{Name: "b"}
	testBuckets = []store.Bucket{bucketA, bucketB}
)

// clientOptsPrefixCount counts the keys under a prefix.
func clientOptsPrefixCount() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}

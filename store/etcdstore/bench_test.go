package etcdstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// The benchmarks compare a store Update (a Put and an Append of a Submit's size, group
// committed) with a plain etcd Put of the same size, both from many goroutines, against one
// embedded etcd that syncs to disk as a real one does (not the tests' cluster, which does not):
//
//	go test -run '^$' -bench . ./store/etcdstore/
//
// The ratio of the two is what the group commit buys back of etcd's own throughput.

const (
	benchValueSize   = 1500 // about what a Submit writes
	benchParallelism = 32   // goroutines per GOMAXPROCS
)

var (
	benchOnce    sync.Once
	benchCluster *etcdtest.Cluster
	benchErr     error
	benchDir     string
)

// benchEtcd starts, once, the benchmarks' cluster of one member with fsync on.
func benchEtcd(b *testing.B) *etcdtest.Cluster {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "etcdstore-bench-")
		if benchErr == nil {
			benchCluster, benchErr = etcdtest.New(etcdtest.Config{Dir: benchDir, Direct: true})
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchCluster
}

// closeBench stops the benchmarks' cluster if one was started.
func closeBench() {
	if benchCluster != nil {
		benchCluster.Close()
	}
	if benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
}

func benchValue() []byte {
	v := make([]byte, benchValueSize)
	_, _ = rand.Read(v)
	return v
}

// BenchmarkUpdate: parallel Updates, each a Put of a new key and an Append, both ~1.5 kB.
func BenchmarkUpdate(b *testing.B) { benchUpdate(b, false, false) }

// BenchmarkUpdateReading: BenchmarkUpdate whose functions first read the key they write (absent),
// as a Submit checks its request id: each such read is a round trip to etcd on the committer.
func BenchmarkUpdateReading(b *testing.B) { benchUpdate(b, true, false) }

// BenchmarkUpdateReadingNoPrefetch: BenchmarkUpdateReading without the prefetch that makes a
// group's reads in one request.
func BenchmarkUpdateReadingNoPrefetch(b *testing.B) { benchUpdate(b, true, true) }

func benchUpdate(b *testing.B, read, noPrefetch bool) {
	c := benchEtcd(b)
	opts := testOptions(fmt.Sprintf("bench/%s/", rand.Text()), []store.Bucket{bucketA})
	opts.Endpoints = c.Endpoints()
	opts.NoPrefetch = noPrefetch
	db := openTest(b, opts)
	value := benchValue()
	var n atomic.Uint64
	before := db.commits.Load()
	b.SetBytes(2 * benchValueSize)
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := store.U64(n.Add(1))
			err := db.Update(context.Background(), func(tx store.Tx) error {
				if read && tx.Get(bucketA, key) != nil {
					return errors.New("the key is there already")
				}
				if err := tx.Put(bucketA, key, value); err != nil {
					return err
				}
				_, err := tx.Append(string(key), value)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if commits := db.commits.Load() - before; commits > 0 {
		b.ReportMetric(float64(b.N)/float64(commits), "updates/commit")
	}
}

// BenchmarkRawPut: parallel etcd Puts of the same size, on a client of the same cluster.
func BenchmarkRawPut(b *testing.B) {
	c := benchEtcd(b)
	cli := c.TestClient(b)
	value := string(benchValue())
	prefix := fmt.Sprintf("benchraw/%s/", rand.Text())
	var n atomic.Uint64
	b.SetBytes(benchValueSize)
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cli.Put(context.Background(), prefix+fmt.Sprint(n.Add(1)), value); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

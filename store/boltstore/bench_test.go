package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/erasured/erasured/store"
)

// benchRecord is the size of a typical stored erasure (JSON).
var benchRecord = func() []byte {
	b := make([]byte, 300)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

var benchWriters = []int{1, 16, 64}

// runWriters runs b.N operations spread over n goroutines and reports writes/s.
func runWriters(b *testing.B, n int, op func(i uint64) error) {
	b.Helper()
	var next atomic.Uint64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > uint64(b.N) {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
}

// BenchmarkUpdate: each operation is one Update that puts a ~300-byte record and appends one event.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			db := openTest(b, Options{})
			ctx := context.Background()
			runWriters(b, n, func(i uint64) error {
				return db.Update(ctx, func(tx store.Tx) error {
					if err := tx.Put(ascBucket, store.U64(i), benchRecord); err != nil {
						return err
					}
					_, err := tx.Append("erasure", benchRecord)
					return err
				})
			})
			b.ReportMetric(float64(b.N)/float64(db.commits.Load()), "writes/commit")
		})
	}
}

// BenchmarkUpdateBesideBusyGoroutines is BenchmarkUpdate with 16 writers, alone and beside
// goroutines that keep the CPUs busy (20 µs of work, then a 10 µs sleep, as request handlers do).
// The committer gives up its P at every fsync and must queue for one behind them, and so must the
// writers: compare writes/s and writes/commit of busy=0 with busy=4 (the benchmark does not tell
// the committer's wait from the writers').
//
//	go test -run x -bench BesideBusy -benchtime 5000x -count 3 ./store/
func BenchmarkUpdateBesideBusyGoroutines(b *testing.B) {
	for _, busy := range []int{0, 4} {
		b.Run(fmt.Sprintf("busy=%d", busy), func(b *testing.B) {
			var stop atomic.Bool
			var wg sync.WaitGroup
			for range busy {
				wg.Go(func() {
					x := 0
					for !stop.Load() {
						for i := range 20_000 {
							x += i * i
						}
						time.Sleep(10 * time.Microsecond)
					}
					busySink.Add(int64(x)) // keeps the work from being optimised away
				})
			}
			db := openTest(b, Options{})
			ctx := context.Background()
			runWriters(b, 16, func(i uint64) error {
				return db.Update(ctx, func(tx store.Tx) error {
					if err := tx.Put(ascBucket, store.U64(i), benchRecord); err != nil {
						return err
					}
					_, err := tx.Append("erasure", benchRecord)
					return err
				})
			})
			stop.Store(true)
			wg.Wait()
			b.ReportMetric(float64(b.N)/float64(db.commits.Load()), "writes/commit")
		})
	}
}

var busySink atomic.Int64

// BenchmarkRawGroupCommit is the floor BenchmarkUpdate is measured against: plain bbolt, one goroutine
// committing everything queued while the previous commit synced, the same record and event per write,
// none of the store's API (no panics recovered, no re-runs, no watchers).
func BenchmarkRawGroupCommit(b *testing.B) {
	for _, n := range benchWriters {
		b.Run(fmt.Sprintf("writers=%d", n), func(b *testing.B) {
			bdb, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{
				Timeout:      time.Second,
				FreelistType: bolt.FreelistMapType,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer bdb.Close()
			if err := bdb.Update(func(btx *bolt.Tx) error {
				for _, name := range []string{"records", "events"} {
					if _, err := btx.CreateBucket([]byte(name)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			g := newRawCommitter(bdb)
			defer g.stop()
			runWriters(b, n, func(i uint64) error { return g.write(store.U64(i)) })
			b.ReportMetric(float64(b.N)/float64(g.commits), "writes/commit")
		})
	}
}

type rawWrite struct {
	key  []byte
	done chan error
}

type rawCommitter struct {
	db      *bolt.DB
	mu      sync.Mutex
	cond    sync.Cond
	queue   []rawWrite
	stopped bool
	exited  chan struct{}
	commits int // read after stop
}

func newRawCommitter(db *bolt.DB) *rawCommitter {
	g := &rawCommitter{db: db, exited: make(chan struct{})}
	g.cond.L = &g.mu
	go g.loop()
	return g
}

func (g *rawCommitter) write(key []byte) error {
	w := rawWrite{key: key, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	g.cond.Signal()
	g.mu.Unlock()
	return <-w.done
}

func (g *rawCommitter) stop() {
	g.mu.Lock()
	g.stopped = true
	g.cond.Signal()
	g.mu.Unlock()
	<-g.exited
}

func (g *rawCommitter) loop() {
	defer close(g.exited)
	var rev uint64
	for {
		g.mu.Lock()
		for len(g.queue) == 0 && !g.stopped {
			g.cond.Wait()
		}
		if len(g.queue) == 0 {
			g.mu.Unlock()
			return
		}
		batch := g.queue
		g.queue = nil
		g.mu.Unlock()

		err := g.db.Update(func(btx *bolt.Tx) error {
			records, events := btx.Bucket([]byte("records")), btx.Bucket([]byte("events"))
			for _, w := range batch {
				if err := records.Put(w.key, append([]byte{}, benchRecord...)); err != nil {
					return err
				}
				rev++
				if err := events.Put(store.U64(rev), encodeEvent("erasure", benchRecord)); err != nil {
					return err
				}
			}
			return nil
		})
		g.commits++
		for _, w := range batch {
			w.done <- err
		}
	}
}

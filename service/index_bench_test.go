package service

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// BenchmarkLoadIndex measures what New pays to load the Submit index from a store holding many
// open erasures (from their open marks: the first open, which writes them, is left out), and
// the memory the index then holds per erasure:
//
//	go test -run x -bench LoadIndex -benchtime 5x ./service/
func BenchmarkLoadIndex(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db, err := boltstore.Open(filepath.Join(b.TempDir(), "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			keys, err := NewKeyring("bench", testKey)
			if err != nil {
				b.Fatal(err)
			}
			fillErasures(b, db, keys, n)
			s := &Service{db: db, keys: keys, log: slog.New(slog.DiscardHandler)}
			if err := s.ensureCounts(context.Background()); err != nil {
				b.Fatal(err)
			}
			if err := s.loadIndex(context.Background()); err != nil { // writes the open marks
				b.Fatal(err)
			}

			b.ResetTimer()
			for range b.N {
				if err := s.loadIndex(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/erasure")

			s.index = nil
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := s.loadIndex(context.Background()); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(s.index)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/erasure")
		})
	}
}

// fillErasures stores n open erasures as Submit would (sealed), 1,000 per transaction.
func fillErasures(b *testing.B, db store.DB, keys *Keyring, n int) {
	b.Helper()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	s := &Service{db: db, keys: keys, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler), index: newSubmitIndex()}
	for done := 0; done < n; {
		batch := min(1000, n-done)
		var changes []encodedChange
		for i := range batch {
			req := SubmitRequest{RequestID: uuid.NewString(), AccountID: "1234", Subject: customer(fmt.Sprint("C-", done+i))}
			hash, err := s.payloadHash(req)
			if err != nil {
				b.Fatal(err)
			}
			sec := indexSecrets{hash: hash, hasHash: true, fps: []string{keys.Fingerprint("1234", req.Subject)}}
			r, _, err := s.sealedRecord(context.Background(), uuid.Must(uuid.NewV7()).String(), req, sec, now)
			if err != nil {
				b.Fatal(err)
			}
			c, err := encodeChange(r, StateUnspecified, nil, now)
			if err != nil {
				b.Fatal(err)
			}
			changes = append(changes, c)
		}
		err := db.Update(context.Background(), func(tx store.Tx) error {
			for _, c := range changes {
				if _, err := c.put(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		done += batch
	}
}

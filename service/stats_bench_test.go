package service

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// BenchmarkStats compares what a metrics scrape pays for the erasure gauges with 100,000 stored
// erasures: "recount" reads and decodes every record, as scrapes did before the counts were
// kept; "counts" is Stats, which reads the kept counts.
//
//	go test -run x -bench Stats ./service/
func BenchmarkStats(b *testing.B) {
	const n = 100_000
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
	b.Run("recount", func(b *testing.B) {
		for range b.N {
			if err := db.View(func(tx store.Tx) error {
				st, err := recount(tx)
				if err == nil && st.ByState[StateReceived] != n {
					b.Fatalf("recount %s, want %d received", st, n)
				}
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("counts", func(b *testing.B) {
		for range b.N {
			if st, err := s.Stats(); err != nil || st.ByState[StateReceived] != n {
				b.Fatalf("Stats = %s, %v; want %d received", st, err, n)
			}
		}
	})
}

package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// RunStore measures the store's own group commit — store.Open, DB.Update, Tx.Put and Tx.Append,
// nothing of the service or gRPC — with l.Concurrency writers putting layout, in a fresh database
// under dir. Between the raw layout and Submit it tells what the store adds to bbolt (its
// committer, the event log, the revision) from what the service and gRPC add on top.
//
// The layout's "events" entry becomes a Tx.Append of the same number of bytes (the store adds the
// revision key itself); every other entry a Tx.Put into the store bucket of that name. As in
// Submit, keys are made before Update — the store may run an update function more than once, so
// the function has no side effects — and ascending keys come from a counter, in roughly commit
// order, as Submit's UUIDv7s do.
func RunStore(ctx context.Context, dir string, layout Layout, l Load) (Point, error) {
	if err := checkLayout(layout); err != nil {
		return Point{}, err
	}
	db, err := boltstore.Open(filepath.Join(dir, "store.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		return Point{}, err
	}
	p, err := runUpdates(ctx, db, layout, l)
	return p, errors.Join(err, db.Close())
}

// checkLayout refuses a layout with a bucket the store does not have.
func checkLayout(layout Layout) error {
	for _, p := range layout {
		if _, ok := bucketsByName[p.Bucket]; !ok && p.Bucket != "events" {
			return fmt.Errorf("store: no bucket %q", p.Bucket)
		}
	}
	return nil
}

// bucketsByName are the service's buckets by name.
var bucketsByName = func() map[string]store.Bucket {
	m := map[string]store.Bucket{}
	for _, b := range schema.Buckets {
		m[b.String()] = b
	}
	return m
}()

// runUpdates drives db with l.Concurrency writers, each Update putting layout (see RunStore).
func runUpdates(ctx context.Context, db store.DB, layout Layout, l Load) (Point, error) {
	byName := bucketsByName

	type write struct{ keys, values [][]byte }
	writes := make([]write, l.Concurrency)
	for w := range writes {
		for _, p := range layout {
			writes[w].keys = append(writes[w].keys, make([]byte, p.Key))
			// An event is stored as uvarint(len(key)) + key + value: with an empty key, one byte + value.
			writes[w].values = append(writes[w].values, make([]byte, max(p.Value-btoi(p.Bucket == "events"), 0)))
		}
	}
	var seq atomic.Uint64
	return drive(ctx, l, func(ctx context.Context, worker, _ int) error {
		wr := writes[worker] // reusable at once: Put and Append copy what they keep
		n := seq.Add(1)
		for i, p := range layout {
			if p.RandomKey {
				fillRandom(wr.keys[i])
			} else {
				binary.BigEndian.PutUint64(wr.keys[i], n)
			}
		}
		return db.Update(ctx, func(tx store.Tx) error {
			for i, p := range layout {
				var err error
				if p.Bucket == "events" {
					_, err = tx.Append("", wr.values[i])
				} else {
					err = tx.Put(byName[p.Bucket], wr.keys[i], wr.values[i])
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// countingDB counts the Updates of a DB that succeed.
type countingDB struct {
	store.DB
	n *atomic.Int64
}

func (c countingDB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	err := c.DB.Update(ctx, fn)
	if err == nil {
		c.n.Add(1)
	}
	return err
}

package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The raw baseline is the ceiling the store's group commit aims at: bbolt driven directly, with
// nothing between the writers and the commit but a channel. One committer goroutine takes
// everything queued while the previous commit synced, writes it in one transaction, commits (fsync)
// once and replies to every writer. No timer, no re-runs, no event log, no gRPC.
//
// What a write puts is a Layout. The baseline is OneRecord: a record of the size Submit
// stores, appended under a sequence number in one bucket — the cheapest write bbolt has. Submit
// itself spreads the same bytes over one entry in each of several buckets (erasure record, event,
// data key, schedule), each appended at the end of its B+tree;
// SubmitLayout reproduces that, to tell what the layout costs from what the store, the service and
// gRPC cost.

// Put is one key/value pair of a raw write.
type Put struct {
	Bucket     string
	Key, Value int  // sizes in bytes; Key is at least 8 (ascending keys start with a big-endian counter)
	RandomKey  bool // random keys land anywhere in the B+tree; the others ascend (appends)
}

// Layout is what one raw write puts, in one transaction.
type Layout []Put

// OneRecord is a single record of size bytes (an 8-byte key and the value), appended.
func OneRecord(size int) Layout {
	return Layout{{Bucket: "records", Key: 8, Value: max(size-8, 0)}}
}

// SubmitLayout is Submit's layout: per bucket, the mean key and value sizes sb measured. Every key
// Submit writes ascends: erasures and keys are keyed by UUIDv7s (time-ordered), events by revision,
// the schedule by due time. (Until the Submit index moved to memory, Submit also wrote an
// idempotency record and a subject index entry, keyed by request_id and fingerprint, randomly:
// RandomKey reproduces that.)
func SubmitLayout(sb SubmitBytes) Layout {
	var l Layout
	for _, b := range sb.bucketNames() {
		s := sb.Buckets[b]
		l = append(l, Put{Bucket: b, Key: max(s.Key, 8), Value: s.Value})
	}
	return l
}

// Bytes is the keys plus values of one write.
func (l Layout) Bytes() int {
	n := 0
	for _, p := range l {
		n += p.Key + p.Value
	}
	return n
}

// rawWrite is one writer's write waiting for the committer.
type rawWrite struct {
	keys, values [][]byte   // by Put; ascending keys get their sequence number from the committer
	done         chan error // buffered: the committer never waits for a writer
}

// RunRaw measures the raw group commit with l.Concurrency writers putting layout, in a fresh
// database under dir.
func RunRaw(ctx context.Context, dir string, layout Layout, l Load) (Point, error) {
	db, err := bolt.Open(filepath.Join(dir, "raw.db"), 0o600, &bolt.Options{
		Timeout:        time.Second,
		FreelistType:   bolt.FreelistMapType, // as the store opens it
		NoFreelistSync: false,                // as the store opens it
	})
	if err != nil {
		return Point{}, fmt.Errorf("raw: open: %w", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, p := range layout {
			if _, err := tx.CreateBucketIfNotExists([]byte(p.Bucket)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return Point{}, errors.Join(fmt.Errorf("raw: create buckets: %w", err), db.Close())
	}

	queue := make(chan *rawWrite, l.Concurrency)
	committed := make(chan struct{})
	var commits, carried int
	before := pagesWritten(db)
	go func() { // owned by RunRaw: it ends when queue is closed below
		defer close(committed)
		commits, carried = commitLoop(db, layout, queue)
	}()

	writes := make([]*rawWrite, l.Concurrency)
	for w := range writes {
		wr := &rawWrite{done: make(chan error, 1)}
		for _, p := range layout {
			// bbolt does not compress: the content of a value does not matter, only its size.
			wr.keys = append(wr.keys, make([]byte, p.Key))
			wr.values = append(wr.values, make([]byte, p.Value))
		}
		writes[w] = wr
	}
	p, err := drive(ctx, l, func(ctx context.Context, worker, _ int) error {
		// A writer reuses its buffers: the committer is done with them once it has replied.
		wr := writes[worker]
		for i, p := range layout {
			if p.RandomKey {
				fillRandom(wr.keys[i])
			}
		}
		queue <- wr
		return <-wr.done
	})
	close(queue)
	<-committed
	p.Commits, p.Writes, p.Pages = commits, carried, int(pagesWritten(db)-before)
	return p, errors.Join(err, db.Close())
}

// commitLoop is the baseline's committer: it blocks for the first queued write, then takes every
// other write already queued, and commits them together. It returns how many commits it made and
// how many writes they carried.
func commitLoop(db *bolt.DB, layout Layout, queue <-chan *rawWrite) (commits, writes int) {
	var seq uint64
	group := make([]*rawWrite, 0, cap(queue))
	for first := range queue {
		group = append(group[:0], first)
	drain:
		for {
			select {
			case wr, ok := <-queue:
				if !ok {
					break drain
				}
				group = append(group, wr)
			default:
				break drain
			}
		}
		err := db.Update(func(tx *bolt.Tx) error {
			for _, wr := range group {
				seq++
				for i, p := range layout {
					if !p.RandomKey {
						binary.BigEndian.PutUint64(wr.keys[i], seq) // zero padding after it keeps the order
					}
					if err := tx.Bucket([]byte(p.Bucket)).Put(wr.keys[i], wr.values[i]); err != nil {
						return err
					}
				}
			}
			return nil
		})
		commits, writes = commits+1, writes+len(group)
		for _, wr := range group {
			wr.done <- err
		}
	}
	return commits, writes
}

// pagesWritten is how many pages bbolt has written to the file since it was opened.
func pagesWritten(db *bolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetWrite()
}

func fillRandom(b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rand.Uint64())
		copy(b[i:], w[:])
	}
}

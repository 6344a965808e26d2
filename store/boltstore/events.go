package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/erasured/erasured/store"
)

// compactChunk is how many events one compaction transaction deletes, so writers are not starved.
const compactChunk = 4096

// scanMax is how many events one ring or disk pass of a catching-up watcher examines before letting
// go of the hub lock or the read transaction (filtered watchers may skip many).
const scanMax = 4096

// encodeEvent lays an event out as uvarint(len(key)) key value.
func encodeEvent(key string, value []byte) []byte {
	enc := make([]byte, 0, binary.MaxVarintLen64+len(key)+len(value))
	enc = binary.AppendUvarint(enc, uint64(len(key)))
	enc = append(enc, key...)
	return append(enc, value...)
}

// decodeEventKey returns the key of an encoded event and where its value starts.
func decodeEventKey(enc []byte) (key []byte, valueAt int, err error) {
	n, l := binary.Uvarint(enc)
	if l <= 0 || n > uint64(len(enc)-l) {
		return nil, 0, errors.New("store: corrupt event")
	}
	end := l + int(n)
	return enc[l:end], end, nil
}

// Rev implements store.DB.
func (db *DB) Rev() uint64 { return db.hub.Rev() }

// Oldest implements store.DB: the compacted revision + 1.
func (db *DB) Oldest() uint64 { return db.hub.Oldest() }

// Events implements store.DB. It reads the in-memory ring when the ring still holds from, the file
// otherwise.
func (db *DB) Events(from uint64, limit int) ([]store.Event, error) {
	return db.hub.Events(from, limit, func(from, upTo uint64, limit int) ([]store.Event, error) {
		evs, _, err := db.readEvents(from, upTo, "", limit, -1)
		return evs, err
	})
}

// readEvents reads events from the file: Rev in [from, upTo], only those about key unless key is "",
// at most limit of them, examining at most scan events (scan < 0: no bound). next is the revision after
// the last one examined. The check against the compacted revision happens in the same read
// transaction as the reads, so a concurrent compaction cannot open a gap.
func (db *DB) readEvents(from, upTo uint64, key string, limit, scan int) (evs []store.Event, next uint64, err error) {
	next = from
	err = db.View(func(stx store.Tx) error {
		tx := stx.(*boltTx)
		compacted, err := metaU64(tx.btx.Bucket(metaBucket.key()), metaCompacted)
		if err != nil {
			return err
		}
		if from <= compacted {
			return &store.CompactedError{Requested: from, Oldest: compacted + 1}
		}
		c := tx.btx.Bucket(eventsBucket.key()).Cursor()
		for k, v := c.Seek(store.U64(from)); k != nil && len(evs) < limit && scan != 0; k, v = c.Next() {
			rev, err := store.ParseU64(k)
			if err != nil {
				return err
			}
			if rev > upTo {
				break
			}
			if rev != next {
				return fmt.Errorf("store: event log has a gap: revision %d follows %d", rev, next-1)
			}
			next = rev + 1
			scan--
			ev, ok, err := decodeEvent(rev, v, key)
			if err != nil {
				return err
			}
			if ok {
				evs = append(evs, ev)
			}
		}
		return nil
	})
	return evs, next, err
}

// decodeEvent copies an event out of the file, unless key is set and the event is about another key.
func decodeEvent(rev uint64, enc []byte, key string) (store.Event, bool, error) {
	k, at, err := decodeEventKey(enc)
	if err != nil {
		return store.Event{}, false, fmt.Errorf("revision %d: %w", rev, err)
	}
	if key != "" && string(k) != key {
		return store.Event{}, false, nil
	}
	ev := store.Event{Rev: rev, Key: string(k)}
	if at < len(enc) {
		ev.Value = append([]byte{}, enc[at:]...)
	}
	return ev, true, nil
}

// Compact implements store.DB. It deletes in chunks of a few thousand events, each its own group-committed transaction that also
// records the new compacted revision, so writers keep going in between. Compacting to a revision at or
// below Oldest() is a no-op.
func (db *DB) Compact(ctx context.Context, rev uint64) error {
	if cur := db.Rev(); rev > cur {
		return fmt.Errorf("%w: compact to %d, current revision is %d", store.ErrFutureRevision, rev, cur)
	}
	for {
		var done bool
		err := db.Update(ctx, func(stx store.Tx) error {
			tx := stx.(*boltTx)
			done = false
			meta := tx.btx.Bucket(metaBucket.key())
			compacted, err := metaU64(meta, metaCompacted)
			if err != nil {
				return err
			}
			if compacted+1 >= rev {
				done = true
				return nil
			}
			end := min(compacted+db.compactChunk, rev-1)
			tx.dirty = true
			events := tx.btx.Bucket(eventsBucket.key())
			// Committed history has no gaps, so the keys to delete are exactly these numbers.
			for r := compacted + 1; r <= end; r++ {
				if err := events.Delete(store.U64(r)); err != nil {
					return fmt.Errorf("store: compact revision %d: %w", r, err)
				}
			}
			if err := meta.Put(metaCompacted, store.U64(end)); err != nil {
				return err
			}
			tx.st.compacted = end
			done = end+1 >= rev
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

package boltstore

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/erasured/erasured/store"
)

// errTxDone is returned when a Tx is used after its function returned.
var errTxDone = errors.New("store: transaction used after its function returned")

// boltTx is the store.Tx handed to an Update or View function: a bbolt transaction, shared by the
// functions of one group. It is valid only until its function returns.
type boltTx struct {
	db    *DB
	btx   *bolt.Tx
	st    *txState // nil in View: the transaction is read-only
	dirty bool     // a write was attempted; a failing fn then forces a rollback of its group
	call  *call    // the Update call whose function this is; nil in View
}

// Context implements store.Tx.
func (tx *boltTx) Context() context.Context {
	if tx.call == nil || tx.call.ctx == nil {
		return context.Background()
	}
	return tx.call.ctx
}

// txState is what the update functions of one group share inside one bbolt transaction.
type txState struct {
	startRev  uint64        // revision in meta when the bbolt transaction began
	rev       uint64        // latest revision appended in this transaction
	compacted uint64        // new compacted revision written by Compact, or 0
	events    []store.Event // appended in this transaction, in revision order
}

func (st *txState) reset(btx *bolt.Tx) error {
	rev, err := metaU64(btx.Bucket(metaBucket.key()), metaRev)
	if err != nil {
		return err
	}
	clear(st.events)
	*st = txState{startRev: rev, rev: rev, events: st.events[:0]}
	return nil
}

// finish ends the Tx's validity.
func (tx *boltTx) finish() { tx.btx = nil }

// bucket finds a declared bucket, returning it as declared (its hints are the declaration's).
func (tx *boltTx) bucket(b store.Bucket) (*bolt.Bucket, bucket, error) {
	if tx.btx == nil {
		return nil, bucket{}, errTxDone
	}
	d, ok := tx.db.buckets[b.Name]
	if !ok {
		return nil, bucket{}, fmt.Errorf("%w: %q was not declared", store.ErrNoBucket, b.Name)
	}
	bb := tx.btx.Bucket(bucket(d).key())
	if bb == nil {
		return nil, bucket{}, fmt.Errorf("%w: %q", store.ErrNoBucket, b.Name)
	}
	return bb, bucket(d), nil
}

func (tx *boltTx) writable(b store.Bucket) (*bolt.Bucket, error) {
	if tx.st == nil {
		return nil, store.ErrReadOnly
	}
	bb, d, err := tx.bucket(b)
	if err != nil {
		return nil, err
	}
	tx.dirty = true
	bb.FillPercent = d.fill()
	return bb, nil
}

// Get implements store.Tx.
func (tx *boltTx) Get(b store.Bucket, key []byte) []byte {
	bb, _, err := tx.bucket(b)
	if err != nil {
		return nil
	}
	v := bb.Get(key)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// Put implements store.Tx.
func (tx *boltTx) Put(b store.Bucket, key, value []byte) error {
	bb, err := tx.writable(b)
	if err != nil {
		return err
	}
	// bbolt copies the key but keeps the value until commit.
	if err := bb.Put(key, append([]byte{}, value...)); err != nil {
		return fmt.Errorf("store: put %s/%x: %w", b, key, err)
	}
	return nil
}

// Delete implements store.Tx.
func (tx *boltTx) Delete(b store.Bucket, key []byte) error {
	bb, err := tx.writable(b)
	if err != nil {
		return err
	}
	if err := bb.Delete(key); err != nil {
		return fmt.Errorf("store: delete %s/%x: %w", b, key, err)
	}
	return nil
}

// Scan implements store.Tx.
func (tx *boltTx) Scan(b store.Bucket, start []byte, fn func(k, v []byte) (more bool, err error)) error {
	bb, _, err := tx.bucket(b)
	if err != nil {
		return err
	}
	c := bb.Cursor()
	k, v := c.First()
	if start != nil {
		k, v = c.Seek(start)
	}
	for ; k != nil; k, v = c.Next() {
		if more, err := fn(k, v); err != nil || !more {
			return err
		}
	}
	return nil
}

// ScanReverse implements store.Tx.
func (tx *boltTx) ScanReverse(b store.Bucket, start []byte, fn func(k, v []byte) (more bool, err error)) error {
	bb, _, err := tx.bucket(b)
	if err != nil {
		return err
	}
	c := bb.Cursor()
	var k, v []byte
	switch {
	case start == nil:
		k, v = c.Last()
	default:
		k, v = c.Seek(start)
		if k == nil {
			k, v = c.Last() // every key is < start
		} else if string(k) != string(start) {
			k, v = c.Prev() // Seek stopped on the first key > start
		}
	}
	for ; k != nil; k, v = c.Prev() {
		if more, err := fn(k, v); err != nil || !more {
			return err
		}
	}
	return nil
}

// Count implements store.Tx. It walks the bucket: O(keys).
func (tx *boltTx) Count(b store.Bucket) int {
	bb, _, err := tx.bucket(b)
	if err != nil {
		return 0
	}
	// Not bb.Stats().KeyN: Stats reads committed pages and misses this transaction's own writes.
	n := 0
	c := bb.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// Append adds an event about key (the resource it concerns, e.g. an erasure id; watchers filter on it)
// to the log and returns its revision: one more than the latest revision, the first ever being 1. The
// revision counter lives in the transaction, so committed history has no gaps even when a group is
// rolled back and re-run.
func (tx *boltTx) Append(key string, value []byte) (rev uint64, err error) {
	if tx.btx == nil {
		return 0, errTxDone
	}
	if tx.st == nil {
		return 0, store.ErrReadOnly
	}
	tx.dirty = true
	bb := tx.btx.Bucket(eventsBucket.key())
	bb.FillPercent = eventsBucket.fill()
	rev = tx.st.rev + 1
	enc := encodeEvent(key, value)
	if err := bb.Put(store.U64(rev), enc); err != nil {
		return 0, fmt.Errorf("store: append revision %d: %w", rev, err)
	}
	tx.st.rev = rev
	ev := store.Event{Rev: rev, Key: key}
	if len(value) > 0 {
		ev.Value = enc[len(enc)-len(value):] // never modified: bbolt, the ring and watchers share it
	}
	tx.st.events = append(tx.st.events, ev)
	return rev, nil
}

// OnCommit registers f to run once this function's writes are durably committed, and not at all if
// they are not (the function fails, or the commit does). Hooks run on the committer, in commit order,
// after the commit and before Update returns to any caller of the group, so an in-memory view kept in
// step with the store by hooks is never behind what a caller has been told. A hook must be quick and
// must not block or use the DB. If the function is run again, only the hooks of its last run count.
func (tx *boltTx) OnCommit(f func()) error {
	if tx.btx == nil {
		return errTxDone
	}
	if tx.call == nil {
		return store.ErrReadOnly
	}
	tx.call.onCommit = append(tx.call.onCommit, f)
	return nil
}

// Rev is the latest revision visible to this transaction, including its own appends.
func (tx *boltTx) Rev() uint64 {
	if tx.btx == nil {
		return 0
	}
	if tx.st != nil {
		return tx.st.rev
	}
	rev, _ := metaU64(tx.btx.Bucket(metaBucket.key()), metaRev)
	return rev
}

package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
)

// errTxDone is returned when a Tx is used after its function returned.
var errTxDone = errors.New("store: transaction used after its function returned")

// scanPage is how many keys one etcd range read of a Scan asks for.
const scanPage = 256

// etcdTx is the store.Tx of an Update function (g set: reads see the group's overlay over its
// base) or of a View (g nil: reads at one etcd revision, found by the first read).
type etcdTx struct {
	db      *DB
	g       *group
	call    *call
	done    bool
	readErr error // the first failed read: the function's outcome is void

	viewRev    int64 // View: the etcd revision every read is at, 0 until the first read
	viewMetaRv uint64

	misses *[]string // a prefetch run: the keys it read that the cache does not hold
}

// View implements store.DB: fn reads one etcd revision, the latest when its first read is made
// (a linearizable read). Reads go to etcd; writes return store.ErrReadOnly. A read that fails
// (etcd unreachable) makes View return that read's error, whatever fn returned: fn saw empty
// answers, so its own error (a missing record, a count of nothing) would mislead. Update does
// the same (see group.run).
func (db *DB) View(fn func(tx store.Tx) error) error {
	if db.isClosing() {
		return store.ErrClosed
	}
	tx := &etcdTx{db: db}
	err := fn(tx)
	tx.done = true
	if tx.readErr != nil {
		return fmt.Errorf("store: read from etcd: %w", tx.readErr)
	}
	return err
}

// Context implements store.Tx.
func (tx *etcdTx) Context() context.Context {
	if tx.call == nil || tx.call.ctx == nil {
		return context.Background()
	}
	return tx.call.ctx
}

func (tx *etcdTx) bucket(b store.Bucket) error {
	if tx.done {
		return errTxDone
	}
	if _, ok := tx.db.buckets[b.Name]; !ok {
		return fmt.Errorf("%w: %q was not declared", store.ErrNoBucket, b.Name)
	}
	return nil
}

func (tx *etcdTx) writable(b store.Bucket, key []byte) error {
	if tx.done {
		return errTxDone
	}
	if tx.g == nil {
		return store.ErrReadOnly
	}
	if err := tx.bucket(b); err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("store: %s: empty key", b)
	}
	return nil
}

// fail records the first failed read, naming the store it read (the endpoints are in the
// start's log line; the prefix tells deployments on one cluster apart).
func (tx *etcdTx) fail(err error) {
	if tx.readErr == nil {
		tx.readErr = fmt.Errorf("prefix %q: %w", tx.db.opts.Prefix, err)
	}
}

// rev is the etcd revision reads are at.
func (tx *etcdTx) rev() (int64, error) {
	if tx.g != nil {
		return tx.g.base.etcdRev, nil
	}
	if tx.viewRev == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), tx.db.opts.RequestTimeout)
		resp, err := tx.db.cli.Get(ctx, tx.db.lay.key(metaRev))
		cancel()
		if err != nil {
			return 0, err
		}
		var v []byte
		if len(resp.Kvs) == 1 {
			v = resp.Kvs[0].Value
		}
		n, err := u64(metaRev, v)
		if err != nil {
			return 0, err
		}
		tx.viewRev, tx.viewMetaRv = resp.Header.Revision, n
	}
	return tx.viewRev, nil
}

// readAt reads key (with opts: a range, a limit) at etcd revision rev, from any member that has it.
func (db *DB) readAt(key string, rev int64, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	db.readRequests.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
	defer cancel()
	opts = append(opts, clientv3.WithRev(rev))
	// A serializable read at a revision already committed is as good as a linearizable one, and
	// any member serves it; one that has not applied rev yet says so, and the leader serves it.
	resp, err := db.cli.Get(ctx, key, append(opts, clientv3.WithSerializable())...)
	if errors.Is(err, rpctypes.ErrFutureRev) {
		resp, err = db.cli.Get(ctx, key, opts...)
	}
	return resp, err
}

// base reads key at the revision the transaction is at: the committer's cache first.
func (tx *etcdTx) baseGet(key string) ([]byte, bool) {
	if tx.g != nil {
		if v, ok, hit := tx.db.cache.get(key); hit {
			return v, ok
		}
	}
	if tx.misses != nil { // a prefetch run: record, find nothing
		*tx.misses = append(*tx.misses, key)
		return nil, false
	}
	rev, err := tx.rev()
	if err != nil {
		tx.fail(err)
		return nil, false
	}
	resp, err := tx.db.readAt(key, rev)
	if err != nil {
		tx.fail(err)
		return nil, false
	}
	var v []byte
	ok := len(resp.Kvs) == 1
	if ok {
		v = resp.Kvs[0].Value
		if v == nil {
			v = []byte{}
		}
	}
	if tx.g != nil {
		tx.db.cache.put(key, v, ok)
	}
	return v, ok
}

// Get implements store.Tx.
func (tx *etcdTx) Get(b store.Bucket, key []byte) []byte {
	if tx.bucket(b) != nil {
		return nil
	}
	k := tx.db.lay.bucketKey(b.Name, key)
	if tx.g != nil {
		if e, ok := tx.g.ov[k]; ok {
			if e.del {
				return nil
			}
			return append([]byte{}, e.val...)
		}
	}
	v, ok := tx.baseGet(k)
	if !ok {
		return nil
	}
	return append([]byte{}, v...)
}

// Put implements store.Tx.
func (tx *etcdTx) Put(b store.Bucket, key, value []byte) error {
	if err := tx.writable(b, key); err != nil {
		return err
	}
	tx.g.write(tx.db.lay.bucketKey(b.Name, key), append([]byte{}, value...), false)
	return nil
}

// Delete implements store.Tx.
func (tx *etcdTx) Delete(b store.Bucket, key []byte) error {
	if err := tx.writable(b, key); err != nil {
		return err
	}
	tx.g.write(tx.db.lay.bucketKey(b.Name, key), nil, true)
	return nil
}

// Scan implements store.Tx: etcd range reads of scanPage keys at the transaction's revision,
// merged with the group's writes.
func (tx *etcdTx) Scan(b store.Bucket, start []byte, fn func(k, v []byte) (more bool, err error)) error {
	return tx.scan(b, start, false, fn)
}

// ScanReverse implements store.Tx.
func (tx *etcdTx) ScanReverse(b store.Bucket, start []byte, fn func(k, v []byte) (more bool, err error)) error {
	return tx.scan(b, start, true, fn)
}

func (tx *etcdTx) scan(b store.Bucket, start []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	if err := tx.bucket(b); err != nil {
		return err
	}
	bp := tx.db.lay.bucketPrefix(b.Name)
	lo, hi := bp, prefixEnd(bp) // the range [lo, hi)
	switch {
	case start != nil && !reverse:
		lo = bp + string(start)
	case start != nil && reverse:
		hi = bp + string(start) + "\x00"
	}
	if tx.misses != nil {
		return nil // a prefetch run reads no range
	}
	var ov []string // the group's written keys in range, in scan order
	if tx.g != nil {
		for k := range tx.g.ov {
			if k >= lo && k < hi {
				ov = append(ov, k)
			}
		}
		slices.Sort(ov)
		if reverse {
			slices.Reverse(ov)
		}
	}
	before := func(a, b string) bool { // a comes before b in scan order
		if reverse {
			return a > b
		}
		return a < b
	}
	stop := false
	emitOv := func(k string) error {
		e := tx.g.ov[k]
		if e.del {
			return nil
		}
		more, err := fn([]byte(k[len(bp):]), e.val)
		stop = !more
		return err
	}
	rev, err := tx.rev()
	if err != nil {
		tx.fail(err)
		return fmt.Errorf("store: scan %s: %w", b, err)
	}
	for {
		kvs, more, err := tx.readPage(lo, hi, rev, reverse)
		if err != nil {
			tx.fail(err)
			return fmt.Errorf("store: scan %s: %w", b, err)
		}
		for _, kv := range kvs {
			k := string(kv.Key)
			for len(ov) > 0 && before(ov[0], k) {
				if err := emitOv(ov[0]); err != nil || stop {
					return err
				}
				ov = ov[1:]
			}
			if len(ov) > 0 && ov[0] == k {
				ov = ov[1:]
				if err := emitOv(k); err != nil || stop {
					return err
				}
				continue
			}
			v := kv.Value
			if v == nil {
				v = []byte{}
			}
			more, err := fn(kv.Key[len(bp):], v)
			if err != nil || !more {
				return err
			}
		}
		if !more || len(kvs) == 0 {
			break
		}
		last := string(kvs[len(kvs)-1].Key)
		if reverse {
			hi = last
		} else {
			lo = last + "\x00"
		}
	}
	for _, k := range ov {
		if err := emitOv(k); err != nil || stop {
			return err
		}
	}
	return nil
}

// Count implements store.Tx: a count at the transaction's revision, corrected for the group's
// writes.
func (tx *etcdTx) Count(b store.Bucket) int {
	if tx.bucket(b) != nil {
		return 0
	}
	if tx.misses != nil {
		return 0 // a prefetch run reads no range
	}
	bp := tx.db.lay.bucketPrefix(b.Name)
	rev, err := tx.rev()
	if err != nil {
		tx.fail(err)
		return 0
	}
	resp, err := tx.db.readAt(bp, rev, clientv3.WithRange(prefixEnd(bp)), clientv3.WithCountOnly())
	if err != nil {
		tx.fail(err)
		return 0
	}
	n := int(resp.Count)
	if tx.g != nil {
		for k, e := range tx.g.ov {
			if !strings.HasPrefix(k, bp) {
				continue
			}
			_, existed := tx.baseGet(k)
			switch {
			case existed && e.del:
				n--
			case !existed && !e.del:
				n++
			}
		}
	}
	return n
}

// Append implements store.Tx: the event gets the next revision of the group, whose counter
// starts from the base's meta/rev, so committed history has no gaps whatever fails or runs again.
func (tx *etcdTx) Append(key string, value []byte) (uint64, error) {
	if tx.done {
		return 0, errTxDone
	}
	if tx.g == nil {
		return 0, store.ErrReadOnly
	}
	return tx.g.appendEvent(key, value), nil
}

// OnCommit implements store.Tx.
func (tx *etcdTx) OnCommit(f func()) error {
	if tx.done {
		return errTxDone
	}
	if tx.call == nil {
		return store.ErrReadOnly
	}
	tx.call.onCommit = append(tx.call.onCommit, f)
	return nil
}

// Rev implements store.Tx.
func (tx *etcdTx) Rev() uint64 {
	if tx.done {
		return 0
	}
	if tx.g != nil {
		return tx.g.rev
	}
	if _, err := tx.rev(); err != nil {
		tx.fail(err)
		return 0
	}
	return tx.viewMetaRv
}

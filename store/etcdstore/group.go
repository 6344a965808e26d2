package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
)

// opOverhead is what one operation adds to a transaction's size beyond its key and value (the
// protobuf framing, generously).
const opOverhead = 32

// group is one run of a group's update functions: their writes and appends over a base.
type group struct {
	db        *DB
	base      base
	ov        map[string]*ovEntry // etcd key → the group's last write of it
	journal   []undoRec           // what each write replaced, to undo a failed function
	events    []store.Event
	enc       [][]byte // the events' encodings, as written
	rev       uint64   // the latest revision, the group's appends included
	bytes     int      // the transaction's estimated size
	compactTo uint64   // Compact: delete the events below this revision (0: none)
}

type ovEntry struct {
	val []byte
	del bool
}

type undoRec struct {
	key  string
	prev *ovEntry // nil: the key was not written before
}

// mark is where a function started, to undo it.
type mark struct {
	journal, events int
	rev             uint64
	bytes           int
	compactTo       uint64
}

func newGroup(db *DB) *group {
	return &group{db: db, base: db.base, ov: make(map[string]*ovEntry), rev: db.base.rev}
}

func (g *group) mark() mark {
	return mark{journal: len(g.journal), events: len(g.events), rev: g.rev, bytes: g.bytes, compactTo: g.compactTo}
}

// undo drops every write and append made since m.
func (g *group) undo(m mark) {
	for i := len(g.journal) - 1; i >= m.journal; i-- {
		u := g.journal[i]
		if u.prev == nil {
			delete(g.ov, u.key)
		} else {
			g.ov[u.key] = u.prev
		}
	}
	clear(g.journal[m.journal:])
	g.journal = g.journal[:m.journal]
	clear(g.events[m.events:])
	g.events = g.events[:m.events]
	clear(g.enc[m.events:])
	g.enc = g.enc[:m.events]
	g.rev, g.bytes, g.compactTo = m.rev, m.bytes, m.compactTo
}

func (g *group) write(key string, val []byte, del bool) {
	g.journal = append(g.journal, undoRec{key: key, prev: g.ov[key]})
	g.ov[key] = &ovEntry{val: val, del: del}
	g.bytes += len(key) + len(val) + opOverhead
}

func (g *group) appendEvent(key string, value []byte) uint64 {
	g.rev++
	enc := encodeEvent(key, value)
	ev := store.Event{Rev: g.rev, Key: key}
	if len(value) > 0 {
		ev.Value = enc[len(enc)-len(value):] // never modified: etcd, the ring and watchers share it
	}
	g.events = append(g.events, ev)
	g.enc = append(g.enc, enc)
	g.bytes += len(g.db.lay.eventKey(g.rev)) + len(enc) + opOverhead
	return g.rev
}

// writes reports whether the group has anything to write.
func (g *group) writes() bool {
	return len(g.ov) > 0 || len(g.events) > 0 || g.compactTo > 0
}

// opCount is the number of operations of the group's transaction.
func (g *group) opCount() int {
	n := 2 + len(g.ov) + len(g.events) // meta/seq, the commit key
	if g.rev != g.base.rev {
		n++ // meta/rev
	}
	if g.compactTo > 0 {
		n += 2 // the range delete, meta/oldest
	}
	return n
}

// oldest is meta/oldest once the group commits.
func (g *group) oldest() uint64 {
	if g.compactTo > 0 {
		return g.compactTo
	}
	return g.base.oldest
}

// ops are the group's writes (but the counters the committer adds).
func (g *group) ops() []clientv3.Op {
	lay := g.db.lay
	ops := make([]clientv3.Op, 0, g.opCount())
	if g.rev != g.base.rev {
		ops = append(ops, clientv3.OpPut(lay.key(metaRev), string(store.U64(g.rev))))
	}
	for k, e := range g.ov {
		if e.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(e.val)))
		}
	}
	for i, ev := range g.events {
		ops = append(ops, clientv3.OpPut(lay.eventKey(ev.Rev), string(g.enc[i])))
	}
	if g.compactTo > 0 {
		ops = append(ops,
			clientv3.OpDelete(lay.eventKey(g.base.oldest), clientv3.WithRange(lay.eventKey(g.compactTo))),
			clientv3.OpPut(lay.key(metaOldest), string(store.U64(g.compactTo))))
	}
	return ops
}

// run runs c's function over the group. It returns false when the function's writes do not fit
// in the transaction beside those before it (they are undone; c goes to the next transaction),
// and an error when a read failed, which voids the whole run.
func (g *group) run(c *call, first bool) (fits bool, voidErr error) {
	m := g.mark()
	tx := &etcdTx{db: g.db, g: g, call: c}
	c.onCommit = c.onCommit[:0]
	if c.fence != nil && c.fence.ended() {
		c.err = fmt.Errorf("%w: term %d has ended", store.ErrNotLeader, c.fence.rev)
		c.onCommit = nil
		return true, nil
	}
	c.err = runFn(c.fn, tx)
	tx.done = true
	if tx.readErr != nil {
		g.undo(m)
		c.onCommit = nil
		return false, tx.readErr
	}
	if c.err != nil {
		g.undo(m)
		c.onCommit = nil // a failed function's writes do not commit, nor do its hooks run
		return true, nil
	}
	if ops := g.opCount(); ops > g.db.maxOps || g.bytes > g.db.maxBytes {
		g.undo(m)
		if first {
			c.err = fmt.Errorf("%w: %d operations, %d bytes; the limits are %d and %d (etcd's --max-txn-ops and --max-request-bytes)",
				errTooLarge, ops, g.bytes, g.db.maxOps, g.db.maxBytes)
			c.onCommit = nil
			return true, nil
		}
		return false, nil
	}
	return true, nil
}

// prefetch makes the point reads of a group in one etcd request instead of one round trip
// after another on the committer. It runs each function once beforehand (which the contract
// allows), one after another, over a private overlay of the base in which reads that miss the
// cache find nothing (and Scan and Count see an empty bucket) and are only recorded; then it
// reads every recorded key at the base's revision in read-only transactions and fills the cache.
// Those runs' writes, hooks and results are thrown away, and what they got wrong by finding
// nothing (a key read only because another was present) the real run reads itself.
//
// It stops once the dry runs have written more than one transaction holds: the functions after
// that go in a later transaction, whose own prefetch runs them. Without the stop, a queue of n
// functions of which k fit in a transaction had its tail dry-run n/k times.
func (db *DB) prefetch(live []*call) {
	if db.opts.NoPrefetch || len(live) < 2 {
		return
	}
	var keys []string
	seen := make(map[string]bool)
	written := make(map[string]bool) // what the dry runs wrote: a group writes each key once
	ops, bytes := newGroup(db).opCount(), 0
	for _, c := range live {
		if ops > db.maxOps || bytes > db.maxBytes {
			break
		}
		if c.fence != nil && c.fence.ended() {
			continue
		}
		var misses []string
		tx := &etcdTx{db: db, g: newGroup(db), call: &call{ctx: c.ctx}, misses: &misses}
		_ = runFn(c.fn, tx)
		tx.done = true
		for _, k := range misses {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		for k := range tx.g.ov {
			if !written[k] {
				written[k] = true
				ops++
			}
		}
		ops += len(tx.g.events)
		bytes += tx.g.bytes
	}
	if len(keys) < 2 {
		return // the real run reads it as fast
	}
	for len(keys) > 0 {
		n := min(len(keys), db.maxOps)
		if err := db.readInto(keys[:n]); err != nil {
			return // the real run meets the error itself
		}
		keys = keys[n:]
	}
}

// readInto reads keys at the base's revision in one read-only transaction and caches them.
func (db *DB) readInto(keys []string) error {
	db.readRequests.Add(1)
	rev := db.base.etcdRev
	read := func(serializable bool) (*clientv3.TxnResponse, error) {
		ops := make([]clientv3.Op, len(keys))
		for i, k := range keys {
			opts := []clientv3.OpOption{clientv3.WithRev(rev)}
			if serializable {
				opts = append(opts, clientv3.WithSerializable())
			}
			ops[i] = clientv3.OpGet(k, opts...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
		defer cancel()
		return db.cli.Txn(ctx).Then(ops...).Commit()
	}
	resp, err := read(true)
	if errors.Is(err, rpctypes.ErrFutureRev) {
		resp, err = read(false)
	}
	if err != nil {
		return err
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 1 {
			v := kvs[0].Value
			if v == nil {
				v = []byte{}
			}
			db.cache.put(keys[i], v, true)
		} else {
			db.cache.put(keys[i], nil, false)
		}
	}
	return nil
}

// applyToCache records the group's committed writes in the committer's cache: its point reads
// and its scans' pages.
func (g *group) applyToCache(c *readCache) {
	for k, e := range g.ov {
		c.put(k, e.val, !e.del)
	}
	for pk, p := range c.pages {
		if np, ok := p.with(pk, g.ov); ok {
			c.pages[pk] = np
			c.bytes += np.bytes() - p.bytes()
		} else {
			delete(c.pages, pk)
		}
	}
}

// readCache holds point reads and scan pages of the committer's base: valid as long as meta/seq
// has the base's value, since every write transaction bumps it.
type readCache struct {
	m     map[string]cached
	pages map[pageKey]*cachedPage
	bytes int
}

// pageKey names a range read of a scan: the keys of [lo, hi) from lo up, or from hi down.
type pageKey struct {
	lo, hi  string
	reverse bool
}

// cachedPage is a range read of the base: kvs are the range's first keys in scan order (at most
// 2 × scanPage of them); more says that keys remain past the last one.
type cachedPage struct {
	kvs  []*mvccpb.KeyValue
	more bool
}

func (p *cachedPage) bytes() int {
	n := 0
	for _, kv := range p.kvs {
		n += len(kv.Key) + len(kv.Value) + 48
	}
	return n
}

// covers reports whether key k lies in the part of range pk that p holds.
func (p *cachedPage) covers(pk pageKey, k string) bool {
	if k < pk.lo || k >= pk.hi {
		return false
	}
	if !p.more {
		return true
	}
	last := string(p.kvs[len(p.kvs)-1].Key)
	if pk.reverse {
		return k >= last
	}
	return k <= last
}

// with is p after the writes ov committed: the writes in the part p holds are merged in (the keys
// past it are read from etcd when a scan gets there). It returns p itself when ov touches none of
// it, and false when nothing of p is left to hold.
func (p *cachedPage) with(pk pageKey, ov map[string]*ovEntry) (*cachedPage, bool) {
	var touched []string
	for k := range ov {
		if p.covers(pk, k) {
			touched = append(touched, k)
		}
	}
	if len(touched) == 0 {
		return p, true
	}
	byKey := make(map[string]*mvccpb.KeyValue, len(p.kvs)+len(touched))
	for _, kv := range p.kvs {
		byKey[string(kv.Key)] = kv
	}
	for _, k := range touched {
		if e := ov[k]; e.del {
			delete(byKey, k)
		} else {
			byKey[k] = &mvccpb.KeyValue{Key: []byte(k), Value: e.val}
		}
	}
	np := &cachedPage{kvs: make([]*mvccpb.KeyValue, 0, len(byKey)), more: p.more}
	for _, kv := range byKey {
		np.kvs = append(np.kvs, kv)
	}
	slices.SortFunc(np.kvs, func(a, b *mvccpb.KeyValue) int {
		if pk.reverse {
			return bytes.Compare(b.Key, a.Key)
		}
		return bytes.Compare(a.Key, b.Key)
	})
	if len(np.kvs) > 2*scanPage { // a trail appended to at every commit: keep its first page
		clear(np.kvs[scanPage:])
		np.kvs, np.more = np.kvs[:scanPage], true
	}
	if np.more && len(np.kvs) == 0 {
		return nil, false // where it stopped is lost: read it again
	}
	return np, true
}

// readPage is one range read of a scan: the keys of [lo, hi) from its start, at most scanPage of
// them (it may return more from the cache), at rev. In an Update the committer's cache answers
// it when it holds the page, and keeps it otherwise: the scans every function of a group makes
// (a trail's last entry, the newest of some keys) then cost one etcd request between commits
// that write the range, not one per function.
func (tx *etcdTx) readPage(lo, hi string, rev int64, reverse bool) (kvs []*mvccpb.KeyValue, more bool, err error) {
	pk := pageKey{lo: lo, hi: hi, reverse: reverse}
	if tx.g != nil {
		if p, hit := tx.db.cache.pages[pk]; hit {
			return p.kvs, p.more, nil
		}
	}
	opts := []clientv3.OpOption{clientv3.WithRange(hi), clientv3.WithLimit(scanPage)}
	if reverse {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	}
	resp, err := tx.db.readAt(lo, rev, opts...)
	if err != nil {
		return nil, false, err
	}
	if tx.g != nil && (len(resp.Kvs) > 0 || !resp.More) {
		tx.db.cache.putPage(pk, &cachedPage{kvs: resp.Kvs, more: resp.More})
	}
	return resp.Kvs, resp.More, nil
}

type cached struct {
	v  []byte
	ok bool
}

// cacheMax bounds the cache's memory; past it, the cache starts again empty.
const cacheMax = 32 << 20

func (c *readCache) init() {
	c.m = make(map[string]cached)
	c.pages = make(map[pageKey]*cachedPage)
}

func (c *readCache) clear() {
	clear(c.m)
	clear(c.pages)
	c.bytes = 0
}

func (c *readCache) putPage(pk pageKey, p *cachedPage) {
	if c.bytes > cacheMax {
		c.clear()
	}
	c.pages[pk] = p
	c.bytes += p.bytes()
}

func (c *readCache) get(key string) (v []byte, ok, hit bool) {
	e, hit := c.m[key]
	return e.v, e.ok, hit
}

func (c *readCache) put(key string, v []byte, ok bool) {
	if c.bytes > cacheMax {
		c.clear()
	}
	c.m[key] = cached{v: v, ok: ok}
	c.bytes += len(key) + len(v) + 48
}

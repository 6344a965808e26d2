package etcdstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
)

// The dump format of Backup and Restore, version 1. Every number is big-endian:
//
//	"erasured etcdstore dump\n"   24 bytes
//	version                       8 bytes (1)
//	revision                      8 bytes (the store's revision in the dump)
//	records, each:                uvarint(len(key)) key uvarint(len(value)) value
//	                              (key relative to the prefix; never empty)
//	end:                          uvarint(0)
//	record count                  8 bytes
//	CRC-32C of all of the above   4 bytes
//
// A dump holds every key under the prefix at one etcd revision, but the election's (leases do
// not survive a restore) and the openers' commit keys.
const (
	dumpMagic   = "erasured etcdstore dump\n"
	dumpVersion = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// dumped reports whether the key (relative to the prefix) belongs in a dump.
func dumped(rel string) bool {
	return !strings.HasPrefix(rel, leaderDir+"/") && !strings.HasPrefix(rel, metaCommits)
}

// Backup implements store.DB: a dump of the prefix at one etcd revision (the format is above),
// written to a temporary file (mode 0600, removed when fn returns) by paged range reads that
// leave the writers alone. An etcd compaction of that revision during the dump makes it start
// again at a newer one.
func (db *DB) Backup(fn func(s store.Snapshot) error) error {
	if db.isClosing() {
		return store.ErrClosed
	}
	f, err := os.CreateTemp("", "erasured-etcd-backup-*")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	var snap store.Snapshot
	for attempt := 0; ; attempt++ {
		snap, err = db.dumpTo(f)
		if err == nil || attempt >= 2 || !errors.Is(err, errDumpCompacted) {
			break
		}
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return fmt.Errorf("store: backup: %w", serr)
		}
		if terr := f.Truncate(0); terr != nil {
			return fmt.Errorf("store: backup: %w", terr)
		}
	}
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	snap.Data = io.LimitReader(f, snap.Size)
	return fn(snap)
}

var errDumpCompacted = errors.New("etcd compacted the dump's revision")

// dumpTo writes a dump to w.
func (db *DB) dumpTo(w io.Writer) (store.Snapshot, error) {
	// The revision first: the dump holds meta/rev, but the header comes before the records.
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
	resp, err := db.cli.Get(ctx, db.lay.key(metaRev))
	cancel()
	if err != nil {
		return store.Snapshot{}, err
	}
	at := resp.Header.Revision
	var rev uint64
	if len(resp.Kvs) == 1 {
		if rev, err = u64(metaRev, resp.Kvs[0].Value); err != nil {
			return store.Snapshot{}, err
		}
	}
	dw := newDumpWriter(w, rev)
	lo, hi := db.opts.Prefix, prefixEnd(db.opts.Prefix)
	for {
		page, err := db.readAt(lo, at, clientv3.WithRange(hi), clientv3.WithLimit(scanPage))
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return store.Snapshot{}, fmt.Errorf("%w: %v", errDumpCompacted, err)
			}
			return store.Snapshot{}, err
		}
		for _, kv := range page.Kvs {
			rel := string(kv.Key[len(db.opts.Prefix):])
			if dumped(rel) {
				dw.record(rel, kv.Value)
			}
		}
		if !page.More || len(page.Kvs) == 0 {
			break
		}
		lo = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
	}
	n, err := dw.close()
	if err != nil {
		return store.Snapshot{}, err
	}
	return store.Snapshot{Rev: rev, Size: n}, nil
}

// dumpWriter writes the dump format.
type dumpWriter struct {
	w     *bufio.Writer
	crc   hash.Hash32
	cw    *countWriter
	count uint64
	err   error
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newDumpWriter(w io.Writer, rev uint64) *dumpWriter {
	cw := &countWriter{w: w}
	d := &dumpWriter{crc: crc32.New(crcTable), cw: cw}
	d.w = bufio.NewWriter(io.MultiWriter(cw, d.crc))
	d.put([]byte(dumpMagic))
	d.put(store.U64(dumpVersion))
	d.put(store.U64(rev))
	return d
}

func (d *dumpWriter) put(b []byte) {
	if d.err == nil {
		_, d.err = d.w.Write(b)
	}
}

func (d *dumpWriter) record(key string, value []byte) {
	d.put(binary.AppendUvarint(nil, uint64(len(key))))
	d.put([]byte(key))
	d.put(binary.AppendUvarint(nil, uint64(len(value))))
	d.put(value)
	d.count++
}

// close writes the end and the checksum and returns the dump's size.
func (d *dumpWriter) close() (int64, error) {
	d.put(binary.AppendUvarint(nil, 0))
	d.put(store.U64(d.count))
	if d.err == nil {
		d.err = d.w.Flush()
	}
	if d.err != nil {
		return 0, d.err
	}
	if _, err := d.cw.Write(binary.BigEndian.AppendUint32(nil, d.crc.Sum32())); err != nil {
		return 0, err
	}
	return d.cw.n, nil
}

// readDump checks a whole dump (magic, version, checksum, count) and calls fn for each record.
func readDump(data []byte, fn func(key string, value []byte) error) (rev uint64, err error) {
	corrupt := func(what string) error { return fmt.Errorf("store: restore: not a valid dump: %s", what) }
	if len(data) < len(dumpMagic)+16+1+8+4 || string(data[:len(dumpMagic)]) != dumpMagic {
		return 0, corrupt("no dump header")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return 0, corrupt("checksum mismatch (truncated or damaged)")
	}
	p := body[len(dumpMagic):]
	if v := binary.BigEndian.Uint64(p); v != dumpVersion {
		return 0, fmt.Errorf("store: restore: dump version %d, this binary reads %d", v, dumpVersion)
	}
	rev = binary.BigEndian.Uint64(p[8:])
	p = p[16:]
	var count uint64
	for {
		kl, n := binary.Uvarint(p)
		if n <= 0 || kl > uint64(len(p)-n) {
			return 0, corrupt("bad record")
		}
		p = p[n:]
		if kl == 0 {
			break
		}
		key := string(p[:kl])
		p = p[kl:]
		vl, n := binary.Uvarint(p)
		if n <= 0 || vl > uint64(len(p)-n) {
			return 0, corrupt("bad record")
		}
		value := p[n : n+int(vl)]
		p = p[n+int(vl):]
		count++
		if fn != nil {
			if err := fn(key, value); err != nil {
				return 0, err
			}
		}
	}
	if len(p) != 8 || binary.BigEndian.Uint64(p) != count {
		return 0, corrupt("record count mismatch")
	}
	return rev, nil
}

// Restore loads a dump written by Backup into opts.Prefix, which must hold no key. It checks the
// whole dump before writing anything, writes the keys in transactions of at most opts.MaxTxnOps
// operations, and the format key last, so that a restore cut short leaves a prefix Open refuses
// (keys but no format) rather than a partial store. Only opts' Endpoints (or Client), TLS,
// credentials, Prefix and the limits are used.
func Restore(ctx context.Context, opts Options, r io.Reader) error {
	opts = opts.withDefaults()
	if err := checkPrefix(opts.Prefix); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return fmt.Errorf("store: restore: read dump: %w", err)
	}
	data := buf.Bytes()
	if _, err := readDump(data, nil); err != nil {
		return err
	}
	cli, own, err := dial(opts)
	if err != nil {
		return err
	}
	if own {
		defer cli.Close()
	}
	resp, err := cli.Get(ctx, opts.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if resp.Count != 0 {
		return fmt.Errorf("store: restore: the etcd prefix %q is not empty (%d keys)", opts.Prefix, resp.Count)
	}
	formatKey := opts.Prefix + metaFormat
	noFormat := clientv3.Compare(clientv3.CreateRevision(formatKey), "=", 0)
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		tresp, err := cli.Txn(ctx).If(noFormat).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("store: restore: %w", err)
		}
		if !tresp.Succeeded {
			return fmt.Errorf("store: restore: another process created a store under %q meanwhile", opts.Prefix)
		}
		ops, size = ops[:0], 0
		return nil
	}
	var format []byte
	_, err = readDump(data, func(key string, value []byte) error {
		if key == metaFormat {
			format = value
			return nil
		}
		if len(ops)+1 > opts.MaxTxnOps || size+len(key)+len(value)+opOverhead > opts.MaxTxnBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(opts.Prefix+key, string(value)))
		size += len(opts.Prefix) + len(key) + len(value) + opOverhead
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	if format == nil {
		return errors.New("store: restore: the dump holds no format key")
	}
	ops = append(ops, clientv3.OpPut(formatKey, string(format)))
	return flush()
}

package etcdstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/erasured/erasured/store"
)

// keyFormat is the layout of the store's keys under the prefix and the encoding of their values
// (see the package comment). It says nothing of the buckets' contents, which are the user's schema.
// Bump it whenever this package changes the meaning of what it writes, so that an older binary
// refuses the prefix rather than misread it.
//
// Format 2 keeps the events of one transaction in one ev/ key (format 1 had one key per event).
// A prefix of format 1 is refused, not migrated: back it up with the binary that wrote it and
// start this one on a new prefix.
const keyFormat = 2

// errFormatTooNew is wrapped when the prefix was written by a newer erasured, errFormatTooOld
// when it was written in a format this binary no longer reads.
var (
	errFormatTooNew = errors.New("store format under the etcd prefix is newer than this binary")
	errFormatTooOld = errors.New("store format under the etcd prefix is older than this binary reads")
)

// Key names under the prefix.
const (
	metaFormat  = "meta/format"  // keyFormat, U64
	metaSeq     = "meta/seq"     // write transactions committed, U64; every write compares and bumps it
	metaRev     = "meta/rev"     // last appended revision, U64
	metaOldest  = "meta/oldest"  // oldest event revision still stored, U64
	metaCommits = "meta/commit/" // + an opener's id: the nonce of its last write, to settle a lost reply
	bucketsDir  = "b/"           // + bucket name + "/" + key bytes
	eventsDir   = "ev/"          // + 16 hex digits of the last revision of a transaction's events
	leaderDir   = "leader"       // the election's prefix (the election adds "/" and a lease id)
)

// layout builds the etcd keys of one store.
type layout struct {
	prefix string
}

func (l layout) key(name string) string { return l.prefix + name }

// bucketPrefix is the prefix of every key of bucket b.
func (l layout) bucketPrefix(b string) string { return l.prefix + bucketsDir + b + "/" }

// bucketKey is the etcd key of key in bucket b.
func (l layout) bucketKey(b string, key []byte) string { return l.bucketPrefix(b) + string(key) }

// eventKey is the etcd key of the events of a transaction whose last revision is rev:
// fixed-width hex, so that keys sort as revisions. Transactions' revisions do not overlap, so the
// first key at or after eventKey(r) holds revision r, if the log still has it.
func (l layout) eventKey(rev uint64) string {
	return l.prefix + eventsDir + fmt.Sprintf("%016x", rev)
}

// parseEventKey returns the last revision of an events key, or false for another key.
func (l layout) parseEventKey(k []byte) (uint64, bool) {
	s, ok := strings.CutPrefix(string(k), l.prefix+eventsDir)
	if !ok || len(s) != 16 {
		return 0, false
	}
	rev, err := strconv.ParseUint(s, 16, 64)
	return rev, err == nil
}

// electionPrefix is what concurrency.NewElection is given; its keys lie under electionPrefix+"/".
func (l layout) electionPrefix() string { return l.prefix + leaderDir }

// prefixEnd is the end of the range of keys that start with p (clientv3.GetPrefixRangeEnd).
func prefixEnd(p string) string {
	end := []byte(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return "\x00" // every key: p was all 0xff
}

// encodeEvents lays the consecutive events of one transaction out as one value:
// uvarint(first revision), then for each event uvarint(len(key)) key uvarint(len(value)) value.
func encodeEvents(evs []store.Event) []byte {
	n := binary.MaxVarintLen64
	for _, ev := range evs {
		n += 2*binary.MaxVarintLen64 + len(ev.Key) + len(ev.Value)
	}
	enc := make([]byte, 0, n)
	enc = binary.AppendUvarint(enc, evs[0].Rev)
	for _, ev := range evs {
		enc = binary.AppendUvarint(enc, uint64(len(ev.Key)))
		enc = append(enc, ev.Key...)
		enc = binary.AppendUvarint(enc, uint64(len(ev.Value)))
		enc = append(enc, ev.Value...)
	}
	return enc
}

// decodeEvents decodes the value of the events key whose last revision is last; the Values
// share enc.
func decodeEvents(last uint64, enc []byte) ([]store.Event, error) {
	corrupt := func() ([]store.Event, error) {
		return nil, fmt.Errorf("store: corrupt events up to revision %d", last)
	}
	first, l := binary.Uvarint(enc)
	if l <= 0 || first == 0 || first > last || last-first >= uint64(len(enc)) {
		return corrupt()
	}
	enc = enc[l:]
	evs := make([]store.Event, 0, last-first+1)
	field := func() ([]byte, bool) {
		n, l := binary.Uvarint(enc)
		if l <= 0 || n > uint64(len(enc)-l) {
			return nil, false
		}
		f := enc[l : l+int(n)]
		enc = enc[l+int(n):]
		return f, true
	}
	for rev := first; rev <= last; rev++ {
		k, ok := field()
		if !ok {
			return corrupt()
		}
		v, ok := field()
		if !ok {
			return corrupt()
		}
		ev := store.Event{Rev: rev, Key: string(k)}
		if len(v) > 0 {
			ev.Value = v
		}
		evs = append(evs, ev)
	}
	if len(enc) != 0 {
		return corrupt()
	}
	return evs, nil
}

// u64 decodes a U64 meta value; absent (nil) is 0.
func u64(name string, v []byte) (uint64, error) {
	if v == nil {
		return 0, nil
	}
	n, err := store.ParseU64(v)
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", name, err)
	}
	return n, nil
}

// declare checks the buckets a user declares and indexes them by name. A name may not hold "/",
// which separates it from its keys.
func declare(bs []store.Bucket) (map[string]store.Bucket, error) {
	m := make(map[string]store.Bucket, len(bs))
	for _, b := range bs {
		switch {
		case b.Name == "":
			return nil, errors.New("declared bucket has no name")
		case strings.Contains(b.Name, "/"):
			return nil, fmt.Errorf("bucket name %q holds a slash", b.Name)
		}
		if _, dup := m[b.Name]; dup {
			return nil, fmt.Errorf("bucket %q declared twice", b.Name)
		}
		m[b.Name] = b
	}
	return m, nil
}

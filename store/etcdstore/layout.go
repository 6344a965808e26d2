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
const keyFormat = 1

// errFormatTooNew is wrapped when the prefix was written by a newer erasured.
var errFormatTooNew = errors.New("store format under the etcd prefix is newer than this binary")

// Key names under the prefix.
const (
	metaFormat  = "meta/format"  // keyFormat, U64
	metaSeq     = "meta/seq"     // write transactions committed, U64; every write compares and bumps it
	metaRev     = "meta/rev"     // last appended revision, U64
	metaOldest  = "meta/oldest"  // oldest event revision still stored, U64
	metaCommits = "meta/commit/" // + an opener's id: the nonce of its last write, to settle a lost reply
	bucketsDir  = "b/"           // + bucket name + "/" + key bytes
	eventsDir   = "ev/"          // + 16 hex digits of the revision
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

// eventKey is the etcd key of the event at rev: fixed-width hex, so that keys sort as revisions.
func (l layout) eventKey(rev uint64) string {
	return l.prefix + eventsDir + fmt.Sprintf("%016x", rev)
}

// parseEventKey returns the revision of an event key, or false for another key.
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

// encodeEvent lays an event out as uvarint(len(key)) key value, as boltstore does.
func encodeEvent(key string, value []byte) []byte {
	enc := make([]byte, 0, binary.MaxVarintLen64+len(key)+len(value))
	enc = binary.AppendUvarint(enc, uint64(len(key)))
	enc = append(enc, key...)
	return append(enc, value...)
}

// decodeEvent decodes an event value; the Value shares enc.
func decodeEvent(rev uint64, enc []byte) (store.Event, error) {
	n, l := binary.Uvarint(enc)
	if l <= 0 || n > uint64(len(enc)-l) {
		return store.Event{}, fmt.Errorf("store: corrupt event at revision %d", rev)
	}
	end := l + int(n)
	ev := store.Event{Rev: rev, Key: string(enc[l:end])}
	if end < len(enc) {
		ev.Value = enc[end:]
	}
	return ev, nil
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

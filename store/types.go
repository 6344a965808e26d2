package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by every operation after Close, and by Watcher.Next once the watcher or
	// the DB is closed.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly is returned by writes inside View.
	ErrReadOnly = errors.New("store: write in a read-only transaction")
	// ErrPanic wraps the panic value and stack of an update function that panicked.
	ErrPanic = errors.New("store: update function panicked")
	// ErrFutureRevision is wrapped by errors about a revision the store has not reached yet.
	ErrFutureRevision = errors.New("store: future revision")
	// ErrNoBucket is wrapped by writes to a bucket that was not declared when the store was opened.
	ErrNoBucket = errors.New("store: no such bucket")
)

// Bucket names a keyspace. Its user declares every bucket when it opens a backend; a bucket not
// declared does not exist, so a typo cannot create one.
type Bucket struct {
	// Name is the bucket's name in the backend. Backends reserve names for their own use (the
	// event log, their metadata) and refuse to open with a declared bucket of such a name.
	Name string
	// Ascending is a hint: new keys mostly arrive in ascending order (a counter, UUIDv7, a
	// revision), so a backend may pack its pages full instead of leaving room for inserts.
	Ascending bool
}

// String is the bucket's name.
func (b Bucket) String() string { return b.Name }

// Event is one entry of the event log.
type Event struct {
	Rev   uint64 // revision: 1, 2, 3, ... in commit order, no gaps
	Key   string // the resource the event is about, as given to Tx.Append
	Value []byte // the caller's encoding; shared with other readers, so it must not be modified
}

// CompactedError reports a request for revisions that compaction already deleted.
type CompactedError struct {
	Requested uint64 // the revision asked for
	Oldest    uint64 // the oldest revision still stored
}

// Error names both revisions.
func (e *CompactedError) Error() string {
	return fmt.Sprintf("store: revision %d is compacted, oldest available is %d", e.Requested, e.Oldest)
}

// Snapshot is a consistent copy of the whole store, as Backup hands it over.
type Snapshot struct {
	// Rev is the last revision the copy holds.
	Rev uint64
	// Size is the copy's length in bytes.
	Size int64
	// Data reads the copy, in the backend's own format: one its Open accepts.
	Data io.Reader
}

// U64 encodes v as an 8-byte big-endian key, so that keys sort (bytewise) as the numbers do.
func U64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// ParseU64 decodes a key made by U64.
func ParseU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("store: u64 key has %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

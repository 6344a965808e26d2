package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket names a bbolt bucket. The set of buckets is fixed: they are the package variables below, all
// created by Open, so a typo cannot create a new bucket.
type Bucket struct{ name string }

// String is the bucket's name in the file.
func (b Bucket) String() string { return b.name }

func (b Bucket) key() []byte { return []byte(b.name) }

// fill is how full bbolt packs b's pages when it splits them. bbolt's default, half full, suits
// keys that land anywhere: the next insert into a half-full page does not split it again. Where keys
// ascend, inserts go to the last page and the pages left behind would stay half empty; packing them
// full halves the pages a commit writes. The event log only appends. Erasure records are appended
// in id order (UUIDv7) and rewritten in place while their erasure runs, growing as they gain targets
// and a receipt: a growing record splits its full page once, into two half-full ones, which is where
// the default would have left it anyway.
func (b Bucket) fill() float64 {
	switch b {
	case eventsBucket, Erasures:
		return 1.0
	}
	return bolt.DefaultFillPercent
}

// Application buckets. Values are the caller's own encoding; keys are usually U64 or a string id.
var (
	Erasures = Bucket{"erasures"} // erasure resources by id
	Requests = Bucket{"requests"} // outcomes of deduplicated Submits, by an ascending id (service/index.go)
	Subjects = Bucket{"subjects"} // unused since the subject index moved to memory; emptied by the service
	Audit    = Bucket{"audit"}    // audit trail
	Ledger   = Bucket{"ledger"}   // LivePerson quota ledger
	Batches  = Bucket{"batches"}  // LivePerson deletion batches
	Keys     = Bucket{"keys"}     // per-batch data keys, and those of erasures stored before their record held it (wrapped by a period key, or by the master key before the key directory)
	Schedule = Bucket{"schedule"} // timer wheel: U64(due unix nanos) + task → nothing
	Queue    = Bucket{"queue"}    // targets waiting for a LivePerson request, by account and kind
	Receipts = Bucket{"receipts"} // signed receipts, in chain order
)

// Internal buckets: the event log (U64 revision → encoded event) and store metadata.
var (
	eventsBucket = Bucket{"events"}
	metaBucket   = Bucket{"meta"}
)

var allBuckets = []Bucket{Erasures, Requests, Subjects, Audit, Ledger, Batches, Keys, Schedule, Queue, Receipts, eventsBucket, metaBucket}

// U64 encodes v as an 8-byte big-endian key, so that keys sort in bbolt (bytewise) as the numbers do.
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

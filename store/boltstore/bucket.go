package boltstore

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/erasured/erasured/store"
)

// bucket is a bbolt bucket: a declared store.Bucket, or one of the store's own.
type bucket store.Bucket

func (b bucket) key() []byte { return []byte(b.Name) }

// fill is how full bbolt packs b's pages when it splits them. bbolt's default, half full, suits
// keys that land anywhere: the next insert into a half-full page does not split it again. Where keys
// ascend, inserts go to the last page and the pages left behind would stay half empty; packing them
// full halves the pages a commit writes. A key rewritten in place and growing splits its full page
// once, into two half-full ones, which is where the default would have left it anyway.
func (b bucket) fill() float64 {
	if b.Ascending {
		return 1.0
	}
	return bolt.DefaultFillPercent
}

// The store's own buckets: the event log (U64 revision → encoded event) and store metadata.
var (
	eventsBucket = bucket{Name: "events", Ascending: true}
	metaBucket   = bucket{Name: "meta"}
)

// declare checks the buckets a user declares and indexes them by name.
func declare(bs []store.Bucket) (map[string]store.Bucket, error) {
	m := make(map[string]store.Bucket, len(bs))
	for _, b := range bs {
		switch {
		case b.Name == "":
			return nil, errors.New("declared bucket has no name")
		case b.Name == eventsBucket.Name || b.Name == metaBucket.Name:
			return nil, fmt.Errorf("bucket name %q is the store's own", b.Name)
		}
		if _, dup := m[b.Name]; dup {
			return nil, fmt.Errorf("bucket %q declared twice", b.Name)
		}
		m[b.Name] = b
	}
	return m, nil
}

func userBuckets(bs []store.Bucket) []bucket {
	out := make([]bucket, len(bs))
	for i, b := range bs {
		out[i] = bucket(b)
	}
	return out
}

package schema

import (
	"context"
	"errors"
	"fmt"

	"github.com/erasured/erasured/store"
)

// Version is the layout this code reads and writes. Bump it whenever the meaning of stored keys or
// values changes, and have Ensure migrate the version before it (a function of one transaction
// from version n to n+1), so that an older binary refuses the new layout rather than misread it.
//
// Only binaries that read this key refuse a newer version. Those built before it was kept here
// check nothing but boltstore's file format (still 2) and would open a layout-3 store and misread
// it. So the first bump past 2 must also bump boltstore's fileFormat, which those binaries do
// check; later bumps need not, as every binary that reads version 3 reads this key too.
//
//  1. The first layout: Requests keyed by request_id, the subject index in Subjects. Not read:
//     no store of it exists outside development.
//  2. The Submit index lives in memory and an erasure's data key in its record: Requests is keyed
//     by ascending ids, Keys holds batch keys.
const Version = 2

// legacyVersion is the layout of the stores written before the version was kept here, by every
// release since the Submit index moved to memory: their version lived in the store's own file
// format, which the store still checks (it refuses files of the first layout). Ensure records it
// when it finds such a store, so upgrading from those releases needs nothing.
const legacyVersion = 2

// Meta holds the schema's own metadata: the version, under versionKey.
var Meta = store.Bucket{Name: "schema"}

var versionKey = []byte("version")

// ErrVersion is wrapped by Ensure when the store holds another layout than this binary's.
var ErrVersion = errors.New("store holds another schema version than this binary's")

// DB is what Ensure needs of a store.
type DB interface {
	Update(ctx context.Context, fn func(tx store.Tx) error) error
	View(fn func(tx store.Tx) error) error
}

// Ensure checks that db holds this binary's layout, writing the version into a fresh store (no
// event, no key in any bucket), and legacyVersion into a store that holds data but no version (a
// store of the releases before the version was kept here). A store of another version is refused
// with an error wrapping ErrVersion: its layout is never guessed from its contents.
func Ensure(ctx context.Context, db DB) error {
	var (
		got   uint64
		known bool
		fresh bool
	)
	read := func(tx store.Tx) error {
		var err error
		got, known, err = version(tx)
		if err != nil || known {
			return err
		}
		fresh, err = isEmpty(tx)
		return err
	}
	if err := db.View(read); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if !known {
		err := db.Update(ctx, func(tx store.Tx) error {
			if err := read(tx); err != nil || known {
				return err // another opener got there first: judged below
			}
			got, known = Version, true
			if !fresh {
				got = legacyVersion
			}
			return tx.Put(Meta, versionKey, store.U64(got))
		})
		if err != nil {
			return fmt.Errorf("schema: write the version: %w", err)
		}
	}
	switch {
	case known && got == Version:
		return nil
	case known && got > Version:
		return fmt.Errorf("%w: the store has version %d, this binary understands up to %d; run a newer erasured", ErrVersion, got, Version)
	case known:
		return fmt.Errorf("%w: the store has version %d, this binary reads only %d and converts none older", ErrVersion, got, Version)
	default:
		return fmt.Errorf("%w: no schema version could be read or written", ErrVersion)
	}
}

// version reads the stored version; known is false when there is none.
func version(tx store.Tx) (v uint64, known bool, err error) {
	b := tx.Get(Meta, versionKey)
	if b == nil {
		return 0, false, nil
	}
	if v, err = store.ParseU64(b); err != nil {
		return 0, false, fmt.Errorf("version: %w", err)
	}
	return v, true, nil
}

// isEmpty reports whether the store holds nothing: no event ever appended, no key in any bucket.
func isEmpty(tx store.Tx) (bool, error) {
	if tx.Rev() != 0 {
		return false, nil
	}
	for _, b := range Buckets {
		empty := true
		err := tx.Scan(b, nil, func(_, _ []byte) (bool, error) {
			empty = false
			return false, nil
		})
		if err != nil || !empty {
			return false, err
		}
	}
	return true, nil
}

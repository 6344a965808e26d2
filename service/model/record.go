package model

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Target is one LivePerson record to erase. Its id is personal data: targets are stored sealed.
type Target struct {
	Kind      TargetKind   `json:"k"`
	ID        string       `json:"i"`
	Status    TargetStatus `json:"s"`
	LPRequest int64        `json:"r,omitempty"` // the LivePerson deletion request holding it
	Batch     uint64       `json:"b,omitempty"` // our batch holding it (intent committed)
	Requeued  int          `json:"q,omitempty"` // times verification found it not erased
	Rejected  int          `json:"x,omitempty"` // times LivePerson rejected a request holding it
	// Start is when a chat began: verification re-reads it in the one search window holding it.
	Start time.Time `json:"t,omitzero"`
}

// Record is an erasure as stored in the Erasures bucket: the public view plus what only the
// service and its pipeline see (the subject and targets sealed with the erasure's data key,
// that key wrapped, the step's bookkeeping). Events carry only the public view.
type Record struct {
	Erasure
	Private
}

// Private is what a record holds beyond the public view. Both are stored as one JSON object
// (encoding/json promotes the fields of embedded structs); the service's encoding of a change
// relies on that.
type Private struct {
	// DataKey is the erasure's data key wrapped by a period key (or, as older erasures have it,
	// by the master key; the wrapped form says which); nil for erasures stored before it moved
	// here from the Keys bucket, where theirs still is, and for shredded erasures.
	DataKey       []byte `json:"data_key,omitempty"`
	Sealed        []byte `json:"sealed,omitempty"`
	SealedTargets []byte `json:"targets,omitempty"`
	// Index seals, with the data key, what the Submit index is rebuilt from: the request hash of
	// the Submit that created the erasure (so that a retry with its request_id can be told from
	// a reuse with another payload) and the root fingerprints of its subject and aliases
	// (see package service). nil once shredded.
	Index []byte `json:"index,omitempty"`
	// PayloadHash is the request hash in the clear (hex), as records written before Index held
	// it; new records seal it. Shredded records of that time hold a fixed placeholder.
	PayloadHash string `json:"payload_hash,omitempty"`
	// Swept is set once a re-resolution sweep run at least search_lag after received_time found
	// nothing new: the condition for COMPLETED.
	Swept bool `json:"swept,omitempty"`
	// Confirmed is set when an approver confirmed the plan of a MANUAL erasure.
	Confirmed bool `json:"confirmed,omitempty"`
	// Failures counts consecutive failed attempts at the erasure's current step (for backoff).
	Failures int `json:"failures,omitempty"`
	// CancelRequested is set before LivePerson requests holding the erasure are cancelled.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// Aliases are the subject's further identifiers by kind and public fingerprint, in the
	// order given (their values are sealed with the subject, their root fingerprints in Index).
	Aliases []IdentRef `json:"aliases,omitempty"`
	// SubjectDigits: the subject's identifier may be unsearchable in Messaging Interactions.
	SubjectDigits bool `json:"subject_digits,omitempty"`
	// ConsumerFound: the last search found the person's consumer through a searchable
	// identifier (see package pipeline's search). A join needs it to tell whether the erasure's
	// identifiers, with the new ones, may leave messaging unsearched.
	ConsumerFound bool `json:"consumer_found,omitempty"`
	// SealedConsumers are the messaging consumers a search followed as the person's (sealed
	// like the targets). Later searches follow them again: once the conversations that led to
	// a consumer are erased, no attribute search finds it any more, and a late conversation of
	// that consumer would otherwise be missed by the final sweep.
	SealedConsumers []byte `json:"consumers,omitempty"`
	// FinalTime is when the erasure reached its final state; retention counts from it. Records
	// that became final before it was kept use their update time.
	FinalTime time.Time `json:"final_time,omitzero"`
	// ShredTime is when the erasure's data key and sealed data were destroyed.
	ShredTime time.Time `json:"shred_time,omitzero"`
}

// GetRecord loads an erasure by id inside tx; (nil, nil) when absent.
func GetRecord(tx store.Tx, id string) (*Record, error) {
	v := tx.Get(schema.Erasures, []byte(id))
	if v == nil {
		return nil, nil
	}
	r := new(Record)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("decode erasure %s: %w", id, err)
	}
	return r, nil
}

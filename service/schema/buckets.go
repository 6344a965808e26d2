// Package schema is the service's layout in the store: the buckets it declares, how their keys are
// encoded, and the schema version with the check that refuses a store of another layout. The store
// knows none of this: it is opened with Buckets and keeps bytes. Record and event values are JSON
// of the service's own types and are encoded next to those types, in package service.
package schema

import "github.com/erasured/erasured/store"

// The service's buckets. Values are the service's own encoding (JSON records, sealed bytes).
var (
	// Erasures holds erasure records by id (UUIDv7). Ids ascend with creation; a record is
	// rewritten in place while its erasure runs.
	Erasures = store.Bucket{Name: "erasures", Ascending: true}
	// Requests holds the outcomes of deduplicated Submits, by a fresh UUIDv7 each.
	Requests = store.Bucket{Name: "requests"}
	// Audit holds the audit trail, by U64 sequence (AuditKey).
	Audit = store.Bucket{Name: "audit"}
	// Ledger holds the LivePerson quota ledger.
	Ledger = store.Bucket{Name: "ledger"}
	// Batches holds LivePerson deletion batches.
	Batches = store.Bucket{Name: "batches"}
	// Keys holds per-batch data keys, and those of erasures stored before their record held it
	// (wrapped by a period key, or by the master key before the key directory).
	Keys = store.Bucket{Name: "keys"}
	// Schedule is the timer wheel: U64(due unix nanos) + task → nothing.
	Schedule = store.Bucket{Name: "schedule"}
	// Queue holds targets waiting for a LivePerson request, by account and kind.
	Queue = store.Bucket{Name: "queue"}
	// Receipts holds signed receipts, in chain order.
	Receipts = store.Bucket{Name: "receipts"}
	// SubmitIndex is the Submit index in the store, written only while the store is shared
	// with other erasured processes (service.Config.Shared), where no process's memory can
	// decide alone: the outcome of each request_id, the open erasures of each subject
	// fingerprint, and each erasure's entries among those. A store one process opens keeps the
	// index in memory and leaves this bucket empty: adding it changed no stored meaning.
	SubmitIndex = store.Bucket{Name: "submit_index"}
	// WrappingKeys holds, on a store shared by several erasured processes, the keys that wrap
	// data keys (the period keys) and the root secret, each sealed by the master key: what a
	// key directory holds on a store only one process uses. Empty otherwise.
	WrappingKeys = store.Bucket{Name: "wrapping_keys"}
	// Links maps a LivePerson record id, as a keyed hash of its account, kind and id, to the
	// live batch that holds it, so that an id another erasure finds follows that batch instead
	// of being sent again (package pipeline, linked.go). No id is in it in the clear. A store
	// written before it existed starts with it empty: its batches are simply not linked.
	Links = store.Bucket{Name: "links"}
)

// Buckets is every bucket of the layout: what a backend is opened with.
var Buckets = []store.Bucket{Meta, Erasures, Requests, Audit, Ledger, Batches, Keys, Schedule, Queue, Receipts, SubmitIndex, WrappingKeys, Links}

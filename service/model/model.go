// Package model holds the erasure domain's data types, shared by package service (the erasure
// domain and its API) and package service/pipeline (the steps that carry an erasure to a final
// state): an erasure's public view and stored record, its targets, and the LivePerson port the
// pipeline calls. It holds data and the rules that read only that data (a state's finality, how
// an identifier compares); it knows no store layout beyond the record's own bucket, no keys and
// no transition table. It imports only the schema layer and the store interfaces; service
// re-exports its types under their old names (type aliases), so that callers name them as before.
package model

import (
	"time"
)

// State is the lifecycle state of an erasure. The numbering matches erasure.v1.State.
type State int32

// The lifecycle states.
const (
	StateUnspecified State = iota
	StateReceived
	StateResolving
	StateAwaitingConfirmation
	StateScheduled
	StateSubmitted
	StateDeleting
	StateVerifying
	StateCompleted
	StateFailed
	StateCancelled
	StateRejected
)

var stateNames = [...]string{"UNSPECIFIED", "RECEIVED", "RESOLVING", "AWAITING_CONFIRMATION", "SCHEDULED",
	"SUBMITTED", "DELETING", "VERIFYING", "COMPLETED", "FAILED", "CANCELLED", "REJECTED"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "UNKNOWN"
	}
	return stateNames[s]
}

// Valid reports whether s is one of the defined states other than StateUnspecified.
func (s State) Valid() bool { return s > StateUnspecified && s <= StateRejected }

// SubjectKind says which kind of identifier names the subject. Numbering matches erasure.v1.
type SubjectKind int32

// Subject kinds.
const (
	SubjectUnspecified SubjectKind = iota
	SubjectCustomerID
	SubjectEmail
	SubjectPhone
	SubjectConsumerID
	SubjectTargets
)

// Channel is a LivePerson channel. Numbering matches erasure.v1.Channel.
type Channel int32

// Channels.
const (
	ChannelUnspecified Channel = iota
	ChannelChat
	ChannelMessaging
)

// Confirmation says how a plan is approved. Numbering matches erasure.v1.Confirmation.
type Confirmation int32

// Confirmation modes.
const (
	ConfirmationUnspecified Confirmation = iota
	ConfirmationAutomatic
	ConfirmationManual
)

// BlockedOn says what an erasure waits for. Numbering matches erasure.v1.BlockedOn.
type BlockedOn int32

// Reasons an erasure waits.
const (
	BlockedNone BlockedOn = iota
	BlockedQuota
	BlockedOpenConversations
	BlockedSearchLag
	BlockedLivePersonUnavailable
	BlockedConfirmation
	// BlockedIdentifierUnsearchable: an identifier may be unsearchable in Messaging
	// Interactions and no searchable one led to the person's consumer; the erasure waits for an
	// alias or an approver before it completes.
	BlockedIdentifierUnsearchable
	// BlockedDeletionOutcomeUnknown: a batch's create may or may not have reached LivePerson and
	// reconciliation cannot tell; it is held for an operator (SettleBatch).
	BlockedDeletionOutcomeUnknown
)

// TargetKind is the kind of a LivePerson record. Numbering matches erasure.v1.TargetKind.
type TargetKind int32

// Record kinds.
const (
	KindUnspecified TargetKind = iota
	KindEngagement
	KindConversation
	KindConsumer
)

// TargetStatus is where a record is in its deletion. Numbering matches erasure.v1.TargetStatus.
type TargetStatus int32

// Record statuses.
const (
	TargetUnspecified TargetStatus = iota
	TargetFound
	TargetDeferredOpen
	TargetQueued
	TargetSubmitted
	TargetDone
	TargetVerified
	// TargetNotFound: named explicitly (or the subject's consumer id) but LivePerson has no such
	// record; nothing was erased for it.
	TargetNotFound
)

// Subject is a data subject named by exactly one identifier. It is personal data: it is only ever
// stored sealed, and never logged, returned or put in an event.
type Subject struct {
	Kind            SubjectKind `json:"k"`
	Value           string      `json:"v,omitempty"`
	ConversationIDs []string    `json:"c,omitempty"`
	EngagementIDs   []string    `json:"e,omitempty"`
}

// TargetCount is how many of an erasure's records of one kind are in one status.
type TargetCount struct {
	Kind   TargetKind   `json:"kind"`
	Status TargetStatus `json:"status"`
	Count  int32        `json:"count"`
}

// LPRequest is a LivePerson deletion request holding records of an erasure.
type LPRequest struct {
	ID          int64      `json:"id"`
	Kind        TargetKind `json:"kind"`
	Status      string     `json:"status"`
	RecordCount int32      `json:"records"`
}

// Receipt is the signed proof of a completed erasure. It holds no personal data.
type Receipt struct {
	Erasure             string        `json:"erasure"`
	AccountID           string        `json:"account_id"`
	SubjectFingerprint  string        `json:"subject_fingerprint"`
	Counts              []TargetCount `json:"counts,omitempty"`
	LPRequestIDs        []int64       `json:"lp_request_ids,omitempty"`
	ReceivedTime        time.Time     `json:"received_time"`
	CompleteTime        time.Time     `json:"complete_time"`
	VerificationSummary string        `json:"verification_summary"`
	PreviousHash        string        `json:"previous_hash,omitempty"`
	Hash                string        `json:"hash"`
	Signature           string        `json:"signature"`
	KeyID               string        `json:"key_id"`
	AliasFingerprints   []string      `json:"alias_fingerprints,omitempty"`
	UnsearchedChannels  []Channel     `json:"unsearched_channels,omitempty"`
	UnverifiableCount   int32         `json:"unverifiable_count,omitempty"` // consumer profiles: DONE, not re-readable
	NotFoundCount       int32         `json:"not_found_count,omitempty"`
}

// HeldBatch is a batch whose create outcome at LivePerson is unknown and undecidable; it waits
// for an operator (SettleBatch). It holds no personal data.
type HeldBatch struct {
	BatchID     uint64     `json:"batch_id"`
	Kind        TargetKind `json:"kind"`
	RecordCount int32      `json:"records"`
	Candidates  []int64    `json:"candidates,omitempty"`
	SendTime    time.Time  `json:"send_time,omitzero"`
}

// Erasure is the public view of an erasure: everything Status shows, safe to log and to put in
// events. It never holds the subject's identifier or LivePerson record ids.
type Erasure struct {
	ID          string      `json:"id"`
	RequestID   string      `json:"request_id"`
	AccountID   string      `json:"account_id"`
	SubjectKind SubjectKind `json:"subject_kind"`
	// Fingerprint is the subject's public fingerprint: an HMAC under a key derived from the
	// erasure's data key, meaningless once that key is destroyed.
	Fingerprint            string        `json:"fingerprint"`
	Channels               []Channel     `json:"channels"`
	EraseConsumerProfile   bool          `json:"erase_consumer_profile,omitempty"`
	Confirmation           Confirmation  `json:"confirmation"`
	ExternalRef            string        `json:"external_ref,omitempty"`
	State                  State         `json:"state"`
	ReceivedTime           time.Time     `json:"received_time"`
	CreateTime             time.Time     `json:"create_time"`
	UpdateTime             time.Time     `json:"update_time"`
	DueTime                time.Time     `json:"due_time"`
	AtRisk                 bool          `json:"at_risk,omitempty"`
	BlockedOn              BlockedOn     `json:"blocked_on,omitempty"`
	NextAttemptTime        time.Time     `json:"next_attempt_time,omitzero"`
	LastError              string        `json:"last_error,omitempty"`
	TargetCounts           []TargetCount `json:"target_counts,omitempty"`
	LPRequests             []LPRequest   `json:"lp_requests,omitempty"`
	Receipt                *Receipt      `json:"receipt,omitempty"`
	Revision               uint64        `json:"revision,omitempty"` // in events, the event's revision
	SubmittedBy            string        `json:"submitted_by"`
	Reason                 string        `json:"reason,omitempty"`
	IdentifierUnsearchable bool          `json:"identifier_unsearchable,omitempty"`
	AliasCount             int32         `json:"alias_count,omitempty"`
	UnsearchableAccepted   bool          `json:"unsearchable_accepted,omitempty"`
	HeldBatches            []HeldBatch   `json:"held_batches,omitempty"`
	// PurgeTime is when the erasure's sealed data (identifiers, record ids, the keys sealing
	// them) is destroyed: its final time plus the retention. Zero while it is open.
	PurgeTime time.Time `json:"purge_time,omitzero"`
	// AtRiskTime is when the erasure was first found at risk of missing DueTime (zero: never).
	AtRiskTime time.Time `json:"at_risk_time,omitzero"`
	// Purged is set once that data is destroyed; its fingerprints are empty from then on.
	Purged bool `json:"purged,omitempty"`
}

// Name is the erasure's resource name, erasures/{id}.
func (e Erasure) Name() string { return NamePrefix + e.ID }

// NamePrefix starts every erasure's resource name.
const NamePrefix = "erasures/"

// Final reports whether s is a final state: nothing moves out of it.
func (s State) Final() bool {
	switch s {
	case StateCompleted, StateFailed, StateCancelled, StateRejected:
		return true
	}
	return false
}

// String names a record kind as LivePerson's deletion API does.
func (k TargetKind) String() string {
	switch k {
	case KindEngagement:
		return "engagement"
	case KindConversation:
		return "conversation"
	case KindConsumer:
		return "consumer"
	}
	return "unknown"
}

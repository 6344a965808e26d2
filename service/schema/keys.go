package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/erasured/erasured/store"
)

// Key encodings. Numbers in keys are store.U64 (8 bytes, big-endian) wherever keys are scanned in
// numeric order; strings are the ids and names as the service holds them.
//
//	Erasures  erasure id (UUIDv7)                            → erasure record
//	Requests  fresh UUIDv7                                   → outcome of a deduplicated Submit
//	Audit     U64(sequence)                                  → audit entry
//	          AuditIndexByte, erasure id, 0, U64(sequence)   → nothing (the trail by erasure)
//	Ledger    "quota/" account "/" month                     → quota use of that month
//	          "seq/batch"                                    → U64(last batch id)
//	          "send_turn/" account                           → whose turn it is to send
//	          "requested_by/" account                        → batches with a LivePerson request
//	          "held/" account 0 U64(batch id)                → nothing (a held batch)
//	          "counts/erasures"                              → erasure counts
//	          "receipts/head"                                → head of the receipt chain
//	Batches   U64(batch id)                                  → batch
//	Keys      "batch/" decimal batch id                      → the batch's wrapped data key
//	          erasure id                                     → an older erasure's wrapped data key
//	Schedule  U64(due unix nanos) task                       → nothing
//	Queue     account 0 decimal kind 0 erasure id            → waiting targets of that kind
//	Receipts  U64(sequence)                                  → signed receipt, in chain order
//	SubmitIndex (shared stores only)
//	          "m/shared"                                     → 1: every Submit kept the index
//	          "r/" request_id                                → outcome of the Submit that took it
//	          "s/" account 0 root fingerprint (hex)          → the open erasures holding it
//	          "e/" erasure id                                → its "s/" entries, while it is open
//	Links     "h/" link hash                                 → U64(batch id): the live batch holding it
//	          "b/" U64(batch id) link hash                   → nothing (the batch's links, to end them)
//	WrappingKeys  "root", or "p-" and a period's start       → that key, sealed by the master key
//	          (the names of the key directory's files)

// AuditKey is the key of audit entry seq.
func AuditKey(seq uint64) []byte { return store.U64(seq) }

// AuditIndexByte starts every key of the Audit bucket's index by erasure. Sequences never reach
// 0xff<<56, so every entry key sorts before every index key, and the last entry is the last key
// below []byte{AuditIndexByte}.
const AuditIndexByte = 0xff

// AuditIndexPrefix is the start of the index keys of erasure id.
func AuditIndexPrefix(id string) []byte {
	k := make([]byte, 0, len(id)+10)
	k = append(k, AuditIndexByte)
	k = append(k, id...)
	return append(k, 0)
}

// AuditIndexKey is the index key of entry seq of erasure id.
func AuditIndexKey(id string, seq uint64) []byte {
	return append(AuditIndexPrefix(id), store.U64(seq)...)
}

// QuotaKey holds an account's quota use of one month (a "2006-01" string) in the Ledger.
func QuotaKey(account, month string) []byte { return []byte("quota/" + account + "/" + month) }

// BatchSeqKey holds the last batch id in the Ledger.
var BatchSeqKey = []byte("seq/batch")

// SendTurnKey holds, in the Ledger, which batch of an account may send next.
func SendTurnKey(account string) []byte { return []byte("send_turn/" + account) }

// RequestedByKey holds, in the Ledger, an account's batches that have a LivePerson request.
func RequestedByKey(account string) []byte { return []byte("requested_by/" + account) }

// HeldPrefix starts the Ledger keys that mark held batches, so that they are counted without
// reading every batch.
var HeldPrefix = []byte("held/")

// HeldKey marks batch id of account as held.
func HeldKey(account string, id uint64) []byte {
	return append(append(append(bytes.Clone(HeldPrefix), account...), 0), store.U64(id)...)
}

// CountsKey holds the erasure counts in the Ledger.
var CountsKey = []byte("counts/erasures")

// BatchKey is the key of batch id in Batches.
func BatchKey(id uint64) []byte { return store.U64(id) }

// BatchKeyName is where, in Keys, batch id's wrapped data key is kept.
func BatchKeyName(id uint64) []byte { return []byte("batch/" + strconv.FormatUint(id, 10)) }

// ScheduleKey orders tasks by due time: U64(unix nanos) then the task.
func ScheduleKey(at time.Time, task string) []byte {
	return append(store.U64(uint64(at.UnixNano())), task...)
}

// ParseScheduleKey splits a key made by ScheduleKey.
func ParseScheduleKey(k []byte) (time.Time, string, error) {
	if len(k) < 9 {
		return time.Time{}, "", errors.New("malformed schedule key")
	}
	ns, err := store.ParseU64(k[:8])
	if err != nil {
		return time.Time{}, "", err
	}
	return time.Unix(0, int64(ns)), string(k[8:]), nil
}

// QueuePrefix starts the Queue keys of an account's waiting targets of one kind (the service's
// target kind number).
func QueuePrefix(account string, kind int32) []byte {
	return fmt.Appendf(nil, "%s\x00%d\x00", account, kind)
}

// QueueKey is the Queue entry of an erasure's waiting targets of one kind.
func QueueKey(account string, kind int32, id string) []byte {
	return append(QueuePrefix(account, kind), id...)
}

// ReceiptHeadKey holds the head of the receipt chain in the Ledger.
var ReceiptHeadKey = []byte("receipts/head")

// ReceiptKey is the key of receipt seq in Receipts.
func ReceiptKey(seq uint64) []byte { return store.U64(seq) }

// SharedIndexKey marks, in SubmitIndex, a store whose every Submit wrote the shared index: a
// process sharing the store may let the store decide.
var SharedIndexKey = []byte("m/shared")

// RequestIDKey holds, in SubmitIndex, the outcome of the Submit that took request_id. A
// request_id is the caller's idempotency key, held in the clear by the erasure record too.
func RequestIDKey(requestID string) []byte { return []byte("r/" + requestID) }

// OpenSubjectPrefix starts the SubmitIndex keys of open subjects.
var OpenSubjectPrefix = []byte("s/")

// OpenSubjectKey holds, in SubmitIndex, the open erasures of an account holding the identifier
// whose root fingerprint (a keyed hash, in hex) is fingerprint. No identifier is in the key.
func OpenSubjectKey(account, fingerprint string) []byte {
	return []byte("s/" + account + "\x00" + fingerprint)
}

// ErasureSubjectsKey holds, in SubmitIndex, the OpenSubjectKey entries erasure id is listed
// in, so that they are removed when it ends without opening its sealed index.
func ErasureSubjectsKey(id string) []byte { return []byte("e/" + id) }

// LinkKey is where, in Links, the batch holding the record of link hash mac is kept.
func LinkKey(mac []byte) []byte { return append([]byte("h/"), mac...) }

// LinkBatchPrefix starts the keys, in Links, of the links of batch id.
func LinkBatchPrefix(id uint64) []byte { return append([]byte("b/"), store.U64(id)...) }

// LinkBatchKey is the key, in Links, that lists link hash mac under batch id.
func LinkBatchKey(id uint64, mac []byte) []byte { return append(LinkBatchPrefix(id), mac...) }

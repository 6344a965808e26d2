package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// AuditEntry is one record of the audit trail: an authenticated caller's call of an audited
// method (Submit, Resolve preview or decision, Cancel, SettleBatch) and its outcome. It holds no
// personal data: no identifier, no record id, no free-text reason.
type AuditEntry struct {
	// Sequence is the entry's position in the trail, from 1, without gaps; set when stored.
	Sequence  uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Principal string    `json:"principal"`
	Method    string    `json:"method"`            // the RPC: Submit, Resolve, Cancel, SettleBatch
	Action    string    `json:"action"`            // submit, preview, confirm, reject, cancel, settle
	Erasure   string    `json:"erasure,omitempty"` // the erasure id, when known
	Account   string    `json:"account,omitempty"`
	Outcome   string    `json:"outcome"`          // OK or a canonical gRPC code name
	Detail    string    `json:"detail,omitempty"` // an ErrorInfo reason, or a note such as "deduplicated"
	BatchID   uint64    `json:"batch_id,omitempty"`
}

// Audit actions.
const (
	AuditSubmit  = "submit"
	AuditPreview = "preview"
	AuditConfirm = "confirm"
	AuditReject  = "reject"
	AuditCancel  = "cancel"
	AuditSettle  = "settle"
)

// AuditOK is the outcome of an audited call that succeeded.
const AuditOK = "OK"

// appendAudit appends e to the trail inside tx, so that it commits with the change it records.
// The sequence is the last one plus one.
func appendAudit(tx store.Tx, e AuditEntry) error {
	return appendAuditFor(tx, e, nil)
}

// appendAuditFor appends e and indexes it under its erasure and under each of related (the
// erasures a SettleBatch moved on, say), so that the trail of one erasure shows every call that
// acted on it. The entry's time is never before the previous entry's: the trail is in time
// order even when the clock steps back, which lets ListAudit find a start time by bisection.
func appendAuditFor(tx store.Tx, e AuditEntry, related []string) error {
	last, err := lastAudit(tx)
	if err != nil {
		return err
	}
	e.Sequence = last.Sequence + 1
	e.Time = e.Time.UTC()
	if e.Time.Before(last.Time) {
		e.Time = last.Time
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := tx.Put(schema.Audit, schema.AuditKey(e.Sequence), v); err != nil {
		return err
	}
	seen := map[string]bool{"": true}
	for _, id := range append([]string{e.Erasure}, related...) {
		if seen[id] {
			continue
		}
		seen[id] = true
		if err := tx.Put(schema.Audit, schema.AuditIndexKey(id, e.Sequence), nil); err != nil {
			return err
		}
	}
	return nil
}

// lastAudit is the trail's last entry; the zero entry when the trail is empty.
func lastAudit(tx store.Tx) (AuditEntry, error) {
	var last AuditEntry
	err := tx.ScanReverse(schema.Audit, []byte{schema.AuditIndexByte}, func(k, v []byte) (bool, error) {
		if len(k) != 8 {
			return false, fmt.Errorf("audit trail: unexpected key %x", k)
		}
		return false, json.Unmarshal(v, &last)
	})
	return last, err
}

// getAudit reads entry seq; ok is false when there is none.
func getAudit(tx store.Tx, seq uint64) (AuditEntry, bool, error) {
	v := tx.Get(schema.Audit, schema.AuditKey(seq))
	if v == nil {
		return AuditEntry{}, false, nil
	}
	var e AuditEntry
	if err := json.Unmarshal(v, &e); err != nil {
		return AuditEntry{}, false, fmt.Errorf("decode audit entry %d: %w", seq, err)
	}
	return e, true, nil
}

// AppendAudit records a call in a transaction of its own: for calls that failed, or that
// succeeded without changing anything. The server records every audited call that fails; the
// service records those that succeed, in the transaction of their change.
func (s *Service) AppendAudit(ctx context.Context, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if err := s.db.Update(ctx, func(tx store.Tx) error { return appendAudit(tx, e) }); err != nil {
		return s.storeError(fmt.Errorf("append audit record: %w", err))
	}
	return nil
}

// audited is the entry of a successful call of method by ctx's principal.
func (s *Service) audited(ctx context.Context, method, action string, now time.Time) AuditEntry {
	return AuditEntry{Time: now, Principal: Principal(ctx), Method: method, Action: action, Outcome: AuditOK}
}

// auditOn appends e, the entry of a successful call on erasure r, in tx.
func auditOn(tx store.Tx, e AuditEntry, r *record, detail string) error {
	e.Erasure, e.Account, e.Detail = r.ID, r.AccountID, detail
	return appendAudit(tx, e)
}

// AuditQuery selects a page of the audit trail.
type AuditQuery struct {
	// Erasure is an erasure's resource name, erasures/{id}: only the calls that acted on it.
	// Empty: every entry.
	Erasure string
	// Start: only entries made at or after it. Zero: from the first.
	Start time.Time
	// PageSize is the most entries to return: 0 means DefaultAuditPageSize; at most
	// MaxPageSize.
	PageSize int
	// PageToken is the NextPageToken of the previous page, with the same filters.
	PageToken string
}

// AuditPage is a page of the audit trail, oldest first.
type AuditPage struct {
	Entries []AuditEntry
	// NextPageToken fetches the next page; empty on the last.
	NextPageToken string
}

// DefaultAuditPageSize is the page size of ListAudit when the query gives none.
const DefaultAuditPageSize = 100

// ListAudit returns the audit trail, oldest first, one page at a time. It reads one page's worth
// of entries (plus one, to know whether more follow): by erasure through the trail's index, by
// start time after a bisection over the sequence.
func (s *Service) ListAudit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	size := q.PageSize
	if size <= 0 {
		size = DefaultAuditPageSize
	}
	size = min(size, MaxPageSize)
	var id string
	if q.Erasure != "" {
		var err error
		if id, err = ParseName(q.Erasure); err != nil {
			return AuditPage{}, err
		}
	}
	filter := auditFilterHash(id, q.Start)
	var after uint64
	if q.PageToken != "" {
		last, err := decodePageToken(q.PageToken, filter)
		if err != nil {
			return AuditPage{}, err
		}
		if after, err = strconv.ParseUint(last, 10, 64); err != nil {
			return AuditPage{}, newError(KindInvalid, "INVALID_PAGE_TOKEN", "page_token is malformed")
		}
	}
	var page AuditPage
	err := s.db.View(func(tx store.Tx) error {
		page = AuditPage{}
		from := after + 1
		if !q.Start.IsZero() {
			first, err := firstAuditAt(tx, q.Start)
			if err != nil {
				return err
			}
			from = max(from, first)
		}
		add := func(e AuditEntry) bool {
			if len(page.Entries) == size {
				page.NextPageToken = encodePageToken(strconv.FormatUint(page.Entries[size-1].Sequence, 10), filter)
				return false
			}
			page.Entries = append(page.Entries, e)
			return true
		}
		if id == "" {
			return tx.Scan(schema.Audit, schema.AuditKey(from), func(k, v []byte) (bool, error) {
				if len(k) != 8 {
					return false, nil // the index follows the entries
				}
				var e AuditEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return false, fmt.Errorf("decode audit entry %x: %w", k, err)
				}
				return add(e), nil
			})
		}
		return scanAuditOf(tx, id, from, add)
	})
	return page, s.storeError(err)
}

// scanAuditOf calls fn with each entry of the erasure id from sequence from on, in order, through
// the trail's index by erasure, until fn returns false.
func scanAuditOf(tx store.Tx, id string, from uint64, fn func(AuditEntry) bool) error {
	prefix := schema.AuditIndexPrefix(id)
	return tx.Scan(schema.Audit, append(bytes.Clone(prefix), store.U64(from)...), func(k, _ []byte) (bool, error) {
		rest, ok := bytes.CutPrefix(k, prefix)
		if !ok {
			return false, nil
		}
		seq, err := store.ParseU64(rest)
		if err != nil {
			return false, err
		}
		e, found, err := getAudit(tx, seq)
		if err != nil || !found {
			return false, err
		}
		return fn(e), nil
	})
}

// firstAuditAt is the sequence of the first entry made at or after t (one past the last entry
// when there is none). Entry times never decrease along the trail (see appendAuditFor), so a
// bisection finds it in a few reads.
func firstAuditAt(tx store.Tx, t time.Time) (uint64, error) {
	last, err := lastAudit(tx)
	if err != nil {
		return 0, err
	}
	lo, hi := uint64(1), last.Sequence+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, found, err := getAudit(tx, mid)
		if err != nil {
			return 0, err
		}
		if !found {
			return 0, fmt.Errorf("audit trail has no entry %d", mid)
		}
		if e.Time.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// auditFilterHash binds a page token to the query's filters, as List's tokens are.
func auditFilterHash(id string, start time.Time) string {
	var sec int64
	var ns int
	if !start.IsZero() {
		sec, ns = start.Unix(), start.Nanosecond()
	}
	h := sha256.Sum256(fmt.Appendf(nil, "audit|%s|%d.%d", id, sec, ns))
	return base64.RawURLEncoding.EncodeToString(h[:6])
}

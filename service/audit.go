package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// appendAudit appends e to the trail inside tx, so that it commits with the change it records.
// The sequence is the last one plus one.
func appendAudit(tx *store.Tx, e AuditEntry) error {
	var last uint64
	err := tx.ScanReverse(store.Audit, nil, func(k, _ []byte) (bool, error) {
		v, err := store.ParseU64(k)
		last = v
		return false, err
	})
	if err != nil {
		return err
	}
	e.Sequence = last + 1
	e.Time = e.Time.UTC()
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return tx.Put(store.Audit, store.U64(e.Sequence), v)
}

// AppendAudit records a call in a transaction of its own: for calls that failed, or that
// succeeded without changing anything. The server records every audited call that fails; the
// service records those that succeed, in the transaction of their change.
func (s *Service) AppendAudit(ctx context.Context, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	if err := s.db.Update(ctx, func(tx *store.Tx) error { return appendAudit(tx, e) }); err != nil {
		return s.storeError(fmt.Errorf("append audit record: %w", err))
	}
	return nil
}

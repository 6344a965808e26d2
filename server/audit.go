package server

import (
	"context"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// ListAuditRecords pages through the audit trail, oldest first. Reading the trail is not itself
// an audited call.
func (h *handler) ListAuditRecords(ctx context.Context, req *erasurev1.ListAuditRecordsRequest) (*erasurev1.ListAuditRecordsResponse, error) {
	q := service.AuditQuery{Erasure: req.GetName(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	if st := req.GetStartTime(); st != nil {
		q.Start = st.AsTime()
	}
	page, err := h.svc.ListAudit(ctx, q)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &erasurev1.ListAuditRecordsResponse{NextPageToken: page.NextPageToken}
	for _, e := range page.Entries {
		out.Records = append(out.Records, auditToProto(e))
	}
	return out, nil
}

// auditToProto converts one audit entry; the erasure id becomes its resource name.
func auditToProto(e service.AuditEntry) *erasurev1.AuditRecord {
	out := &erasurev1.AuditRecord{
		Sequence:  e.Sequence,
		Time:      ts(e.Time),
		Principal: e.Principal,
		Method:    e.Method,
		Action:    e.Action,
		AccountId: e.Account,
		Outcome:   e.Outcome,
		Detail:    e.Detail,
		BatchId:   e.BatchID,
	}
	if e.Erasure != "" {
		out.Erasure = service.NamePrefix + e.Erasure
	}
	return out
}

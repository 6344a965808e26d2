package server

import (
	"context"
	"sync"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// handler adapts the service to erasure.v1.ErasureService.
type handler struct {
	erasurev1.UnimplementedErasureServiceServer
	svc *service.Service
	srv *Server
	// backup is held by the one Backup running: each spools a full copy of the store to disk,
	// so concurrent ones would only multiply the disk space and I/O taken.
	backup sync.Mutex
}

var _ erasurev1.ErasureServiceServer = (*handler)(nil)

func (h *handler) Submit(ctx context.Context, req *erasurev1.SubmitRequest) (*erasurev1.SubmitResponse, error) {
	res, err := h.svc.Submit(ctx, submitFromProto(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &erasurev1.SubmitResponse{Erasure: toProto(res.Erasure), Deduplicated: res.Deduplicated}, nil
}

func (h *handler) Resolve(ctx context.Context, req *erasurev1.ResolveRequest) (*erasurev1.ResolveResponse, error) {
	if pv := req.GetPreview(); pv != nil {
		var channels []service.Channel
		for _, c := range pv.GetChannels() {
			channels = append(channels, service.Channel(c))
		}
		plan, err := h.svc.Preview(ctx, pv.GetAccountId(), subjectFromProto(pv.GetSubject()), channels,
			aliasesFromProto(pv.GetAliases())...)
		if err != nil {
			return nil, toStatus(err)
		}
		return &erasurev1.ResolveResponse{Plan: planToProto(plan)}, nil
	}
	var d *service.Decision
	switch k := req.GetDecision().GetKind().(type) {
	case *erasurev1.Decision_Confirm:
		d = &service.Decision{Confirm: true, PlanEtag: k.Confirm.GetPlanEtag()}
	case *erasurev1.Decision_Reject:
		d = &service.Decision{Reject: true, Reason: k.Reject.GetReason()}
	}
	res, err := h.svc.Resolve(ctx, req.GetName(), d)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &erasurev1.ResolveResponse{Plan: planToProto(res.Plan)}
	if res.Erasure != nil {
		out.Erasure = toProto(*res.Erasure)
	}
	return out, nil
}

func (h *handler) Status(ctx context.Context, req *erasurev1.StatusRequest) (*erasurev1.StatusResponse, error) {
	e, err := h.svc.Status(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &erasurev1.StatusResponse{Erasure: toProto(e)}, nil
}

func (h *handler) List(ctx context.Context, req *erasurev1.ListRequest) (*erasurev1.ListResponse, error) {
	lr := service.ListRequest{AccountID: req.GetAccountId(), ExternalRef: req.GetExternalRef(),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	for _, s := range req.GetStates() {
		lr.States = append(lr.States, service.State(s))
	}
	res, err := h.svc.List(ctx, lr)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &erasurev1.ListResponse{NextPageToken: res.NextPageToken}
	for _, e := range res.Erasures {
		out.Erasures = append(out.Erasures, toProto(e))
	}
	return out, nil
}

func (h *handler) Cancel(ctx context.Context, req *erasurev1.CancelRequest) (*erasurev1.CancelResponse, error) {
	e, err := h.svc.Cancel(ctx, req.GetName(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &erasurev1.CancelResponse{Erasure: toProto(e)}, nil
}

func (h *handler) SettleBatch(ctx context.Context, req *erasurev1.SettleBatchRequest) (*erasurev1.SettleBatchResponse, error) {
	res, err := h.svc.SettleBatch(ctx, req.GetAccountId(), req.GetBatchId(), req.GetLivepersonRequestId(), req.GetNotCreated())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &erasurev1.SettleBatchResponse{BatchId: res.BatchID, LivepersonRequestId: res.LPRequestID}
	for _, e := range res.Erasures {
		out.Erasures = append(out.Erasures, toProto(e))
	}
	return out, nil
}

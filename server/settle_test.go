package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// absentLivePerson is a LivePerson that must never be called: SettleBatch of an unknown batch
// is answered from the store alone.
type absentLivePerson struct{ service.LivePerson }

func TestSettleBatchOverTheWire(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	settle := func(batch uint64) error {
		_, err := h.client.SettleBatch(ctx, &erasurev1.SettleBatchRequest{AccountId: "1234", BatchId: batch,
			Outcome: &erasurev1.SettleBatchRequest_NotCreated{NotCreated: true}})
		return err
	}
	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"no batch id", func() error { return settle(0) }, codes.InvalidArgument, "INVALID_REQUEST"},
		{"no outcome", func() error {
			_, err := h.client.SettleBatch(ctx, &erasurev1.SettleBatchRequest{AccountId: "1234", BatchId: 7})
			return err
		}, codes.InvalidArgument, "INVALID_REQUEST"},
		{"no pipeline", func() error { return settle(7) }, codes.Unavailable, "NO_PIPELINE"},
		{"unknown batch", func() error {
			h.svc.NewPipeline(absentLivePerson{}, service.PipelineConfig{})
			return settle(7)
		}, codes.NotFound, "BATCH_NOT_FOUND"},
	}
	for _, tt := range tests {
		err := tt.call()
		if got := status.Code(err); got != tt.code || reasonOf(err) != tt.reason {
			t.Errorf("%s: %v (%v), want %v with reason %s", tt.name, got, err, tt.code, tt.reason)
		}
	}
}

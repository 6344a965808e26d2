package port

import (
	"context"
	"errors"
	"testing"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/service"
)

func TestPortErrClassifies(t *testing.T) {
	tests := []struct {
		kind liveperson.Kind
		want error
	}{
		{liveperson.KindQuotaExhausted, service.ErrQuotaExhausted},
		{liveperson.KindOutcomeUnknown, service.ErrOutcomeUnknown},
		{liveperson.KindResidency, service.ErrResidency},
		{liveperson.KindTerminal, service.ErrRejected},
		{liveperson.KindInvalid, service.ErrRejected},
		{liveperson.KindRetryable, service.ErrUnavailable},
		{liveperson.KindRateLimited, service.ErrUnavailable},
		{liveperson.KindUnauthorized, service.ErrUnavailable},
	}
	for _, tt := range tests {
		in := &liveperson.Error{Kind: tt.kind, Service: "rtbf"}
		got := portErr(in)
		if !errors.Is(got, tt.want) {
			t.Errorf("portErr(kind %v) = %v, want it to wrap %v", tt.kind, got, tt.want)
		}
		if !errors.Is(got, in) {
			t.Errorf("portErr(kind %v) lost the original error", tt.kind)
		}
	}
	if got := portErr(context.Canceled); got != context.Canceled {
		t.Errorf("portErr(context.Canceled) = %v, want it unchanged", got)
	}
}

func TestDeletionDecodesIntent(t *testing.T) {
	d, ok := deletion(liveperson.DeletionRequest{ID: "127223", Status: "NOT_STARTED",
		DeleteJSON: `{"conversation":["b","a"]}`})
	if !ok {
		t.Fatal("numeric id refused")
	}
	if d.ID != 127223 || d.Kind != service.KindConversation || len(d.IDs) != 2 || d.IDs[0] != "a" {
		t.Errorf("deletion = %+v, want id 127223, kind conversation, ids [a b]", d)
	}
	for _, id := range []string{"x", "", "0", "-5", "12.5", "99999999999999999999"} {
		if _, ok := deletion(liveperson.DeletionRequest{ID: id}); ok {
			t.Errorf("id %q accepted, want it unreadable", id)
		}
	}
	if d, _ := deletion(liveperson.DeletionRequest{ID: "1", IsCanceled: true}); d.Status != service.LPCanceled {
		t.Errorf("is_canceled without status: %q, want CANCELED", d.Status)
	}
}

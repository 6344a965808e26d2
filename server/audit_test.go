package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// TestListAuditRecords reads the trail over the wire: the records of the calls made, oldest
// first, page by page, by erasure, with names and outcomes as the API gives them.
func TestListAuditRecords(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	a := h.submit(rid1, customerID("AUDIT-A"))
	b := h.submit("4a7c1f62-0d5e-4f3b-9b7e-000000000002", customerID("AUDIT-B"))
	if _, err := h.client.Cancel(ctx, &erasurev1.CancelRequest{Name: a.GetName(), Reason: "AUDIT-A asked to stop"}); err != nil {
		t.Fatal(err)
	}

	var got []*erasurev1.AuditRecord
	req := &erasurev1.ListAuditRecordsRequest{PageSize: 1}
	for range 10 {
		res, err := h.client.ListAuditRecords(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetRecords()) > 1 {
			t.Fatalf("a page of size 1 holds %d records", len(res.GetRecords()))
		}
		got = append(got, res.GetRecords()...)
		if res.GetNextPageToken() == "" {
			break
		}
		req.PageToken = res.GetNextPageToken()
	}
	want := []struct{ method, action, erasure string }{
		{"Submit", "submit", a.GetName()},
		{"Submit", "submit", b.GetName()},
		{"Cancel", "cancel", a.GetName()},
	}
	if len(got) != len(want) {
		t.Fatalf("ListAuditRecords = %v, want %d records", got, len(want))
	}
	for i, w := range want {
		r := got[i]
		if r.GetSequence() != uint64(i+1) || r.GetMethod() != w.method || r.GetAction() != w.action || r.GetErasure() != w.erasure ||
			r.GetOutcome() != "OK" || r.GetPrincipal() != "anonymous" || r.GetAccountId() != "1234" || r.GetTime() == nil {
			t.Errorf("record %d = %v, want %d %s %s on %s, OK by anonymous", i, r, i+1, w.method, w.action, w.erasure)
		}
		if r.GetDetail() != "" {
			t.Errorf("record %d carries detail %q (a free-text reason?)", i, r.GetDetail())
		}
	}

	ofA, err := h.client.ListAuditRecords(ctx, &erasurev1.ListAuditRecordsRequest{Name: a.GetName()})
	if err != nil || len(ofA.GetRecords()) != 2 || ofA.GetRecords()[1].GetAction() != "cancel" {
		t.Errorf("records of %s = %v, %v; want its submit and cancel", a.GetName(), ofA.GetRecords(), err)
	}
	since, err := h.client.ListAuditRecords(ctx, &erasurev1.ListAuditRecordsRequest{StartTime: got[2].GetTime()})
	if err != nil || len(since.GetRecords()) == 0 || since.GetRecords()[0].GetSequence() > 3 {
		t.Errorf("records since the cancel = %v, %v; want them to include it", since.GetRecords(), err)
	}
	_, err = h.client.ListAuditRecords(ctx, &erasurev1.ListAuditRecordsRequest{PageToken: req.GetPageToken(), Name: b.GetName()})
	if status.Code(err) != codes.InvalidArgument || reasonOf(err) != "INVALID_PAGE_TOKEN" {
		t.Errorf("a token with another filter = %v, want INVALID_ARGUMENT INVALID_PAGE_TOKEN", err)
	}
	if _, err := h.client.ListAuditRecords(ctx, &erasurev1.ListAuditRecordsRequest{Name: "erasures/../x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a malformed name = %v, want INVALID_ARGUMENT", err)
	}
}

package service

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	for i := range 23 {
		acct := "1111"
		if i%3 == 0 {
			acct = "2222"
		}
		res := e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), acct, customer(fmt.Sprint("c", i))))
		if acct == "1111" {
			want = append(want, res.Erasure.ID)
		}
	}
	var got []string
	tok := ""
	pages := 0
	for {
		page, err := e.svc.List(ctx, ListRequest{AccountID: "1111", PageSize: 4, PageToken: tok})
		if err != nil {
			t.Fatalf("List page %d: %v", pages, err)
		}
		pages++
		if len(page.Erasures) > 4 {
			t.Fatalf("page %d has %d erasures, page size 4", pages, len(page.Erasures))
		}
		for _, er := range page.Erasures {
			got = append(got, er.ID)
		}
		if page.NextPageToken == "" {
			break
		}
		tok = page.NextPageToken
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged List of account 1111 (-want +got):\n%s", diff)
	}
	if pages != 4 { // 15 erasures in pages of 4; the last page is not followed by an empty one
		t.Errorf("pages = %d, want 4", pages)
	}
}

func TestListFilterByState(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1", customer("a")))
	e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1", customer("b")))
	if _, err := e.svc.Cancel(ctx, a.Erasure.Name(), ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.List(ctx, ListRequest{States: []State{StateCancelled}})
	if err != nil || len(res.Erasures) != 1 || res.Erasures[0].ID != a.Erasure.ID {
		t.Errorf("List(CANCELLED) = %+v, %v; want only %s", res.Erasures, err, a.Erasure.ID)
	}
}

func TestListBadPageToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 3 {
		e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1", customer(fmt.Sprint(i))))
	}
	page, err := e.svc.List(ctx, ListRequest{PageSize: 1})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("List = %v, token %q", err, page.NextPageToken)
	}
	if _, err := e.svc.List(ctx, ListRequest{PageSize: 1, PageToken: page.NextPageToken, AccountID: "1"}); KindOf(err) != KindInvalid {
		t.Errorf("token reused with another filter: err = %v, want Invalid", err)
	}
	if _, err := e.svc.List(ctx, ListRequest{PageToken: "!!!"}); KindOf(err) != KindInvalid {
		t.Errorf("garbage token: err = %v, want Invalid", err)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1", customer("a")))
	got, err := e.svc.Cancel(ctx, res.Erasure.Name(), "duplicate ticket")
	if err != nil || got.State != StateCancelled || got.Reason != "duplicate ticket" {
		t.Fatalf("Cancel = %+v, %v; want CANCELLED with reason", got, err)
	}
	again, err := e.svc.Cancel(ctx, res.Erasure.Name(), "again")
	if err != nil || again.Revision != got.Revision {
		t.Errorf("second Cancel = rev %d, %v; want unchanged rev %d", again.Revision, err, got.Revision)
	}
	if _, err := e.svc.Cancel(ctx, "erasures/nope", ""); KindOf(err) != KindNotFound {
		t.Errorf("Cancel unknown: %v, want NotFound", err)
	}
	if _, err := e.svc.Cancel(ctx, "nope", ""); KindOf(err) != KindInvalid {
		t.Errorf("Cancel bad name: %v, want Invalid", err)
	}
}

func TestCancelRefusedOnceWithLivePerson(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tt := range []struct {
		path []State
		want ErrorKind
	}{
		{[]State{StateResolving, StateScheduled, StateSubmitted, StateDeleting}, KindFailedPrecondition},
		{[]State{StateResolving, StateCompleted}, KindFailedPrecondition},
		{[]State{StateResolving, StateAwaitingConfirmation}, -1},
	} {
		res := e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", len(tt.path)*7+int(tt.path[len(tt.path)-1])), "1", customer(fmt.Sprint(tt.path))))
		for _, s := range tt.path {
			if _, err := e.svc.update(ctx, res.Erasure.ID, func(r *record) error { r.State = s; return nil }); err != nil {
				t.Fatalf("move to %s: %v", s, err)
			}
		}
		_, err := e.svc.Cancel(ctx, res.Erasure.Name(), "")
		if tt.want == -1 {
			if err != nil {
				t.Errorf("Cancel in %s: %v, want success", tt.path[len(tt.path)-1], err)
			}
		} else if KindOf(err) != tt.want {
			t.Errorf("Cancel in %s: %v, want kind %v", tt.path[len(tt.path)-1], err, tt.want)
		}
	}
}

func TestUpdateRefusesIllegalTransition(t *testing.T) {
	e := newEnv(t)
	res := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1", customer("a")))
	_, err := e.svc.update(context.Background(), res.Erasure.ID, func(r *record) error { r.State = StateCompleted; return nil })
	if KindOf(err) != KindFailedPrecondition {
		t.Errorf("RECEIVED → COMPLETED: %v, want FailedPrecondition", err)
	}
	got, _ := e.svc.Status(context.Background(), res.Erasure.Name())
	if got.State != StateReceived || got.Revision != res.Erasure.Revision {
		t.Errorf("after a refused transition: %s rev %d, want RECEIVED rev %d (nothing written)", got.State, got.Revision, res.Erasure.Revision)
	}
}

func TestListFilterByExternalRef(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		req := submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1", customer(fmt.Sprint("c", i)))
		switch i % 3 {
		case 0:
			req.ExternalRef = "TICKET-42"
		case 1:
			req.ExternalRef = "TICKET-420" // a longer ref sharing the prefix must not match
		}
		res := e.submit(req)
		if req.ExternalRef == "TICKET-42" {
			want = append(want, res.Erasure.ID)
		}
	}
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("List by external_ref does not end")
		}
		page, err := e.svc.List(ctx, ListRequest{ExternalRef: "TICKET-42", PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatalf("List page %d: %v", pages, err)
		}
		for _, er := range page.Erasures {
			if er.ExternalRef != "TICKET-42" {
				t.Errorf("List(external_ref TICKET-42) returned %s with external_ref %q", er.ID, er.ExternalRef)
			}
			got = append(got, er.ID)
		}
		if tok = page.NextPageToken; tok == "" {
			break
		}
		if _, err := e.svc.List(ctx, ListRequest{ExternalRef: "TICKET-420", PageSize: 2, PageToken: tok}); KindOf(err) != KindInvalid {
			t.Errorf("token reused with another external_ref: err = %v, want Invalid", err)
		}
		if _, err := e.svc.List(ctx, ListRequest{PageSize: 2, PageToken: tok}); KindOf(err) != KindInvalid {
			t.Errorf("token reused without the external_ref filter: err = %v, want Invalid", err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List(external_ref TICKET-42) (-want +got):\n%s", diff)
	}
	res, err := e.svc.List(ctx, ListRequest{ExternalRef: "NO-SUCH"})
	if err != nil || len(res.Erasures) != 0 || res.NextPageToken != "" {
		t.Errorf("List(external_ref NO-SUCH) = %d erasures, token %q, %v; want none", len(res.Erasures), res.NextPageToken, err)
	}
}

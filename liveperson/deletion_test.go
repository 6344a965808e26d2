package liveperson_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/google/go-cmp/cmp"
)

func TestDeletionLifecycle(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	ctx := context.Background()
	c := chat(acct+"0000000001", "DEL-1", "del@example.com", t0.Add(-48*time.Hour))
	_ = e.sim.AddChat(c)

	r, err := e.c.CreateDeletion(ctx, acct, liveperson.KindEngagement, []string{c.EngagementID})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.SiteID != acct || r.DeleteJSON != `{"engagement":["`+c.EngagementID+`"]}` || !r.RequestTime.Equal(t0) {
		t.Errorf("create = %+v", r)
	}
	other, err := e.c.CreateDeletion(ctx, acct, liveperson.KindConsumer, []string{"p-x"})
	if err != nil {
		t.Fatal(err)
	}
	status := func(id string) string {
		t.Helper()
		g, err := e.c.GetDeletion(ctx, acct, id)
		if err != nil {
			t.Fatal(err)
		}
		return g.Status
	}
	if s := status(r.ID); s != liveperson.StatusNotStarted {
		t.Errorf("status = %s, want NOT_STARTED", s)
	}
	cancelled, err := e.c.CancelDeletion(ctx, acct, other.ID)
	if err != nil || !cancelled.IsCanceled || cancelled.CancelledBy == "" || cancelled.CancelTimestamp.IsZero() {
		t.Fatalf("cancel = %+v, %v", cancelled, err)
	}

	e.advance(5*24*time.Hour + time.Minute)
	if s := status(r.ID); s != liveperson.StatusInProgress {
		t.Errorf("status after the cancel window = %s, want IN_PROGRESS", s)
	}
	_, err = e.c.CancelDeletion(ctx, acct, r.ID)
	wantKind(t, err, liveperson.KindTerminal)

	e.advance(20 * 24 * time.Hour)
	if s := status(r.ID); s != liveperson.StatusDone {
		t.Errorf("status after 25 days = %s, want DONE", s)
	}
	got, err := e.c.SearchEngagements(ctx, acct, liveperson.EngagementQuery{
		From: t0.Add(-28 * 24 * time.Hour), To: t0, VisitorID: c.VisitorID})
	if err != nil || len(got) != 1 || !got[0].ContentRead || !got[0].Masked() {
		t.Errorf("after DONE: %+v, %v; want one masked record", got, err)
	}

	list, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{Status: liveperson.StatusCanceled,
		FromDate: t0, ToDate: t0})
	if err != nil || len(list) != 1 || list[0].ID != other.ID {
		t.Errorf("list canceled = %+v, %v", list, err)
	}
	q, _ := url.ParseQuery(e.sim.CallsTo(lpsim.ServiceRTBF, lpsim.OpList)[0].Query)
	if q.Get("fromDate") != "2026-03-15" || q.Get("toDate") != "2026-03-15" || q.Get("status") != "CANCELED" {
		t.Errorf("list query = %v", q)
	}
}

func TestDeletionValidation(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	ctx := context.Background()
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for name, tc := range map[string]struct {
		kind liveperson.DeletionKind
		ids  []string
	}{
		"none":      {liveperson.KindEngagement, nil},
		"too many":  {liveperson.KindEngagement, many},
		"duplicate": {liveperson.KindConversation, []string{"a", "a"}},
		"empty id":  {liveperson.KindConsumer, []string{""}},
		"ticketing": {"ticketing", []string{"a"}},
	} {
		_, err := e.c.CreateDeletion(ctx, acct, tc.kind, tc.ids)
		if liveperson.KindOf(err) != liveperson.KindInvalid {
			t.Errorf("%s: err = %v, want KindInvalid", name, err)
		}
	}
	if n := len(e.sim.Calls()); n != 0 {
		t.Errorf("%d calls sent for invalid requests, want 0", n)
	}
	open := conversation("open-1", "p-1", "O-1", "o@example.com", t0.Add(-time.Hour))
	open.Status = "OPEN"
	_ = e.sim.AddConversation(open)
	_, err := e.c.CreateDeletion(ctx, acct, liveperson.KindConversation, []string{"open-1"})
	wantKind(t, err, liveperson.KindTerminal)
	if err.(*liveperson.Error).Status != 400 || strings.Contains(err.Error(), "open-1") {
		t.Errorf("err = %v, want a 400 naming no id", err)
	}
}

func TestDeletionQuota(t *testing.T) {
	a := lpsim.DefaultAccount(acct, "us")
	a.MonthlyQuota = 2
	e := newEnv(t, lpsim.Config{Accounts: []lpsim.Account{a}})
	ctx := context.Background()
	for i := range 2 {
		if _, err := e.c.CreateDeletion(ctx, acct, liveperson.KindConsumer, []string{fmt.Sprint("p-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.c.CreateDeletion(ctx, acct, liveperson.KindConsumer, []string{"p-3"})
	if !liveperson.IsQuotaExhausted(err) || liveperson.IsRetryable(err) {
		t.Fatalf("third create: %v, want quota exhausted", err)
	}
	if n := len(e.sim.CallsTo(lpsim.ServiceRTBF, lpsim.OpCreate)); n != 3 {
		t.Errorf("%d create calls, want 3 (no retry of the 429)", n)
	}
	e.advance(20 * 24 * time.Hour) // into April: a new month, a new quota
	if _, err := e.c.CreateDeletion(ctx, acct, liveperson.KindConsumer, []string{"p-3"}); err != nil {
		t.Errorf("create in the next month: %v", err)
	}
}

// TestCreateNeverRetried: every failure after the create may have been sent
// is an unknown outcome, reported after exactly one attempt.
func TestCreateNeverRetried(t *testing.T) {
	for name, f := range map[string]lpsim.Fault{
		"500 after":       {Kind: lpsim.FaultStatus, Status: 500, After: true},
		"503 before":      {Kind: lpsim.FaultStatus, Status: 503},
		"reset after":     {Kind: lpsim.FaultReset, After: true},
		"reset before":    {Kind: lpsim.FaultReset},
		"hang after":      {Kind: lpsim.FaultHang, After: true},
		"malformed after": {Kind: lpsim.FaultMalformed, After: true},
		"truncated":       {Kind: lpsim.FaultTruncated},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, lpsim.Config{}, liveperson.WithCallTimeout(300*time.Millisecond))
			f.Service, f.Op, f.Times = lpsim.ServiceRTBF, lpsim.OpCreate, 1
			e.sim.AddFault(f)
			_, err := e.c.CreateDeletion(context.Background(), acct, liveperson.KindEngagement, []string{"SECRET-ID-42"})
			if !liveperson.IsOutcomeUnknown(err) {
				t.Fatalf("err = %v, want outcome unknown", err)
			}
			if strings.Contains(err.Error(), "SECRET-ID-42") {
				t.Errorf("error names an id: %v", err)
			}
			if n := len(e.sim.CallsTo(lpsim.ServiceRTBF, lpsim.OpCreate)); n != 1 {
				t.Errorf("%d create calls, want 1", n)
			}
			if len(e.clk.Sleeps()) != 0 {
				t.Errorf("waited %v, want no retry", e.clk.Sleeps())
			}
			// Reconciliation finds the request when LivePerson did create it.
			list, err := e.c.ListDeletions(context.Background(), acct, liveperson.DeletionFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if want := f.After || f.Kind == lpsim.FaultTruncated; (len(list) == 1) != want {
				t.Errorf("listed %d requests, want created=%v", len(list), want)
			}
		})
	}
}

// TestDeletionAnswersWithoutEcho: get and list answers document no
// delete_json; they decode all the same, keep requested_by, and say that
// the body was not echoed.
func TestDeletionAnswersWithoutEcho(t *testing.T) {
	const one = `{"request_id":127223,"siteId":"20762324","request_time":"2018-01-04T14:07:32.000Z",` +
		`"requested_by":"erasured-app","status":"IN_PROGRESS"}`
	answers := map[string]string{
		"/api/account/" + acct + "/personal-data-deletion/127223": one, // by id as an object
		"/api/account/" + acct + "/personal-data-deletion": `[` + one + `,{"request_id":"127224","siteid":"20762324",` +
			`"request_time":"2018-01-05T09:00:00.000Z","requested_by":"Mike","status":"DONE","delete_json":null}]`,
	}
	_, c := newRecorder(t, func(r recorded) string { return answers[r.Path] })
	ctx := context.Background()
	g, err := c.GetDeletion(ctx, acct, "127223")
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListDeletions(ctx, acct, liveperson.DeletionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("list = %+v, want 2 requests", list)
	}
	want := time.Date(2018, 1, 4, 14, 7, 32, 0, time.UTC)
	for _, r := range []liveperson.DeletionRequest{g, list[0], list[1]} {
		if r.SiteID != "20762324" || r.RequestedBy == "" || r.Status == "" || r.RequestTime.IsZero() {
			t.Errorf("request %+v lost a documented field", r)
		}
		if r.Echoed() {
			t.Errorf("request %s: Echoed() = true without delete_json", r.ID)
		}
		if _, _, err := r.Targets(); !errors.Is(err, liveperson.ErrNotEchoed) {
			t.Errorf("request %s: Targets() error = %v, want ErrNotEchoed", r.ID, err)
		}
	}
	if g.ID != "127223" || g.RequestedBy != "erasured-app" || g.Status != liveperson.StatusInProgress || !g.RequestTime.Equal(want) {
		t.Errorf("get = %+v", g)
	}
	if list[1].ID != "127224" || list[1].RequestedBy != "Mike" || list[1].Status != liveperson.StatusDone {
		t.Errorf("list[1] = %+v", list[1])
	}

	echoed := liveperson.DeletionRequest{DeleteJSON: `{"engagement":["2","1"]}`}
	kind, ids, err := echoed.Targets()
	if !echoed.Echoed() || err != nil || kind != liveperson.KindEngagement || !cmp.Equal(ids, []string{"1", "2"}) {
		t.Errorf("echoed Targets() = %v, %v, %v", kind, ids, err)
	}
	bad := liveperson.DeletionRequest{DeleteJSON: `{"engagement":["1"],"consumer":["p"]}`}
	if _, _, err := bad.Targets(); err == nil || errors.Is(err, liveperson.ErrNotEchoed) {
		t.Errorf("two kinds: Targets() error = %v, want a malformed echo", err)
	}
}

package service

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// auditRow is what a test compares of an audit entry (sequence and time are checked apart).
type auditRow struct{ principal, method, action, erasure, account, detail string }

func rowOf(e AuditEntry) auditRow {
	return auditRow{e.Principal, e.Method, e.Action, e.Erasure, e.Account, e.Detail}
}

// trail reads the whole audit trail, one small page at a time.
func trail(t *testing.T, svc *Service, q AuditQuery) []AuditEntry {
	t.Helper()
	q.PageSize = 2
	var out []AuditEntry
	for range 1000 {
		page, err := svc.ListAudit(context.Background(), q)
		if err != nil {
			t.Fatalf("ListAudit(%+v): %v", q, err)
		}
		out = append(out, page.Entries...)
		if page.NextPageToken == "" {
			return out
		}
		q.PageToken = page.NextPageToken
	}
	t.Fatal("ListAudit never reached the last page")
	return nil
}

func wantRows(t *testing.T, what string, got []AuditEntry, want []auditRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if g := rowOf(got[i]); g != want[i] || got[i].Outcome != AuditOK {
			t.Errorf("%s[%d] = %+v outcome %q, want %+v outcome OK", what, i, g, got[i].Outcome, want[i])
		}
	}
}

// TestAuditRecordsEachSuccessfulCall: every audited call that succeeds leaves exactly one entry,
// with its principal and what it acted on, and calls that fail or only read leave none (the
// server records failures).
func TestAuditRecordsEachSuccessfulCall(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	portal := WithPrincipal(context.Background(), "portal")
	dpo := WithPrincipal(context.Background(), "dpo")

	manual := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	manual.Confirmation = ConfirmationManual
	a, err := e.svc.Submit(portal, manual)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Submit(portal, manual); err != nil { // a retry
		t.Fatal(err)
	}
	dup := submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("ABC-123"))
	dup.Confirmation = ConfirmationManual
	if res, err := e.svc.Submit(portal, dup); err != nil || !res.Deduplicated {
		t.Fatalf("second Submit for the subject = %+v, %v; want deduplicated", res, err)
	}
	b := e.submit(submitReq("00000000-0000-4000-8000-000000000003", "1234", customer("NOBODY")))
	e.settle()
	if _, err := e.svc.Preview(portal, "1234", customer("ABC-123"), nil); err != nil {
		t.Fatal(err)
	}
	plan, err := e.svc.Resolve(dpo, a.Erasure.Name(), nil) // a read: not audited
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Resolve(dpo, a.Erasure.Name(), &Decision{Confirm: true, PlanEtag: "stale"}); KindOf(err) != KindAborted {
		t.Fatalf("confirm with a stale etag = %v, want Aborted", err)
	}
	if _, err := e.svc.Resolve(dpo, a.Erasure.Name(), &Decision{Confirm: true, PlanEtag: plan.Plan.Etag}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(dpo, b.Erasure.Name(), "the customer withdrew"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(dpo, b.Erasure.Name(), "again"); err != nil {
		t.Fatal(err)
	}
	c := e.submit(submitReq("00000000-0000-4000-8000-000000000004", "1234", customer("REJECTED-1")))
	if _, err := e.svc.Resolve(dpo, c.Erasure.Name(), &Decision{Reject: true, Reason: "x"}); KindOf(err) != KindFailedPrecondition {
		t.Fatalf("reject of an automatic erasure = %v, want FailedPrecondition", err)
	}

	ida, idb, idc := a.Erasure.ID, b.Erasure.ID, c.Erasure.ID
	want := []auditRow{
		{"portal", "Submit", AuditSubmit, ida, "1234", ""},
		{"portal", "Submit", AuditSubmit, ida, "1234", "retry"},
		{"portal", "Submit", AuditSubmit, ida, "1234", "deduplicated"},
		{"anonymous", "Submit", AuditSubmit, idb, "1234", ""},
		{"portal", "Resolve", AuditPreview, "", "1234", ""},
		{"dpo", "Resolve", AuditConfirm, ida, "1234", ""},
		{"dpo", "Cancel", AuditCancel, idb, "1234", ""},
		{"dpo", "Cancel", AuditCancel, idb, "1234", "unchanged"},
		{"anonymous", "Submit", AuditSubmit, idc, "1234", ""},
	}
	all := trail(t, e.svc, AuditQuery{})
	wantRows(t, "trail", all, want)
	for i, got := range all {
		if got.Sequence != uint64(i+1) || !got.Time.Equal(e.clock.Now()) {
			t.Errorf("entry %d: sequence %d time %v, want %d at %v", i, got.Sequence, got.Time, i+1, e.clock.Now())
		}
	}
	wantRows(t, "trail of a", trail(t, e.svc, AuditQuery{Erasure: a.Erasure.Name()}), []auditRow{want[0], want[1], want[2], want[5]})
	wantRows(t, "trail of b", trail(t, e.svc, AuditQuery{Erasure: b.Erasure.Name()}), []auditRow{want[3], want[6], want[7]})
}

// TestAuditRejectAndRemoteCancel: a rejection, and a cancel that had to cancel LivePerson
// requests first, are recorded too.
func TestAuditRejectAndRemoteCancel(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	ctx := WithPrincipal(context.Background(), "desk")
	manual := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	manual.Confirmation = ConfirmationManual
	a := e.submit(manual)
	e.settle()
	if _, err := e.svc.Resolve(ctx, a.Erasure.Name(), &Decision{Reject: true, Reason: "ABC-123 is not ours"}); err != nil {
		t.Fatal(err)
	}
	b := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("ABC-123")))
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(b.Erasure.Name(), StateSubmitted)
	if _, err := e.svc.Cancel(ctx, b.Erasure.Name(), "withdrawn"); err != nil {
		t.Fatal(err)
	}
	e.wantState(b.Erasure.Name(), StateCancelled)
	wantRows(t, "trail", trail(t, e.svc, AuditQuery{}), []auditRow{
		{"anonymous", "Submit", AuditSubmit, a.Erasure.ID, "1234", ""},
		{"desk", "Resolve", AuditReject, a.Erasure.ID, "1234", ""},
		{"anonymous", "Submit", AuditSubmit, b.Erasure.ID, "1234", ""},
		{"desk", "Cancel", AuditCancel, b.Erasure.ID, "1234", ""},
	})
	raw := rawAudit(t, e.db)
	if bytes.Contains(raw, []byte("ABC-123")) || bytes.Contains(raw, []byte("withdrawn")) {
		t.Errorf("the audit trail holds an identifier or a free-text reason:\n%s", raw)
	}
}

// TestAuditSettleBatchFoundUnderItsErasures: one entry for the call, listed in the trail of
// every erasure the batch moved on.
func TestAuditSettleBatchFoundUnderItsErasures(t *testing.T) {
	e, _, b, ours, _ := holdB(t)
	before := len(trail(t, e.svc, AuditQuery{}))
	if _, err := e.svc.SettleBatch(WithPrincipal(context.Background(), "ops"), "1234", 2, ours, false); err != nil {
		t.Fatal(err)
	}
	all := trail(t, e.svc, AuditQuery{})
	if len(all) != before+1 {
		t.Fatalf("SettleBatch added %d entries, want 1", len(all)-before)
	}
	settle := all[len(all)-1]
	want := auditRow{"ops", "SettleBatch", AuditSettle, "", "1234", fmt.Sprintf("liveperson_request %d", ours)}
	if rowOf(settle) != want || settle.BatchID != 2 {
		t.Errorf("settle entry = %+v, want %+v for batch 2", settle, want)
	}
	ofB := trail(t, e.svc, AuditQuery{Erasure: b})
	if n := len(ofB); n == 0 || ofB[n-1].Sequence != settle.Sequence {
		t.Errorf("trail of the settled batch's erasure = %+v, want it to end with the settle entry", ofB)
	}
}

// TestAuditPagesAndFilters: pages are bounded, follow each other without gaps or repeats, and
// a token only works with the filters it was issued for; a start time skips older entries.
func TestAuditPagesAndFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var names []string
	for i := range 7 {
		res := e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1234", customer(fmt.Sprintf("PAGE-%d", i))))
		names = append(names, res.Erasure.Name())
		e.clock.Advance(time.Minute)
	}
	if _, err := e.svc.Cancel(ctx, names[2], ""); err != nil {
		t.Fatal(err)
	}
	page, err := e.svc.ListAudit(ctx, AuditQuery{PageSize: 3})
	if err != nil || len(page.Entries) != 3 || page.NextPageToken == "" {
		t.Fatalf("first page = %+v, %v; want 3 entries and a token", page, err)
	}
	if _, err := e.svc.ListAudit(ctx, AuditQuery{PageSize: 3, PageToken: page.NextPageToken, Erasure: names[2]}); KindOf(err) != KindInvalid {
		t.Errorf("a token with other filters = %v, want Invalid", err)
	}
	if _, err := e.svc.ListAudit(ctx, AuditQuery{PageToken: "zz"}); KindOf(err) != KindInvalid {
		t.Errorf("a malformed token = %v, want Invalid", err)
	}
	if _, err := e.svc.ListAudit(ctx, AuditQuery{Erasure: "nope"}); KindOf(err) != KindInvalid {
		t.Errorf("a malformed erasure name = %v, want Invalid", err)
	}
	all := trail(t, e.svc, AuditQuery{})
	for i, got := range all {
		if got.Sequence != uint64(i+1) {
			t.Fatalf("trail sequences %v, want 1..8 in order", all)
		}
	}
	if len(all) != 8 {
		t.Fatalf("trail has %d entries, want 8", len(all))
	}
	start := all[4].Time // the fifth Submit
	since := trail(t, e.svc, AuditQuery{Start: start})
	if len(since) != 4 || since[0].Sequence != 5 {
		t.Errorf("trail since %v = %+v, want entries 5..8", start, since)
	}
	ofThird := trail(t, e.svc, AuditQuery{Erasure: names[2], Start: all[1].Time.Add(time.Second)})
	if len(ofThird) != 2 || ofThird[0].Action != AuditSubmit || ofThird[1].Action != AuditCancel {
		t.Errorf("trail of the third erasure = %+v, want its submit and cancel", ofThird)
	}
	if got := trail(t, e.svc, AuditQuery{Start: e.clock.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("trail from the future = %+v, want none", got)
	}
}

// TestAuditTimeNeverGoesBack: a clock that steps back does not put an entry before the
// previous one, so a start time finds every entry made after it.
func TestAuditTimeNeverGoesBack(t *testing.T) {
	e := newEnv(t)
	e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("T-1")))
	first := e.clock.Now()
	e.clock.Advance(-time.Hour)
	e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("T-2")))
	all := trail(t, e.svc, AuditQuery{})
	if len(all) != 2 || all[1].Time.Before(all[0].Time) {
		t.Fatalf("trail = %+v, want two entries in time order", all)
	}
	if got := trail(t, e.svc, AuditQuery{Start: first}); len(got) != 2 {
		t.Errorf("trail since the first entry = %d entries, want 2", len(got))
	}
}

// TestAuditKeptThroughCompactionAndRestart: compacting the change history and restarting leave
// the trail as it was.
func TestAuditKeptThroughCompactionAndRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 5 {
		res := e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1234", customer(fmt.Sprintf("KEEP-%d", i))))
		if _, err := e.svc.Cancel(ctx, res.Erasure.Name(), ""); err != nil {
			t.Fatal(err)
		}
	}
	before := trail(t, e.svc, AuditQuery{})
	if err := e.svc.Compact(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if e.db.Oldest() <= 2 {
		t.Fatalf("oldest revision %d after compaction: nothing was compacted", e.db.Oldest())
	}
	e.restart()
	after := trail(t, e.svc, AuditQuery{})
	if len(after) != len(before) || len(after) != 10 {
		t.Fatalf("trail after compaction and restart: %d entries, want %d", len(after), len(before))
	}
	for i := range before {
		if rowOf(after[i]) != rowOf(before[i]) || after[i].Sequence != before[i].Sequence || !after[i].Time.Equal(before[i].Time) {
			t.Errorf("entry %d changed: %+v, was %+v", i, after[i], before[i])
		}
	}
	// New entries continue the sequence.
	e.submit(submitReq("00000000-0000-4000-8000-000000000099", "1234", customer("KEEP-9")))
	if all := trail(t, e.svc, AuditQuery{}); all[len(all)-1].Sequence != 11 {
		t.Errorf("the entry after a restart has sequence %d, want 11", all[len(all)-1].Sequence)
	}
}

// rawAudit is every key and value of the Audit bucket, as stored.
func rawAudit(t *testing.T, db store.DB) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Audit, nil, func(k, v []byte) (bool, error) {
			buf.Write(k)
			buf.WriteByte(' ')
			buf.Write(v)
			buf.WriteByte('\n')
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAuditFailedSubmitLeavesNoEntry: the service records successes only.
func TestAuditFailedSubmitLeavesNoEntry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ONE")))
	if _, err := e.svc.Submit(ctx, submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("OTHER"))); KindOf(err) != KindConflict {
		t.Fatalf("request_id reused = %v, want Conflict", err)
	}
	if _, err := e.svc.Submit(ctx, submitReq("00000000-0000-4000-8000-000000000002", "1234", customer(" "))); KindOf(err) != KindInvalid {
		t.Fatalf("blank subject = %v, want Invalid", err)
	}
	if got := trail(t, e.svc, AuditQuery{}); len(got) != 1 {
		t.Errorf("trail = %+v, want the one successful Submit", got)
	}
	if strings.Contains(string(rawAudit(t, e.db)), "ONE") {
		t.Error("the audit trail holds the subject's identifier")
	}
}

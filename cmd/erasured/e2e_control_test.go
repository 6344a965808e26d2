package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// TestE2EManualConfirmAndReject: MANUAL erasures wait for an approver; a stale plan_etag is
// refused with ABORTED, the submitter cannot approve, a rejected plan sends nothing.
func TestE2EManualConfirmAndReject(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	alice := service.WithPrincipal(context.Background(), "alice")
	bob := service.WithPrincipal(context.Background(), "bob")
	jane, john := e.chatsOf(lpsim.DemoCustomerID), e.chatsOf(lpsim.DemoOpenCustomerID)
	nJane := e.submit(customerID(lpsim.DemoCustomerID), chatOnly, manual)
	nJohn := e.submit(customerID(lpsim.DemoOpenCustomerID), chatOnly, manual)
	for _, n := range []string{nJane, nJohn} {
		if got := e.waitState(n, service.StateAwaitingConfirmation); got.BlockedOn != service.BlockedConfirmation {
			t.Errorf("%s: blocked_on %s, want CONFIRMATION", n, blockedName(got.BlockedOn))
		}
	}
	plan, records := e.planOf(nJane)
	if want := planEntries("engagement", "FOUND", jane...); !slices.Equal(records, want) {
		t.Errorf("plan = %v, want %v", records, want)
	}
	johnPlan, _ := e.planOf(nJohn)

	decide := func(ctx context.Context, name string, d service.Decision) (service.ResolveResult, error) {
		return e.svc.Resolve(ctx, name, &d)
	}
	_, err := decide(bob, nJane, service.Decision{Confirm: true, PlanEtag: johnPlan.Etag})
	var se *service.Error
	if !errors.As(err, &se) || se.Kind != service.KindAborted || se.Metadata["plan_etag"] != plan.Etag {
		t.Errorf("confirm with a stale plan_etag = %v, want ABORTED naming the current etag", err)
	}
	if _, err := decide(alice, nJane, service.Decision{Confirm: true, PlanEtag: plan.Etag}); service.KindOf(err) != service.KindPermissionDenied {
		t.Errorf("confirm by the submitter = %v, want PERMISSION_DENIED", err)
	}
	if got := e.status(nJane); got.State != service.StateAwaitingConfirmation {
		t.Fatalf("after refused decisions: %s, want AWAITING_CONFIRMATION", got.State)
	}
	res, err := decide(bob, nJane, service.Decision{Confirm: true, PlanEtag: plan.Etag})
	if err != nil || res.Erasure.State != service.StateScheduled {
		t.Fatalf("confirm = %v, %v; want SCHEDULED", res.Erasure, err)
	}
	res, err = decide(bob, nJohn, service.Decision{Reject: true, Reason: "not our customer"})
	if err != nil || res.Erasure.State != service.StateRejected || res.Erasure.Reason != "not our customer" {
		t.Fatalf("reject = %+v, %v; want REJECTED with the reason", res.Erasure, err)
	}
	if _, err := decide(bob, nJohn, service.Decision{Confirm: true, PlanEtag: johnPlan.Etag}); service.KindOf(err) != service.KindFailedPrecondition {
		t.Errorf("confirm after reject = %v, want FAILED_PRECONDITION", err)
	}

	e.advance(e2eBatchMaxWait)
	e.waitState(nJane, service.StateSubmitted)
	if want := []string{body("engagement", jane)}; !slices.Equal(e.bodies(), want) {
		t.Errorf("LivePerson deletion requests = %v, want only the confirmed plan %v", e.bodies(), want)
	}
	e.deleteAtLivePerson(nJane)
	e.wantMasked(john, nil, false)
	if got := e.status(nJohn); got.State != service.StateRejected || got.Receipt != nil {
		t.Errorf("rejected erasure is now %s (receipt %v)", got.State, got.Receipt)
	}
}

// TestE2ECancelBeforeAndAfterSubmission: cancelled while queued, nothing reaches LivePerson;
// cancelled while its shared LivePerson request is NOT_STARTED, that request is cancelled at
// LivePerson and the other erasure's records are sent again alone; once IN_PROGRESS, refused.
func TestE2ECancelBeforeAndAfterSubmission(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	ctx := context.Background()
	aChats, bChats, cChats := e.chatsOf(lpsim.DemoCustomerID), e.chatsOf(lpsim.DemoOpenCustomerID), e.chatsOf(lpsim.DemoNearMissCustomerID)
	a := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	b := e.submit(customerID(lpsim.DemoOpenCustomerID), chatOnly)
	c := e.submit(customerID(lpsim.DemoNearMissCustomerID), chatOnly)
	for _, n := range []string{a, b, c} {
		e.waitState(n, service.StateScheduled)
	}
	if got, err := e.svc.Cancel(ctx, c, "duplicate ticket"); err != nil || got.State != service.StateCancelled || got.Reason != "duplicate ticket" {
		t.Fatalf("Cancel(queued) = %+v, %v; want CANCELLED with the reason", got, err)
	}
	e.advance(e2eBatchMaxWait)
	e.waitState(a, service.StateSubmitted)
	e.waitState(b, service.StateSubmitted)
	shared := sorted(aChats, bChats)
	if want := []string{body("engagement", shared)}; !slices.Equal(e.bodies(), want) {
		t.Fatalf("LivePerson deletion requests = %v, want A and B packed in one, without C: %v", e.bodies(), want)
	}
	first := e.sim.Deletions(e2eAcct)[0]

	got, err := e.svc.Cancel(ctx, a, "withdrawn")
	if err != nil || got.State != service.StateCancelled {
		t.Fatalf("Cancel(submitted) = %+v, %v; want CANCELLED", got, err)
	}
	if st := e.sim.DeletionStatus(first.ID); st != "CANCELED" {
		t.Errorf("shared LivePerson request %d is %s, want CANCELED", first.ID, st)
	}
	if len(got.LPRequests) != 1 || got.LPRequests[0].Status != service.LPCanceled {
		t.Errorf("cancelled erasure's LP requests = %+v, want the one CANCELED", got.LPRequests)
	}
	if got := e.status(b); got.State != service.StateScheduled {
		t.Errorf("B after A's cancel: %s, want SCHEDULED (its records back in the queue)", got.State)
	}
	e.advance(e2eBatchMaxWait)
	e.waitFor(b, "B sent again", func(x service.Erasure) bool { return x.State == service.StateSubmitted && len(x.LPRequests) == 2 })
	if bodies := e.bodies(); len(bodies) != 2 || bodies[1] != body("engagement", bChats) {
		t.Errorf("LivePerson deletion requests = %v, want B's records resent alone", bodies)
	}
	if left, err := e.svc.QuotaLeft(e2eAcct, 100); err != nil || left != 98 {
		t.Errorf("QuotaLeft = %d, %v; want 98 (the resend cost a unit)", left, err)
	}
	e.advance(e2eCancelWindow + time.Hour)
	e.waitState(b, service.StateDeleting)
	if _, err := e.svc.Cancel(ctx, b, "too late"); service.KindOf(err) != service.KindFailedPrecondition {
		t.Errorf("Cancel(DELETING) = %v, want FAILED_PRECONDITION", err)
	}
	e.advance(e2eDeletionTime)
	e.wantCompleted(b)
	if _, err := e.svc.Cancel(ctx, b, "way too late"); service.KindOf(err) != service.KindFailedPrecondition {
		t.Errorf("Cancel(COMPLETED) = %v, want FAILED_PRECONDITION", err)
	}
	e.wantMasked(bChats, nil, true)
	e.wantMasked(append(aChats, cChats...), nil, false)
	for _, n := range []string{a, c} {
		if got := e.status(n); got.State != service.StateCancelled {
			t.Errorf("%s: %s, want CANCELLED", n, got.State)
		}
	}
}

// TestE2EQuotaExhaustedMidMonthAndRollover: LivePerson refuses a create with 429 (the month's
// quota is spent, used by another tool as far as erasured knows): the erasure is blocked on
// QUOTA until the month turns, nothing is retried before, and then it proceeds.
func TestE2EQuotaExhaustedMidMonthAndRollover(t *testing.T) {
	e := newE2E(t, e2eOptions{simQuota: 1})
	aChats, bChats, wChats := e.chatsOf(lpsim.DemoCustomerID), e.chatsOf(lpsim.DemoOpenCustomerID), e.chatsOf(lpsim.DemoNearMissCustomerID)
	a := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	e.waitState(a, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(a, service.StateSubmitted) // the month's only request

	b := e.submit(customerID(lpsim.DemoOpenCustomerID), chatOnly)
	e.waitState(b, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	got := e.waitFor(b, "blocked on QUOTA", func(x service.Erasure) bool { return x.BlockedOn == service.BlockedQuota })
	if got.State != service.StateScheduled || !got.NextAttemptTime.Equal(april) || got.LastError != "LivePerson deletion quota for this month is spent" {
		t.Errorf("after the 429: %s, next attempt %v, last_error %q; want SCHEDULED until %v", got.State, got.NextAttemptTime, got.LastError, april)
	}
	if left, err := e.svc.QuotaLeft(e2eAcct, 100); err != nil || left != 0 {
		t.Errorf("QuotaLeft = %d, %v; want 0 after LivePerson's 429", left, err)
	}
	// A witness submitted later in the month: its queue is flushed and it is blocked too,
	// which shows the batcher ran and sent nothing.
	w := e.submit(customerID(lpsim.DemoNearMissCustomerID), chatOnly)
	e.waitState(w, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitFor(w, "blocked on QUOTA", func(x service.Erasure) bool { return x.BlockedOn == service.BlockedQuota })
	e.advance(april.Add(-time.Hour).Sub(e.clock.Now())) // late in the month
	e.waitState(a, service.StateDeleting)
	creates := func() (ok, refused int) {
		for _, c := range e.calls(lpsim.ServiceRTBF, lpsim.OpCreate) {
			switch c.Status {
			case 201:
				ok++
			case 429:
				refused++
			default:
				t.Errorf("deletion create answered %d", c.Status)
			}
		}
		return ok, refused
	}
	if ok, refused := creates(); ok != 1 || refused != 1 {
		t.Errorf("deletion creates before the month turned: %d created, %d refused; want 1 and 1 (no retry)", ok, refused)
	}

	e.advance(april.Add(time.Minute).Sub(e.clock.Now()))
	e.waitState(b, service.StateSubmitted)
	e.waitState(w, service.StateSubmitted)
	if bodies := e.bodies(); len(bodies) != 2 || bodies[1] != body("engagement", sorted(bChats, wChats)) {
		t.Errorf("LivePerson deletion requests = %v, want April's first packing B and the witness", bodies)
	}
	if ok, refused := creates(); ok != 2 || refused != 1 {
		t.Errorf("deletion creates: %d created, %d refused; want 2 and 1", ok, refused)
	}
	e.deleteAtLivePerson(b, w)
	e.wantCompleted(a)
	e.wantMasked(append(aChats, append(bChats, wChats...)...), nil, true)
}

// TestE2EBlockedOnKeptWhileOpenConversationHeld: blocked_on must stay OPEN_CONVERSATIONS while an
// erasure holds an open conversation, also right after its other records were batched. (Forming
// a batch used to reset it to NONE until the next re-check.)
func TestE2EBlockedOnKeptWhileOpenConversationHeld(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	name := e.submit(customerID(lpsim.DemoOpenCustomerID))
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait - e2ePoll/2) // a re-check runs alone; the next one is at t0+6h30
	at := e.clock.Now().Add(e2ePoll)
	e.waitFor(name, "re-checked", func(x service.Erasure) bool { return x.NextAttemptTime.Equal(at) })
	e.advance(e2ePoll / 2) // t0+6h: the flush runs alone
	got := e.waitFor(name, "two LivePerson requests", func(x service.Erasure) bool { return len(x.LPRequests) == 2 })
	if got.BlockedOn != service.BlockedOpenConversations {
		t.Errorf("after its closed records were batched: blocked_on %s, want OPEN_CONVERSATIONS (a conversation is still held open)",
			blockedName(got.BlockedOn))
	}
}

// TestE2EAtRiskAndQuotaReserve: with erasured's own monthly quota at 2, one unit is kept in
// reserve for at-risk work: a second routine erasure waits (blocked on QUOTA, LivePerson not
// asked), an at-risk one (received 10 days ago: LivePerson's 25 days no longer fit before its
// due time) is sent at once without waiting for a fuller batch, the waiting routine records
// riding along in the same request. The routine one comes late in the month, so that next
// month's quota still meets its deadline and the forecast does not count it at risk (earlier
// in the month it would be, and take the reserve itself).
func TestE2EAtRiskAndQuotaReserve(t *testing.T) {
	e := newE2E(t, e2eOptions{quota: 2})
	a := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	e.waitState(a, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(a, service.StateSubmitted)

	e.advance(time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC).Sub(e.clock.Now()))
	b := e.submit(customerID(lpsim.DemoOpenCustomerID), chatOnly)
	e.waitState(b, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitFor(b, "blocked on QUOTA", func(x service.Erasure) bool { return x.BlockedOn == service.BlockedQuota })
	if n := len(e.calls(lpsim.ServiceRTBF, lpsim.OpCreate)); n != 1 {
		t.Errorf("%d deletion creates, want 1 (the reserve is erasured's own: LivePerson is not asked)", n)
	}

	received := e.clock.Now().Add(-10 * 24 * time.Hour)
	c := e.submit(customerID(lpsim.DemoNearMissCustomerID), chatOnly, func(r *service.SubmitRequest) { r.ReceivedTime = received })
	got := e.waitState(c, service.StateSubmitted) // no time passes: sent at once
	if !got.AtRisk || !got.DueTime.Equal(service.AddMonth(received)) {
		t.Errorf("at_risk %v, due %v; want true, %v", got.AtRisk, got.DueTime, service.AddMonth(received))
	}
	e.waitState(b, service.StateSubmitted)
	want := body("engagement", sorted(e.chatsOf(lpsim.DemoOpenCustomerID), e.chatsOf(lpsim.DemoNearMissCustomerID)))
	if bodies := e.bodies(); len(bodies) != 2 || bodies[1] != want {
		t.Errorf("LivePerson deletion requests = %v, want a second one %s", bodies, want)
	}
	if left, err := e.svc.QuotaLeft(e2eAcct, 2); err != nil || left != 0 {
		t.Errorf("QuotaLeft = %d, %v; want 0", left, err)
	}
	e.deleteAtLivePerson(b, c)
	e.wantCompleted(a)
}

// TestE2EVerificationFailsWithEvidence: LivePerson reports DONE and masks a record's attributes,
// but a line the person wrote survives in its content (a chat's transcript, a conversation's
// messages). It is queued once more (a second request for it alone); when it survives that too
// the erasure FAILS with evidence (the LivePerson requests) and without any identifier. The
// pipeline is stopped and started again around each DONE, so it also resumes from the store.
func TestE2EVerificationFailsWithEvidence(t *testing.T) {
	for _, chat := range []bool{true, false} {
		what, kind := "a conversation's messages", "conversation"
		if chat {
			what, kind = "a chat's transcript", "engagement"
		}
		t.Run(what, func(t *testing.T) {
			e := newE2E(t, e2eOptions{})
			opt, records := messagingOnly, e.convsOf(lpsim.DemoCustomerID, "")
			if chat {
				opt, records = chatOnly, e.chatsOf(lpsim.DemoCustomerID)
			}
			stubborn := records[0]
			name := e.submit(customerID(lpsim.DemoCustomerID), opt)
			e.waitState(name, service.StateScheduled)
			e.advance(e2eBatchMaxWait)
			e.waitState(name, service.StateSubmitted)
			e.advance(e2eCancelWindow + time.Hour)
			e.waitState(name, service.StateDeleting)
			e.doneLeavingConsumerLine(stubborn, chat)
			e.waitFor(name, "the surviving record sent again", func(x service.Erasure) bool {
				return len(x.LPRequests) == 2 && x.State == service.StateSubmitted
			})
			if bodies := e.bodies(); len(bodies) != 2 || bodies[1] != body(kind, []string{stubborn}) {
				t.Errorf("LivePerson deletion requests = %v, want a second one for the surviving record only", bodies)
			}
			e.advance(e2eCancelWindow + time.Hour)
			e.waitState(name, service.StateDeleting)
			e.doneLeavingConsumerLine(stubborn, chat)
			got := e.waitState(name, service.StateFailed)
			ds := e.sim.Deletions(e2eAcct)
			if !strings.Contains(got.LastError, "1 record(s) still hold data") || !strings.Contains(got.LastError, fmt.Sprint(ds[0].ID)) ||
				!strings.Contains(got.LastError, fmt.Sprint(ds[1].ID)) {
				t.Errorf("last_error = %q, want the surviving record counted and LivePerson requests %d and %d named", got.LastError, ds[0].ID, ds[1].ID)
			}
			if strings.Contains(got.LastError, stubborn) || strings.Contains(got.LastError, lpsim.DemoCustomerID) || got.Receipt != nil {
				t.Errorf("FAILED erasure: last_error %q, receipt %v; want no identifier and no receipt", got.LastError, got.Receipt)
			}
			if chat {
				e.wantMasked(records[1:], nil, true)
			} else {
				e.wantMasked(nil, records[1:], true)
			}
		})
	}
}

// doneLeavingConsumerLine lets LivePerson's requests reach DONE while one record (a chat, or a
// conversation) keeps a line its consumer wrote, as if LivePerson masked the attributes and
// missed the content: with the pipeline stopped, the deletions due are applied and the record's
// first consumer line is put back as it was; the pipeline, started again, polls and verifies.
func (e *e2eEnv) doneLeavingConsumerLine(id string, chat bool) {
	e.t.Helper()
	e.stopPipeline()
	e.clock.Advance(e2eDeletionTime)
	e.sim.Deletions(e2eAcct) // applies the masking now due
	e.mu.Lock()
	loaded := e.convs[id].Transcript
	if chat {
		loaded = e.chats[id].Transcript
	}
	e.mu.Unlock()
	i := slices.IndexFunc(loaded, func(l lpsim.Line) bool { return l.Author == lpsim.AuthorConsumer })
	if i < 0 {
		e.t.Fatal("demo data: the record has no consumer line")
	}
	var err error
	var now []lpsim.Line
	var attrs []string
	if chat {
		err = e.sim.UpdateChat(id, func(c *lpsim.Chat) { c.Transcript[i] = loaded[i] })
		c, _ := e.sim.Chat(id)
		now, attrs = c.Transcript, []string{c.CustomerID, c.Email}
	} else {
		err = e.sim.UpdateConversation(id, func(c *lpsim.Conversation) { c.Transcript[i] = loaded[i] })
		c, _ := e.sim.Conversation(id)
		now, attrs = c.Transcript, []string{c.CustomerID, c.Email}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if slices.ContainsFunc(attrs, func(a string) bool { return a != lpsim.DeletedMarker }) || now[i].Text == lpsim.DeletedMarker {
		e.t.Fatal("the record is not as the test needs it: attributes masked, one consumer line not")
	}
	e.startPipeline()
}

// TestE2ECancelRefusedOnceRecordsDeleted: DEMO-CUST-2's closed records are deleted at LivePerson
// (DONE) while her open conversation is held, so the erasure is still SCHEDULED; LivePerson has
// made part of it final, so Cancel is refused with FAILED_PRECONDITION and nothing changes.
// Once the conversation closes, it is deleted too and the erasure completes.
func TestE2ECancelRefusedOnceRecordsDeleted(t *testing.T) {
	e := newE2E(t, e2eOptions{consumers: 60})
	open := e.convsOf(lpsim.DemoOpenCustomerID, "OPEN")
	name := e.submit(customerID(lpsim.DemoOpenCustomerID))
	e.waitState(name, service.StateScheduled)
	e.flushWhileHeld(name, 2)
	e.advance(e2eCancelWindow + e2eDeletionTime)
	got := e.waitFor(name, "its LivePerson requests DONE", func(x service.Erasure) bool {
		return len(x.LPRequests) == 2 && !slices.ContainsFunc(x.LPRequests, func(q service.LPRequest) bool { return q.Status != service.LPDone })
	})
	if got.State != service.StateScheduled || got.BlockedOn != service.BlockedOpenConversations {
		t.Errorf("with its closed records deleted: %s, blocked_on %s; want SCHEDULED, OPEN_CONVERSATIONS", got.State, blockedName(got.BlockedOn))
	}
	if _, err := e.svc.Cancel(context.Background(), name, "withdrawn"); service.KindOf(err) != service.KindFailedPrecondition {
		t.Errorf("Cancel after records were deleted = %v, want FAILED_PRECONDITION", err)
	}
	if got := e.status(name); got.State != service.StateScheduled || got.Reason != "" {
		t.Errorf("after the refused cancel: %s (reason %q), want SCHEDULED unchanged", got.State, got.Reason)
	}
	if err := e.sim.CloseConversation(open[0]); err != nil {
		t.Fatal(err)
	}
	e.advance(e2ePoll)
	e.waitFor(name, "the closed conversation queued or sent", func(x service.Erasure) bool { return x.BlockedOn == service.BlockedNone })
	e.advance(e2eBatchMaxWait)
	e.waitFor(name, "3 LivePerson requests", func(x service.Erasure) bool { return len(x.LPRequests) == 3 })
	if bodies := e.bodies(); len(bodies) != 3 || bodies[2] != body("conversation", open) {
		t.Errorf("LivePerson deletion requests = %v, want a third for the conversation that closed", bodies)
	}
	e.deleteAtLivePerson(name)
	e.wantMasked(e.chatsOf(lpsim.DemoOpenCustomerID), e.convsOf(lpsim.DemoOpenCustomerID, ""), true)
}

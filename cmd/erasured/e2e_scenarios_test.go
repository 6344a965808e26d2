package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

func TestE2EChatOnly(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	jane := e.chatsOf(lpsim.DemoCustomerID)
	if len(jane) != 3 {
		t.Fatalf("demo data: %d chats of %s, want 3", len(jane), lpsim.DemoCustomerID)
	}
	name := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	e.waitState(name, service.StateScheduled)
	plan, records := e.planOf(name)
	if want := planEntries("engagement", "QUEUED", jane...); !slices.Equal(records, want) || plan.LivePersonRequestsNeeded != 1 {
		t.Errorf("plan = %v (%d requests), want %v (1 request)", records, plan.LivePersonRequestsNeeded, want)
	}
	e.advance(e2eBatchMaxWait)
	got := e.waitState(name, service.StateSubmitted)
	if want := []string{body("engagement", jane)}; !slices.Equal(e.bodies(), want) {
		t.Errorf("LivePerson deletion requests = %v, want %v", e.bodies(), want)
	}
	if len(got.LPRequests) != 1 || got.LPRequests[0].RecordCount != 3 || got.LPRequests[0].Status != service.LPNotStarted {
		t.Errorf("LP requests = %+v, want one NOT_STARTED request of 3 records", got.LPRequests)
	}
	if n := len(e.calls(lpsim.ServiceMsgHist, "")); n != 0 {
		t.Errorf("a chat-only erasure made %d Messaging Interactions calls", n)
	}
	e.deleteAtLivePerson(name)
	done := e.status(name)
	if !strings.HasPrefix(done.Receipt.VerificationSummary, "3 of 3 re-read records verified") {
		t.Errorf("verification summary = %q, want 3 of 3", done.Receipt.VerificationSummary)
	}
	e.wantMasked(jane, nil, true)
	e.wantMasked(e.chatsOf(lpsim.DemoNearMissCustomerID), e.convsOf(lpsim.DemoCustomerID, ""), false)
}

func TestE2EMessagingOnly(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	convs := e.convsOf(lpsim.DemoCustomerID, "")
	name := e.submit(email(lpsim.DemoEmail), messagingOnly)
	e.waitState(name, service.StateScheduled)
	if _, records := e.planOf(name); !slices.Equal(records, planEntries("conversation", "QUEUED", convs...)) {
		t.Errorf("plan = %v, want exactly %v (no consumer profile, no near-miss %s)", records, convs, lpsim.DemoNearMissEmail)
	}
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	if want := []string{body("conversation", convs)}; !slices.Equal(e.bodies(), want) {
		t.Errorf("LivePerson deletion requests = %v, want %v", e.bodies(), want)
	}
	if n := len(e.calls(lpsim.ServiceEngHist, "")); n != 0 {
		t.Errorf("a messaging-only erasure made %d Engagement History calls", n)
	}
	e.deleteAtLivePerson(name)
	e.wantMasked(nil, convs, true)
	e.wantMasked(e.chatsOf(lpsim.DemoCustomerID), e.convsOf(lpsim.DemoNearMissCustomerID, ""), false)
	if p, _ := e.sim.Consumer(e2eAcct, lpsim.DemoConsumerID); p.FirstName == lpsim.DeletedMarker {
		t.Error("the consumer profile was erased without erase_consumer_profile")
	}
}

func TestE2EBothChannelsWithConsumerProfile(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	chats, convs := e.chatsOf(lpsim.DemoCustomerID), e.convsOf(lpsim.DemoCustomerID, "")
	name := e.submit(customerID(lpsim.DemoCustomerID), withProfile)
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	got := e.waitState(name, service.StateSubmitted)
	want := sorted([]string{body("engagement", chats), body("conversation", convs), body("consumer", []string{lpsim.DemoConsumerID})})
	if bodies := sorted(e.bodies()); !slices.Equal(bodies, want) {
		t.Errorf("LivePerson deletion requests = %v, want one per kind: %v", bodies, want)
	}
	if len(got.LPRequests) != 3 {
		t.Errorf("LP requests = %+v, want 3", got.LPRequests)
	}
	e.deleteAtLivePerson(name)
	done := e.status(name)
	if want := "5 of 5 re-read records verified erased (content masked or record gone); " +
		"1 consumer profile reported deleted by LivePerson, which offers no read to verify it"; done.Receipt.VerificationSummary != want {
		t.Errorf("verification summary = %q, want %q", done.Receipt.VerificationSummary, want)
	}
	e.wantMasked(chats, convs, true)
	if p, ok := e.sim.Consumer(e2eAcct, lpsim.DemoConsumerID); !ok || p.FirstName != lpsim.DeletedMarker || p.Email != lpsim.DeletedMarker {
		t.Errorf("consumer profile after deletion = %+v, want masked", p)
	}
	if p, _ := e.sim.Consumer(e2eAcct, lpsim.DemoNearMissConsumerID); p.FirstName == lpsim.DeletedMarker {
		t.Error("the near-miss neighbour's consumer profile was erased")
	}
	e.wantMasked(e.chatsOf(lpsim.DemoNearMissCustomerID), e.convsOf(lpsim.DemoNearMissCustomerID, ""), false)
	e.wantMasked(e.chatsOf(lpsim.DemoOpenCustomerID), e.convsOf(lpsim.DemoOpenCustomerID, "CLOSE"), false)
}

// Named records that LivePerson does not have.
const (
	missingConv = "00000000-0000-4000-8000-00000000dead"
	missingChat = e2eAcct + "0000000000"
)

// TestE2EExplicitTargets: named records skip the search but are checked: one that does not
// exist is reported NOT_FOUND (in the plan and the receipt, never as erased), an open
// conversation is held until it closes.
func TestE2EExplicitTargets(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	chat := e.chatsOf(lpsim.DemoCustomerID)[0]
	conv := e.convsOf(lpsim.DemoCustomerID, "")[0]
	open := e.convsOf(lpsim.DemoOpenCustomerID, "OPEN")
	if len(open) != 1 {
		t.Fatalf("demo data: %d open conversations of %s, want 1", len(open), lpsim.DemoOpenCustomerID)
	}
	name := e.submit(service.Subject{Kind: service.SubjectTargets,
		ConversationIDs: []string{conv, open[0], missingConv},
		EngagementIDs:   []string{chat, missingChat}})
	got := e.waitState(name, service.StateScheduled)
	if got.BlockedOn != service.BlockedOpenConversations {
		t.Errorf("blocked_on = %s, want OPEN_CONVERSATIONS", blockedName(got.BlockedOn))
	}
	plan, records := e.planOf(name)
	notFound := sorted(planEntries("engagement", "NOT_FOUND", missingChat), planEntries("conversation", "NOT_FOUND", missingConv))
	want := sorted(planEntries("engagement", "QUEUED", chat), planEntries("conversation", "QUEUED", conv),
		planEntries("conversation", "DEFERRED_OPEN", open[0]), notFound)
	if !slices.Equal(records, want) || plan.OpenConversationsHeld != 1 {
		t.Errorf("plan = %v (%d held), want %v (1 held, missing ids not found)", records, plan.OpenConversationsHeld, want)
	}
	// Named records are read by id: no keyword or attribute search at all.
	for _, c := range append(e.calls(lpsim.ServiceEngHist, lpsim.OpSearch), e.calls(lpsim.ServiceMsgHist, lpsim.OpSearch)...) {
		if strings.Contains(c.Body, `"keyword":`) || strings.Contains(c.Body, `"sdeSearch":`) {
			t.Errorf("explicit targets made a search: %s %s", c.Path, c.Body)
		}
	}
	e.flushWhileHeld(name, 2)
	if bodies, want := sorted(e.bodies()), sorted([]string{body("engagement", []string{chat}), body("conversation", []string{conv})}); !slices.Equal(bodies, want) {
		t.Errorf("LivePerson deletion requests = %v, want %v (the open conversation held)", bodies, want)
	}
	e.closeHeld(name, open[0], 3)
	if bodies := e.bodies(); bodies[2] != body("conversation", open) {
		t.Errorf("third LivePerson request = %s, want the conversation closed meanwhile", bodies[2])
	}
	e.deleteAtLivePerson(name)
	rc := e.status(name).Receipt
	if rc.NotFoundCount != 2 || rc.VerificationSummary != "3 of 3 re-read records verified erased (content masked or record gone); 2 named records not found" {
		t.Errorf("receipt: not_found_count %d, summary %q; want 2 not found beside 3 of 3 verified", rc.NotFoundCount, rc.VerificationSummary)
	}
	if _, records := e.planOf(name); !slices.Equal(records, sorted(planEntries("engagement", "VERIFIED", chat),
		planEntries("conversation", "VERIFIED", conv, open[0]), notFound)) {
		t.Errorf("plan when completed = %v, want the missing ids still NOT_FOUND", records)
	}
	e.wantMasked([]string{chat}, []string{conv, open[0]}, true)
	e.wantMasked(e.chatsOf(lpsim.DemoCustomerID)[1:], nil, false)
}

// TestE2EExplicitTargetsNoneExist: an erasure naming only records LivePerson does not have
// completes without any LivePerson request, its receipt counting them not found and verifying
// nothing.
func TestE2EExplicitTargetsNoneExist(t *testing.T) {
	e := newE2E(t, e2eOptions{consumers: 60})
	name := e.submit(service.Subject{Kind: service.SubjectTargets, ConversationIDs: []string{missingConv},
		EngagementIDs: []string{missingChat}})
	e.waitFor(name, "looked up", func(x service.Erasure) bool {
		return x.BlockedOn == service.BlockedSearchLag || x.State == service.StateCompleted
	})
	e.advance(e2eSearchLag)
	done := e.wantCompleted(name)
	rc := done.Receipt
	if rc.NotFoundCount != 2 || strings.Contains(rc.VerificationSummary, "verified") || len(done.LPRequests) != 0 {
		t.Errorf("receipt: not_found_count %d, summary %q, %d LivePerson requests; want 2 not found, nothing verified, no request",
			rc.NotFoundCount, rc.VerificationSummary, len(done.LPRequests))
	}
	if _, records := e.planOf(name); !slices.Equal(records, sorted(planEntries("engagement", "NOT_FOUND", missingChat),
		planEntries("conversation", "NOT_FOUND", missingConv))) {
		t.Errorf("plan = %v, want both named records NOT_FOUND", records)
	}
	if n := len(e.calls(lpsim.ServiceRTBF, "")); n != 0 {
		t.Errorf("%d deletion API calls for records that do not exist", n)
	}
}

// flushWhileHeld takes an erasure holding an open conversation (SCHEDULED since e2eT0,
// re-checked every poll interval) through the flush of its other records. The re-check is moved
// off the flush's instant, so each runs alone: at t0+5h30 a re-check, at t0+6h the flush (want
// LivePerson requests in all), at t0+6h30 a re-check that finds the conversation still open.
func (e *e2eEnv) flushWhileHeld(name string, want int) {
	e.t.Helper()
	e.advance(e2eBatchMaxWait - e2ePoll/2)
	at := e.clock.Now().Add(e2ePoll)
	e.waitFor(name, "re-checked", func(x service.Erasure) bool { return x.NextAttemptTime.Equal(at) })
	e.advance(e2ePoll / 2)
	e.waitFor(name, fmt.Sprintf("%d LivePerson requests", want), func(x service.Erasure) bool { return len(x.LPRequests) == want })
	e.advance(e2ePoll / 2)
	at = e.clock.Now().Add(e2ePoll)
	got := e.waitFor(name, "re-checked, still held", func(x service.Erasure) bool { return x.NextAttemptTime.Equal(at) })
	if got.State != service.StateScheduled || got.BlockedOn != service.BlockedOpenConversations {
		e.t.Errorf("%s holding an open conversation: %s, blocked_on %s; want SCHEDULED, OPEN_CONVERSATIONS",
			name, got.State, blockedName(got.BlockedOn))
	}
	if n := len(e.sim.Deletions(e2eAcct)); n != want {
		e.t.Errorf("%d LivePerson requests while the conversation is open, want %d", n, want)
	}
}

// closeHeld closes the held conversation at LivePerson; the next re-check queues it and the
// batcher sends it, want LivePerson requests in all.
func (e *e2eEnv) closeHeld(name, conv string, want int) {
	e.t.Helper()
	if err := e.sim.CloseConversation(conv); err != nil {
		e.t.Fatal(err)
	}
	e.advance(e2ePoll)
	e.waitFor(name, "the closed conversation queued", func(x service.Erasure) bool {
		return x.BlockedOn == service.BlockedNone && x.NextAttemptTime.IsZero()
	})
	e.advance(e2eBatchMaxWait)
	e.waitFor(name, fmt.Sprintf("%d LivePerson requests", want), func(x service.Erasure) bool {
		return len(x.LPRequests) == want && x.State == service.StateSubmitted
	})
}

func TestE2ENothingFound(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	name := e.submit(customerID("ZQX-NOBODY"))
	got := e.waitFor(name, "blocked on SEARCH_LAG", func(x service.Erasure) bool { return x.BlockedOn == service.BlockedSearchLag })
	if got.State != service.StateResolving || !got.NextAttemptTime.Equal(got.ReceivedTime.Add(e2eSearchLag)) {
		t.Errorf("nothing found yet: %s, next attempt %v; want RESOLVING until received_time + search_lag (%v)",
			got.State, got.NextAttemptTime, got.ReceivedTime.Add(e2eSearchLag))
	}
	e.advance(e2eSearchLag)
	done := e.wantCompleted(name)
	if !strings.HasPrefix(done.Receipt.VerificationSummary, "nothing found") || len(done.Receipt.Counts) != 0 || len(done.LPRequests) != 0 {
		t.Errorf("receipt = %+v, want one saying nothing was found", done.Receipt)
	}
	if n := len(e.sim.Deletions(e2eAcct)); n != 0 {
		t.Errorf("%d LivePerson deletion requests for a subject with no records", n)
	}
}

// TestE2EOpenConversationClosingLater: the subject's open conversation is held (never sent to
// LivePerson while open) and deleted once it has closed.
func TestE2EOpenConversationClosingLater(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	chats := e.chatsOf(lpsim.DemoOpenCustomerID)
	closed, open := e.convsOf(lpsim.DemoOpenCustomerID, "CLOSE"), e.convsOf(lpsim.DemoOpenCustomerID, "OPEN")
	name := e.submit(customerID(lpsim.DemoOpenCustomerID))
	got := e.waitState(name, service.StateScheduled)
	if got.BlockedOn != service.BlockedOpenConversations || !got.NextAttemptTime.Equal(e2eT0.Add(e2ePoll)) {
		t.Errorf("blocked_on %s, next attempt %v; want OPEN_CONVERSATIONS, re-checked at %v",
			blockedName(got.BlockedOn), got.NextAttemptTime, e2eT0.Add(e2ePoll))
	}
	if plan, _ := e.planOf(name); plan.OpenConversationsHeld != 1 {
		t.Errorf("plan holds %d open conversations, want 1", plan.OpenConversationsHeld)
	}
	e.flushWhileHeld(name, 2)
	want := sorted([]string{body("engagement", chats), body("conversation", closed)})
	if bodies := sorted(e.bodies()); !slices.Equal(bodies, want) {
		t.Errorf("LivePerson deletion requests = %v, want %v", bodies, want)
	}
	if got := e.status(name); got.State != service.StateScheduled {
		t.Errorf("with the open conversation held: %s, want SCHEDULED", got.State)
	}
	e.closeHeld(name, open[0], 3)
	if bodies := e.bodies(); bodies[2] != body("conversation", open) {
		t.Errorf("third LivePerson request = %s, want the conversation that closed", bodies[2])
	}
	e.deleteAtLivePerson(name)
	e.wantMasked(chats, append(closed, open...), true)
	for _, c := range e.calls(lpsim.ServiceRTBF, lpsim.OpCreate) {
		if c.Status != 201 {
			t.Errorf("LivePerson answered a deletion create with %d (%s)", c.Status, c.Body)
		}
	}
}

// TestE2ELateAttributesFoundByFinalSweep: a chat whose attributes become searchable after the
// first sweep is found by the final sweep and costs a second LivePerson request.
func TestE2ELateAttributesFoundByFinalSweep(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	chats := e.chatsOf(lpsim.DemoCustomerID)
	name := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	e.waitState(name, service.StateScheduled)
	now := e.clock.Now()
	late := lpsim.Chat{EngagementID: e2eAcct + "7700000001", Account: e2eAcct, VisitorID: "latevisitor",
		Start: now.Add(-40 * time.Minute), End: now.Add(-10 * time.Minute), Ended: true,
		CustomerID: lpsim.DemoCustomerID, Name: "Jane", Surname: "Doe", Email: lpsim.DemoEmail,
		Lines: []string{"hello again", "hi"}}
	e.addChat(late)
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	if want := []string{body("engagement", chats)}; !slices.Equal(e.bodies(), want) {
		t.Fatalf("first LivePerson request = %v, want %v", e.bodies(), want)
	}
	e.advance(e2eCancelWindow + time.Hour)
	e.waitState(name, service.StateDeleting)
	e.advance(e2eDeletionTime)
	// Verified, then the final sweep finds the late chat: queued again and, past its latest safe
	// submit time, sent at once.
	e.waitFor(name, "a second LivePerson request", func(x service.Erasure) bool {
		return len(x.LPRequests) == 2 && x.State == service.StateSubmitted
	})
	if bodies := e.bodies(); len(bodies) != 2 || bodies[1] != body("engagement", []string{late.EngagementID}) {
		t.Errorf("LivePerson deletion requests = %v, want a second one for the late chat only", bodies)
	}
	e.deleteAtLivePerson(name)
	done := e.status(name)
	if len(done.LPRequests) != 2 || !strings.HasPrefix(done.Receipt.VerificationSummary, "4 of 4 re-read") {
		t.Errorf("completed with %d requests, summary %q; want 2 requests, 4 of 4", len(done.LPRequests), done.Receipt.VerificationSummary)
	}
	e.wantMasked(append(chats, late.EngagementID), nil, true)
}

// TestE2ENearMissesNeverTargeted: LivePerson's fuzzy search answers neighbours whose ids or
// emails differ by a character; none of them may end up in a deletion request. The generic
// ownership check (finalChecks) covers every record of every request; this test also shows that
// the fuzzy search really did answer the neighbours.
func TestE2ENearMissesNeverTargeted(t *testing.T) {
	e := newE2E(t, e2eOptions{consumers: 300})
	// A generated near miss: customer id x and a neighbour x + one digit, both with ended chats.
	var x, y string
	var yChat lpsim.Chat
	e.mu.Lock()
	for _, c := range e.chats {
		if !c.Ended || strings.HasPrefix(c.CustomerID, "DEMO") || !strings.ContainsFunc(c.CustomerID, unicode.IsLetter) ||
			c.End.After(e2eT0.Add(-e2eSearchLag)) || c.Start.Before(e2eT0.Add(-300*24*time.Hour)) {
			continue
		}
		for _, n := range e.chats {
			if len(n.CustomerID) == len(c.CustomerID)+1 && strings.HasPrefix(n.CustomerID, c.CustomerID) && n.Ended &&
				!n.Start.Before(e2eT0.Add(-300*24*time.Hour)) && n.End.Before(e2eT0.Add(-e2eSearchLag)) && (x == "" || c.CustomerID < x) {
				x, y, yChat = c.CustomerID, n.CustomerID, n
			}
		}
	}
	e.mu.Unlock()
	if x == "" {
		t.Fatal("the generated data has no near-miss customer ids with chats")
	}
	t.Logf("near miss: %s / %s", x, y)
	hits := e.fuzzyChatHits(x, yChat.Start.Add(-24*time.Hour), yChat.Start.Add(24*time.Hour))
	if !slices.Contains(hits, yChat.EngagementID) {
		t.Fatalf("LivePerson's keyword search for %s does not answer %s's chat: the test shows nothing", x, y)
	}
	if hits := e.fuzzyChatHits(lpsim.DemoEmail, e2eT0.Add(-20*24*time.Hour), e2eT0); !slices.ContainsFunc(hits, func(id string) bool {
		return slices.Contains(e.chatsOf(lpsim.DemoNearMissCustomerID), id)
	}) {
		t.Fatalf("LivePerson's keyword search for %s does not answer %s's chat", lpsim.DemoEmail, lpsim.DemoNearMissEmail)
	}

	nx := e.submit(customerID(x))
	nj := e.submit(email(lpsim.DemoEmail))
	for _, n := range []string{nx, nj} {
		e.waitFor(n, "resolved", func(x service.Erasure) bool {
			return x.State == service.StateScheduled || x.BlockedOn == service.BlockedSearchLag
		})
	}
	e.advance(e2eBatchMaxWait)
	e.waitState(nj, service.StateSubmitted)
	e.waitState(nx, service.StateSubmitted)
	e.deleteAtLivePerson(nx, nj)

	xChats, yChats := e.chatsOf(x), e.chatsOf(y)
	var deleted []string
	for _, d := range e.sim.Deletions(e2eAcct) {
		deleted = append(deleted, d.IDs...)
	}
	for _, id := range append(yChats, e.chatsOf(lpsim.DemoNearMissCustomerID)...) {
		if slices.Contains(deleted, id) {
			t.Errorf("near-miss chat %s was in a LivePerson deletion request", id)
		}
	}
	if !slices.ContainsFunc(xChats, func(id string) bool { return slices.Contains(deleted, id) }) {
		t.Errorf("none of %s's chats %v was deleted", x, xChats)
	}
	e.wantMasked(e.chatsOf(lpsim.DemoNearMissCustomerID), e.convsOf(lpsim.DemoNearMissCustomerID, ""), false)
}

// TestE2EPreview: a preview searches LivePerson now and returns the plan, storing nothing.
func TestE2EPreview(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	plan, err := e.svc.Preview(context.Background(), e2eAcct, customerID(lpsim.DemoCustomerID), nil)
	if err != nil {
		t.Fatalf("Preview = %v", err)
	}
	var records []string
	for _, g := range plan.Groups {
		for _, r := range g.Records {
			records = append(records, g.Kind.String()+":"+r.ID+":"+statusName(r.Status))
		}
	}
	slices.Sort(records)
	want := sorted(planEntries("engagement", "FOUND", e.chatsOf(lpsim.DemoCustomerID)...),
		planEntries("conversation", "FOUND", e.convsOf(lpsim.DemoCustomerID, "")...))
	if !slices.Equal(records, want) || plan.LivePersonRequestsNeeded != 2 {
		t.Errorf("Preview plan = %v (%d requests), want %v (2 requests)", records, plan.LivePersonRequestsNeeded, want)
	}
	if list, err := e.svc.List(context.Background(), service.ListRequest{}); err != nil || len(list.Erasures) != 0 {
		t.Errorf("List after a preview = %d erasures, %v; want none stored", len(list.Erasures), err)
	}
	if n := len(e.calls(lpsim.ServiceRTBF, "")); n != 0 {
		t.Errorf("a preview made %d deletion API calls", n)
	}
}

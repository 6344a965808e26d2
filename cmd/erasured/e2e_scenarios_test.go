package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// The demo subjects' records, as Generate lays them out.
func (e *e2eEnv) chatsOf(customer string) []string {
	return e.chatIDs(func(c lpsim.Chat) bool { return c.CustomerID == customer })
}

func (e *e2eEnv) convsOf(customer string, status string) []string {
	return e.convIDs(func(c lpsim.Conversation) bool {
		return c.CustomerID == customer && (status == "" || c.Status == status)
	})
}

// planOf returns the erasure's plan as "kind:id:status" entries, sorted.
func (e *e2eEnv) planOf(name string) (service.Plan, []string) {
	e.t.Helper()
	res, err := e.svc.Resolve(context.Background(), name, nil)
	if err != nil {
		e.t.Fatalf("Resolve(%s) = %v", name, err)
	}
	var out []string
	for _, g := range res.Plan.Groups {
		for _, r := range g.Records {
			out = append(out, g.Kind.String()+":"+r.ID+":"+statusName(r.Status))
		}
	}
	slices.Sort(out)
	return res.Plan, out
}

func statusName(s service.TargetStatus) string {
	return map[service.TargetStatus]string{service.TargetFound: "FOUND", service.TargetDeferredOpen: "DEFERRED_OPEN",
		service.TargetQueued: "QUEUED", service.TargetSubmitted: "SUBMITTED", service.TargetDone: "DONE",
		service.TargetVerified: "VERIFIED"}[s]
}

func planEntries(kind, status string, ids ...string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, kind+":"+id+":"+status)
	}
	return out
}

func sorted(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return out
}

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
	if !strings.HasPrefix(done.Receipt.VerificationSummary, "3 of 3 records verified") {
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
	if !strings.HasPrefix(done.Receipt.VerificationSummary, "6 of 6") {
		t.Errorf("verification summary = %q, want 6 of 6", done.Receipt.VerificationSummary)
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

// TestE2EExplicitTargets: named records skip the search but are checked: one that does not
// exist is dropped, an open conversation is held until it closes.
func TestE2EExplicitTargets(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	chat := e.chatsOf(lpsim.DemoCustomerID)[0]
	conv := e.convsOf(lpsim.DemoCustomerID, "")[0]
	open := e.convsOf(lpsim.DemoOpenCustomerID, "OPEN")
	if len(open) != 1 {
		t.Fatalf("demo data: %d open conversations of %s, want 1", len(open), lpsim.DemoOpenCustomerID)
	}
	name := e.submit(service.Subject{Kind: service.SubjectTargets,
		ConversationIDs: []string{conv, open[0], "00000000-0000-4000-8000-00000000dead"},
		EngagementIDs:   []string{chat, e2eAcct + "0000000000"}})
	got := e.waitState(name, service.StateScheduled)
	if got.BlockedOn != service.BlockedOpenConversations {
		t.Errorf("blocked_on = %s, want OPEN_CONVERSATIONS", blockedName(got.BlockedOn))
	}
	plan, records := e.planOf(name)
	want := sorted(planEntries("engagement", "QUEUED", chat), planEntries("conversation", "QUEUED", conv),
		planEntries("conversation", "DEFERRED_OPEN", open[0]))
	if !slices.Equal(records, want) || plan.OpenConversationsHeld != 1 {
		t.Errorf("plan = %v (%d held), want %v (1 held, missing ids dropped)", records, plan.OpenConversationsHeld, want)
	}
	// Named records are read by id: no keyword or attribute search at all.
	for _, c := range append(e.calls(lpsim.ServiceEngHist, lpsim.OpSearch), e.calls(lpsim.ServiceMsgHist, lpsim.OpSearch)...) {
		if strings.Contains(c.Body, "keyword") || strings.Contains(c.Body, "sdeSearch") {
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
	e.wantMasked([]string{chat}, []string{conv, open[0]}, true)
	e.wantMasked(e.chatsOf(lpsim.DemoCustomerID)[1:], nil, false)
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
	if len(done.LPRequests) != 2 || !strings.HasPrefix(done.Receipt.VerificationSummary, "4 of 4") {
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

// TestE2EUnsearchableIdentifier: a customer id with a run of digits cannot be searched in
// Messaging Interactions; the erasure says so instead of pretending nothing is there, and its
// chats are still erased.
func TestE2EUnsearchableIdentifier(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	var id string
	e.mu.Lock()
	for _, c := range e.chats {
		if c.Ended && c.CustomerID != "" && strings.Trim(c.CustomerID, "0123456789") == "" &&
			c.Start.After(e2eT0.Add(-300*24*time.Hour)) && c.End.Before(e2eT0.Add(-e2eSearchLag)) && (id == "" || c.CustomerID < id) {
			id = c.CustomerID
		}
	}
	e.mu.Unlock()
	if id == "" {
		t.Fatal("the generated data has no numeric customer id with chats")
	}
	name := e.submit(customerID(id))
	got := e.waitState(name, service.StateScheduled)
	if !got.IdentifierUnsearchable {
		t.Errorf("identifier_unsearchable = false for the numeric customer id %s", id)
	}
	if plan, _ := e.planOf(name); !plan.IdentifierUnsearchable {
		t.Error("plan does not report the identifier as unsearchable")
	}
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
	if done := e.status(name); !done.IdentifierUnsearchable {
		t.Error("identifier_unsearchable lost on completion")
	}
}

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

// TestE2EBlockedOnKeptWhileOpenConversationHeld: blocked_on must stay true while an erasure
// holds an open conversation, also right after its other records were batched.
//
// Bug (service/batch.go, formBatch): every erasure taken into a batch gets
// r.BlockedOn = BlockedNone, even one that still holds an open conversation (target
// DEFERRED_OPEN). Its Status then says SCHEDULED, blocked_on NONE, until the next re-check
// (up to poll_interval later) sets OPEN_CONVERSATIONS again. Whether a client sees it depends
// on whether the re-check and the flush fall in the same pipeline round; here the flush runs
// alone, so it always shows. Run with E2E_BUGS=1 to see it fail.
func TestE2EBlockedOnKeptWhileOpenConversationHeld(t *testing.T) {
	if os.Getenv("E2E_BUGS") == "" {
		t.Skip("bug: service formBatch sets blocked_on NONE on an erasure that still holds an open conversation (E2E_BUGS=1 runs it)")
	}
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

package service

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seedTwoIdentifiers gives customer M-1 a conversation and e-mail m@example.com another, of two
// consumers, so that an alias joining finds a record the subject alone does not.
func (e *pipeEnv) seedTwoIdentifiers() {
	e.lp.convs = append(e.lp.convs,
		ConversationRecord{ConversationID: "c-1", Start: e.ago(20 * 24 * time.Hour), ConsumerIDs: []string{"k-1"}, CustomerIDs: []string{"M-1"}},
		ConversationRecord{ConversationID: "c-2", Start: e.ago(30 * 24 * time.Hour), ConsumerIDs: []string{"k-2"}, Emails: []string{"m@example.com"}},
	)
}

func manualReq(n int, s Subject, aliases ...Subject) SubmitRequest {
	req := submitReq(rid(n), "1234", s)
	req.Confirmation = ConfirmationManual
	req.Channels = []Channel{ChannelMessaging}
	req.Aliases = aliases
	return req
}

// TestJoinSendsAManualPlanBackToReview: an alias joining a MANUAL erasure that awaits
// confirmation may find records the approver has not seen. The erasure goes back to RESOLVING
// with no confirmation, so the plan the approver confirms is the one the alias makes: nothing is
// deleted that was not in it.
func TestJoinSendsAManualPlanBackToReview(t *testing.T) {
	e := newPipeEnv(t)
	e.seedTwoIdentifiers()
	approver := WithPrincipal(context.Background(), "approver")
	name := e.submit(manualReq(1, customer("M-1"))).Erasure.Name()
	e.settle()
	e.wantState(name, StateAwaitingConfirmation)
	before := e.plan(name)

	joined := e.submit(manualReq(2, customer("M-1"), email("m@example.com")))
	if got := joined.Erasure; got.State != StateResolving || got.BlockedOn != BlockedNone || !got.NextAttemptTime.Equal(e.clock.Now()) {
		t.Fatalf("joined: %s blocked %d next %v, want RESOLVING, woken", got.State, got.BlockedOn, got.NextAttemptTime)
	}
	// The plan reviewed before the join, or as it stands before the alias is searched, takes no
	// confirmation.
	for _, etag := range []string{before.Etag, e.plan(name).Etag} {
		if _, err := e.svc.Resolve(approver, name, &Decision{Confirm: true, PlanEtag: etag}); KindOf(err) != KindFailedPrecondition {
			t.Errorf("confirm while the alias is unsearched = %v, want FailedPrecondition", err)
		}
	}
	e.settle()
	e.wantState(name, StateAwaitingConfirmation)
	after := e.plan(name)
	if got := planEntries(after); !slices.Equal(got, []string{"conversation:c-1:FOUND", "conversation:c-2:FOUND"}) || after.Etag == before.Etag {
		t.Fatalf("plan after the join = %v (etag changed: %v), want the alias's conversation in it for review", got, after.Etag != before.Etag)
	}
	if n := len(e.lp.createdBodies()); n != 0 {
		t.Fatalf("%d deletion requests before confirmation", n)
	}
	if _, err := e.svc.Resolve(approver, name, &Decision{Confirm: true, PlanEtag: after.Etag}); err != nil {
		t.Fatal(err)
	}
	e.advance(e.cfg.BatchMaxWait)
	if diff := cmp.Diff([]string{"conversation:[c-1 c-2]"}, e.lp.createdBodies()); diff != "" {
		t.Errorf("deletion requests (-want +got):\n%s", diff)
	}
}

// TestJoinRefusedOnceAManualPlanIsApproved: once a MANUAL erasure's plan is confirmed, new
// identifiers would bring records no approver reviewed into its final sweep. The join is
// refused and nothing is written; an AUTOMATIC erasure in the same state still takes it.
func TestJoinRefusedOnceAManualPlanIsApproved(t *testing.T) {
	e := newPipeEnv(t)
	e.seedTwoIdentifiers()
	name := e.submit(manualReq(1, customer("M-1"))).Erasure.Name()
	e.settle()
	res, err := e.svc.Resolve(WithPrincipal(context.Background(), "approver"), name, &Decision{Confirm: true, PlanEtag: e.plan(name).Etag})
	if err != nil {
		t.Fatal(err)
	}
	confirmed := *res.Erasure
	if confirmed.State != StateScheduled {
		t.Fatalf("confirmed: %s, want SCHEDULED", confirmed.State)
	}
	for range 2 { // a retry of the refused Submit is refused the same way
		_, err := e.svc.Submit(context.Background(), manualReq(2, customer("M-1"), email("m@example.com")))
		var se *Error
		if !asError(err, &se) || se.Kind != KindFailedPrecondition || se.Reason != "PLAN_ALREADY_APPROVED" {
			t.Fatalf("join after confirmation = %v, want FAILED_PRECONDITION PLAN_ALREADY_APPROVED", err)
		}
	}
	if got := e.status(name); got.Revision != confirmed.Revision || got.AliasCount != 0 {
		t.Errorf("after a refused join: rev %d aliases %d, want rev %d and none", got.Revision, got.AliasCount, confirmed.Revision)
	}
	if ids, err := e.svc.identities(confirmed.ID); err != nil || len(ids) != 1 {
		t.Errorf("identities after a refused join = %d, %v; want the subject alone", len(ids), err)
	}
	// Bringing nothing new is no join: the Submit is deduplicated as ever.
	if got := e.submit(manualReq(3, customer("M-1"))); !got.Deduplicated || got.Erasure.ID != confirmed.ID {
		t.Errorf("Submit with the subject alone = %s dedup=%v, want %s", got.Erasure.ID, got.Deduplicated, confirmed.ID)
	}
	e.advance(e.cfg.BatchMaxWait)
	if diff := cmp.Diff([]string{"conversation:[c-1]"}, e.lp.createdBodies()); diff != "" {
		t.Errorf("deletion requests (-want +got):\n%s", diff)
	}

	auto := submitReq(rid(10), "1234", customer("A-1"))
	auto.Channels = []Channel{ChannelMessaging}
	e.lp.convs = append(e.lp.convs, ConversationRecord{ConversationID: "c-3", Start: e.ago(20 * 24 * time.Hour),
		ConsumerIDs: []string{"k-3"}, CustomerIDs: []string{"A-1"}})
	autoName := e.submit(auto).Erasure.Name()
	e.settle()
	e.wantState(autoName, StateScheduled)
	join := submitReq(rid(11), "1234", customer("A-1"))
	join.Aliases = []Subject{email("a@example.com")}
	if got := e.submit(join); !got.Deduplicated || got.Erasure.AliasCount != 1 || got.Erasure.State != StateScheduled {
		t.Errorf("join of an AUTOMATIC erasure = dedup %v aliases %d %s, want it joined, still SCHEDULED",
			got.Deduplicated, got.Erasure.AliasCount, got.Erasure.State)
	}
}

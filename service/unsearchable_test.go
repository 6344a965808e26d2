package service

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPossiblyUnsearchable(t *testing.T) {
	for v, want := range map[string]bool{
		"12345678":             true,
		"+44 7700 900123":      true,
		"(202) 555-0199":       true,
		"123":                  false, // three digits
		"12-34-56":             false, // no run longer than three
		"jane1984@example.com": false,
		"CUST-12345":           false,
		"ÅSA-98765":            false, // letters of any script
		"":                     false,
	} {
		if got := possiblyUnsearchable(v); got != want {
			t.Errorf("possiblyUnsearchable(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestEveryIdentifierUnsearchable(t *testing.T) {
	both := []Channel{ChannelChat, ChannelMessaging}
	ref := func(s Subject) identRef { return identRef{Kind: s.Kind, Digits: digitsOnly(s)} }
	tests := []struct {
		name     string
		ids      []Subject
		channels []Channel
		want     bool
	}{
		{"numeric customer id", []Subject{customer("98765432")}, both, true},
		{"numeric customer id and phone", []Subject{customer("98765432"), phone("+44 7700 900123")}, both, true},
		{"an e-mail alias stands in", []Subject{customer("98765432"), email("kim@example.com")}, both, false},
		{"a consumer id alias stands in", []Subject{customer("98765432"), consumer("k-1")}, both, false},
		{"chat only", []Subject{customer("98765432")}, []Channel{ChannelChat}, false},
		{"explicit targets", []Subject{{Kind: SubjectTargets, ConversationIDs: []string{"1234567"}}}, both, false},
	}
	for _, tt := range tests {
		var refs []identRef
		for _, s := range tt.ids {
			refs = append(refs, ref(s))
		}
		if got := everyIdentifierUnsearchable(refs, tt.channels); got != tt.want {
			t.Errorf("%s: everyIdentifierUnsearchable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestUnsearchableWaitsUntilAnAliasJoins: a numeric customer id finds nothing in Messaging
// Interactions. The erasure does not complete as if nothing existed: it waits. A Submit with an
// e-mail alias joins it, wakes it, and the person's conversations are found through the alias.
func TestUnsearchableWaitsUntilAnAliasJoins(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.digitBlind = true
	e.lp.convs = []ConversationRecord{
		{ConversationID: "c-1", Start: e.ago(40 * 24 * time.Hour), ConsumerIDs: []string{"k-9"}, CustomerIDs: []string{"98765432"}},
		{ConversationID: "c-2", Start: e.ago(60 * 24 * time.Hour), ConsumerIDs: []string{"k-9"}, Emails: []string{"kim@example.com"}},
	}
	req := submitReq(rid(1), "1234", customer("98765432"))
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.SearchLag)
	got := e.wantState(name, StateResolving)
	if got.BlockedOn != BlockedIdentifierUnsearchable || !got.NextAttemptTime.IsZero() || !got.IdentifierUnsearchable {
		t.Fatalf("blocked %d, next %v, unsearchable %v: want BLOCKED_ON_IDENTIFIER_UNSEARCHABLE with nothing scheduled",
			got.BlockedOn, got.NextAttemptTime, got.IdentifierUnsearchable)
	}
	plan := e.plan(name)
	if len(plan.Identifiers) != 1 || !plan.Identifiers[0].PossiblyUnsearchable || !plan.IdentifierUnsearchable {
		t.Errorf("plan identifiers %+v unsearchable %v, want the customer id possibly unsearchable", plan.Identifiers, plan.IdentifierUnsearchable)
	}
	e.advance(30 * 24 * time.Hour)
	e.wantState(name, StateResolving) // it does not complete by itself

	join := submitReq(rid(2), "1234", customer("98765432"))
	join.Aliases = []Subject{email("kim@example.com")}
	joined := e.submit(join)
	if !joined.Deduplicated || joined.Erasure.Name() != name || joined.Erasure.IdentifierUnsearchable ||
		joined.Erasure.BlockedOn != BlockedNone || !joined.Erasure.NextAttemptTime.Equal(e.clock.Now()) {
		t.Fatalf("join = %+v, want the erasure woken, no longer unsearchable", joined.Erasure)
	}
	e.settle()
	// (Sent at once: the month has nearly passed, the erasure is at risk.)
	if got := planEntries(e.plan(name)); !slices.Equal(got, []string{"conversation:c-1:SUBMITTED", "conversation:c-2:SUBMITTED"}) {
		t.Fatalf("plan after the join = %v, want both conversations of the consumer found through the e-mail", got)
	}
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	rc := done.Receipt
	if len(rc.AliasFingerprints) != 1 || rc.AliasFingerprints[0] != e.svc.keys.Fingerprint("1234", email("kim@example.com")) || len(rc.UnsearchedChannels) != 0 {
		t.Errorf("receipt aliases %v unsearched %v, want the e-mail's fingerprint and no unsearched channel", rc.AliasFingerprints, rc.UnsearchedChannels)
	}
	if err := VerifyReceipt(*rc, e.svc.keys.PublicKey()); err != nil {
		t.Errorf("VerifyReceipt: %v", err)
	}
}

// TestUnsearchableConfirmedAsIs: an approver accepts the plan of an erasure whose identifier may
// be unsearchable. What was found is erased; the receipt names messaging as not searched.
func TestUnsearchableConfirmedAsIs(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.digitBlind = true
	e.lp.chats = []ChatRecord{{EngagementID: "9", Start: e.ago(30 * 24 * time.Hour), CustomerIDs: []string{"98765432"}}}
	name := e.submit(submitReq(rid(1), "1234", customer("98765432"))).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	got := e.wantState(name, StateVerifying)
	if got.BlockedOn != BlockedIdentifierUnsearchable || !got.NextAttemptTime.IsZero() {
		t.Fatalf("after the final sweep: blocked %d next %v, want BLOCKED_ON_IDENTIFIER_UNSEARCHABLE", got.BlockedOn, got.NextAttemptTime)
	}
	ctx := WithPrincipal(context.Background(), "approver")
	if _, err := e.svc.Cancel(ctx, name, "late"); KindOf(err) != KindFailedPrecondition {
		t.Errorf("Cancel after the chat was deleted = %v, want FailedPrecondition", err)
	}
	if _, err := e.svc.Resolve(ctx, name, &Decision{Reject: true, Reason: "no"}); KindOf(err) != KindFailedPrecondition {
		t.Errorf("reject while waiting on the identifier = %v, want FailedPrecondition", err)
	}
	if _, err := e.svc.Resolve(ctx, name, &Decision{Confirm: true, PlanEtag: "stale"}); KindOf(err) != KindAborted {
		t.Errorf("confirm with a stale etag = %v, want Aborted", err)
	}
	plan := e.plan(name)
	res, err := e.svc.Resolve(ctx, name, &Decision{Confirm: true, PlanEtag: plan.Etag})
	if err != nil {
		t.Fatal(err)
	}
	done := *res.Erasure
	if done.State != StateCompleted || !done.UnsearchableAccepted || done.Receipt == nil {
		t.Fatalf("confirm = %s accepted %v, want COMPLETED with unsearchable_accepted", done.State, done.UnsearchableAccepted)
	}
	rc := done.Receipt
	if !slices.Equal(rc.UnsearchedChannels, []Channel{ChannelMessaging}) || !strings.HasPrefix(rc.VerificationSummary, "1 of 1 re-read records verified erased (content masked or record gone); messaging not searched") {
		t.Errorf("receipt unsearched %v, summary %q", rc.UnsearchedChannels, rc.VerificationSummary)
	}
	if err := VerifyReceipt(*rc, e.svc.keys.PublicKey()); err != nil {
		t.Errorf("VerifyReceipt: %v", err)
	}
	if st := e.status(name); st.State != StateCompleted || st.Revision != done.Revision {
		t.Errorf("Status after confirm = %s rev %d", st.State, st.Revision)
	}
}

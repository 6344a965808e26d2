package service

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
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

// TestIdentifierUnsearchable: only the person's consumer makes up for an identifier that may be
// unsearchable: one named by a consumer id, or one a searchable identifier led to (covered). A
// searchable identifier that led nowhere does not.
func TestIdentifierUnsearchable(t *testing.T) {
	both := []Channel{ChannelChat, ChannelMessaging}
	ref := func(s Subject) identRef { return identRef{Kind: s.Kind, Digits: digitsOnly(s)} }
	tests := []struct {
		name     string
		ids      []Subject
		channels []Channel
		covered  bool
		want     bool
	}{
		{"numeric customer id", []Subject{customer("98765432")}, both, false, true},
		{"numeric customer id and phone", []Subject{customer("98765432"), phone("+44 7700 900123")}, both, false, true},
		{"an e-mail alias that led nowhere", []Subject{customer("98765432"), email("kim@example.com")}, both, false, true},
		{"an e-mail alias that led to the consumer", []Subject{customer("98765432"), email("kim@example.com")}, both, true, false},
		{"a consumer id alias stands in", []Subject{customer("98765432"), consumer("k-1")}, both, false, false},
		{"no identifier with digits", []Subject{email("kim@example.com"), customer("CUST-12345")}, both, false, false},
		{"chat only", []Subject{customer("98765432")}, []Channel{ChannelChat}, false, false},
		{"explicit targets", []Subject{{Kind: SubjectTargets, ConversationIDs: []string{"1234567"}}}, both, false, false},
	}
	for _, tt := range tests {
		var refs []identRef
		for _, s := range tt.ids {
			refs = append(refs, ref(s))
		}
		if got := identifierUnsearchable(refs, tt.channels, tt.covered); got != tt.want {
			t.Errorf("%s: identifierUnsearchable = %v, want %v", tt.name, got, tt.want)
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
	if len(rc.AliasFingerprints) != 1 || rc.AliasFingerprints[0] != e.publicFP(done.ID, email("kim@example.com")) || len(rc.UnsearchedChannels) != 0 {
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

// TestUnsearchableAliasThatFindsNothing: a numeric customer id with an e-mail alias. The
// person's conversation carries only the customer id, which Messaging Interactions cannot see,
// and the e-mail finds nothing in messaging. The e-mail led to no consumer, so it makes up for
// nothing: the erasure does not complete as "nothing found", it waits; an approver's
// confirmation completes it with messaging named as not searched.
func TestUnsearchableAliasThatFindsNothing(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.digitBlind = true
	e.lp.convs = []ConversationRecord{
		{ConversationID: "c-1", Start: e.ago(40 * 24 * time.Hour), ConsumerIDs: []string{"k-9"}, CustomerIDs: []string{"98765432"}},
	}
	req := submitReq(rid(1), "1234", customer("98765432"))
	req.Aliases = []Subject{email("kim@example.com")}
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
	if !plan.IdentifierUnsearchable || len(plan.Identifiers) != 2 || !plan.Identifiers[0].PossiblyUnsearchable || plan.Identifiers[1].PossiblyUnsearchable {
		t.Errorf("plan unsearchable %v identifiers %+v, want the plan unsearchable, the customer id possibly unsearchable, the e-mail not",
			plan.IdentifierUnsearchable, plan.Identifiers)
	}
	e.advance(30 * 24 * time.Hour)
	e.wantState(name, StateResolving)

	res, err := e.svc.Resolve(WithPrincipal(context.Background(), "approver"), name, &Decision{Confirm: true, PlanEtag: plan.Etag})
	if err != nil {
		t.Fatal(err)
	}
	rc := res.Erasure.Receipt
	if res.Erasure.State != StateCompleted || rc == nil || !slices.Equal(rc.UnsearchedChannels, []Channel{ChannelMessaging}) ||
		!strings.Contains(rc.VerificationSummary, "messaging not searched for certain") {
		t.Fatalf("confirmed: %s receipt %+v, want COMPLETED with messaging unsearched", res.Erasure.State, rc)
	}
}

// TestUnsearchableCoveredOnlyByTheConsumer: whether a numeric customer id is made up for by an
// e-mail alias depends on what the e-mail's search found: the person's consumer through an
// authenticated attribute, or nothing, or only a conversation whose unauthenticated attributes
// carry the e-mail (whose consumer is not followed).
func TestUnsearchableCoveredOnlyByTheConsumer(t *testing.T) {
	tests := []struct {
		name  string
		conv  ConversationRecord
		want  bool
		calls []string
	}{
		{"the e-mail finds nothing", ConversationRecord{Emails: []string{"someone.else@example.com"}}, true, nil},
		{"the e-mail leads to the consumer", ConversationRecord{Emails: []string{"kim@example.com"}}, false, []string{"consumer:k-9"}},
		{"the e-mail is only unauthenticated", ConversationRecord{UnauthEmails: []string{"kim@example.com"}}, true, nil},
	}
	for _, tt := range tests {
		f := newFakeLP()
		f.digitBlind = true
		now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
		found := tt.conv
		found.ConversationID, found.Start, found.ConsumerIDs = "c-2", now.Add(-60*24*time.Hour), []string{"k-9"}
		f.convs = []ConversationRecord{
			{ConversationID: "c-1", Start: now.Add(-40 * 24 * time.Hour), ConsumerIDs: []string{"k-9"}, CustomerIDs: []string{"98765432"}},
			found,
		}
		res, err := pipeline.Search(context.Background(), f, now, "1234",
			[]Subject{customer("98765432"), email("kim@example.com")}, []Channel{ChannelMessaging}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Unsearchable != tt.want || res.ConsumerFound == tt.want {
			t.Errorf("%s: unsearchable %v consumer found %v, want unsearchable %v", tt.name, res.Unsearchable, res.ConsumerFound, tt.want)
		}
		if got := f.searchCalls("consumer:"); !slices.Equal(got, tt.calls) {
			t.Errorf("%s: by-consumer searches %v, want %v", tt.name, got, tt.calls)
		}
	}
}

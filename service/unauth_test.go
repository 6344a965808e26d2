package service

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestUnauthenticatedMatchDoesNotFollowTheConsumer: anyone can type Jane's e-mail into an
// unauthenticated form. The conversation that carries it is erased (it holds her identifier),
// but the consumer who wrote it may be someone else: that consumer's other conversations and
// profile are left alone. A match on authenticated attributes makes the consumer Jane's, as
// before: all its conversations and its profile are erased.
func TestUnauthenticatedMatchDoesNotFollowTheConsumer(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{
		{ConversationID: "c-typed", Start: e.ago(20 * 24 * time.Hour), ConsumerIDs: []string{"k-other"}},
		{ConversationID: "c-other", Start: e.ago(30 * 24 * time.Hour), ConsumerIDs: []string{"k-other"}, Emails: []string{"other@example.com"}},
		{ConversationID: "c-other-bare", Start: e.ago(35 * 24 * time.Hour), ConsumerIDs: []string{"k-other"}},
		{ConversationID: "c-jane", Start: e.ago(40 * 24 * time.Hour), ConsumerIDs: []string{"k-jane"}, Emails: []string{"jane@example.com"}},
		{ConversationID: "c-jane-bare", Start: e.ago(50 * 24 * time.Hour), ConsumerIDs: []string{"k-jane"}},
	}
	e.lp.unauth["c-typed"] = ConversationRecord{Emails: []string{"Jane@Example.com"}}
	req := submitReq(rid(1), "1234", email("jane@example.com"))
	req.Channels = []Channel{ChannelMessaging}
	req.EraseConsumerProfile = true
	name := e.submit(req).Erasure.Name()
	e.settle()

	want := []string{"consumer:k-jane:QUEUED", "conversation:c-jane-bare:QUEUED", "conversation:c-jane:QUEUED", "conversation:c-typed:QUEUED"}
	if got := planEntries(e.plan(name)); !slices.Equal(got, want) {
		t.Errorf("plan = %v, want %v: the typed-in conversation, and only the authenticated consumer followed", got, want)
	}
	if got := e.lp.searchCalls("consumer:"); !slices.Equal(got, []string{"consumer:k-jane"}) {
		t.Errorf("by-consumer searches = %v, want only the consumer of the authenticated match", got)
	}

	// Preview tells the same.
	plan, err := e.svc.Preview(context.Background(), "1234", email("jane@example.com"), []Channel{ChannelMessaging})
	if err != nil {
		t.Fatal(err)
	}
	if got := planEntries(plan); !slices.Equal(got, []string{"conversation:c-jane-bare:FOUND", "conversation:c-jane:FOUND", "conversation:c-typed:FOUND"}) {
		t.Errorf("preview = %v", got)
	}
}

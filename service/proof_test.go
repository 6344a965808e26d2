package service

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// planEntries lists a plan's records as kind:id:status, sorted.
func planEntries(p Plan) []string {
	var out []string
	for _, g := range p.Groups {
		for _, r := range g.Records {
			out = append(out, g.Kind.String()+":"+r.ID+":"+statusName(r.Status))
		}
	}
	slices.Sort(out)
	return out
}

func statusName(s TargetStatus) string {
	names := map[TargetStatus]string{TargetFound: "FOUND", TargetDeferredOpen: "DEFERRED_OPEN", TargetQueued: "QUEUED",
		TargetSubmitted: "SUBMITTED", TargetDone: "DONE", TargetVerified: "VERIFIED", TargetNotFound: "NOT_FOUND"}
	if n, ok := names[s]; ok {
		return n
	}
	return "UNSPECIFIED"
}

func (e *pipeEnv) plan(name string) Plan {
	e.t.Helper()
	res, err := e.svc.Resolve(context.Background(), name, nil)
	if err != nil {
		e.t.Fatalf("Resolve(%s): %v", name, err)
	}
	return res.Plan
}

// TestResolutionKeepsRecordsWhoseContentWasNotRead: a search answer that was read without its
// content cannot show a record already erased, whatever its Masked flag says. Only a record read
// with its content and masked is skipped.
func TestResolutionKeepsRecordsWhoseContentWasNotRead(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.chats = []ChatRecord{
		{EngagementID: "501", Start: e.ago(72 * time.Hour), CustomerIDs: []string{"UNREAD-1"}, Masked: true},
		{EngagementID: "502", Start: e.ago(96 * time.Hour), CustomerIDs: []string{"UNREAD-1"}, ContentRead: true, Masked: true},
	}
	e.lp.convs = []ConversationRecord{
		{ConversationID: "c-501", Start: e.ago(72 * time.Hour), ConsumerIDs: []string{"k-5"}, CustomerIDs: []string{"UNREAD-1"}, Masked: true},
		// Found only through its consumer and carrying no attribute: an adapter that calls
		// "nothing unmasked seen" masked would drop it.
		{ConversationID: "c-502", Start: e.ago(80 * time.Hour), ConsumerIDs: []string{"k-5"}, Masked: true},
		// Read with its content and masked: erased before, not a target.
		{ConversationID: "c-503", Start: e.ago(90 * time.Hour), ConsumerIDs: []string{"k-5"}, ContentRead: true, Masked: true},
	}
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("UNREAD-1"))).Erasure.Name()
	e.settle()
	got := planEntries(e.plan(name))
	want := []string{"conversation:c-501:QUEUED", "conversation:c-502:QUEUED", "engagement:501:QUEUED"}
	if !slices.Equal(got, want) {
		t.Errorf("plan = %v, want %v", got, want)
	}
}

// TestConsumerOnlyConversationIsTarget: every conversation found through the consumer of an
// exact match is the person's, whether or not it carries attributes.
func TestConsumerOnlyConversationIsTarget(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{
		{ConversationID: "c-1", Start: e.ago(30 * 24 * time.Hour), ConsumerIDs: []string{"k-1"}, Emails: []string{"ann@example.com"}},
		{ConversationID: "c-2", Start: e.ago(200 * 24 * time.Hour), ConsumerIDs: []string{"k-1"}, Masked: true},
		{ConversationID: "c-3", Start: e.ago(20 * 24 * time.Hour), ConsumerIDs: []string{"k-2"}}, // someone else
	}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectEmail, Value: "ann@example.com"})
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	got := planEntries(e.plan(name))
	want := []string{"conversation:c-1:QUEUED", "conversation:c-2:QUEUED"}
	if !slices.Equal(got, want) {
		t.Errorf("plan = %v, want %v", got, want)
	}
}

// TestVerificationNeedsContent: a record LivePerson returns without its content proves
// nothing. It is neither verified nor sent again; the step waits and retries, and once the
// content is read and masked the erasure completes.
func TestVerificationNeedsContent(t *testing.T) {
	tests := []struct {
		name   string
		kind   TargetKind
		tamper func(f *fakeLivePerson)
	}{
		{"chat read without transcript", KindEngagement, func(f *fakeLivePerson) { f.unread["601"] = true }},
		{"conversation read without messages", KindConversation, func(f *fakeLivePerson) { f.unread["c-601"] = true }},
		{"chat flagged masked without content", KindEngagement, func(f *fakeLivePerson) { f.flaggedUnread["601"] = true }},
		{"conversation flagged masked without content", KindConversation, func(f *fakeLivePerson) { f.flaggedUnread["c-601"] = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newPipeEnv(t)
			ch := ChannelChat
			if tt.kind == KindEngagement {
				e.lp.chats = []ChatRecord{{EngagementID: "601", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"NOREAD"}}}
			} else {
				ch = ChannelMessaging
				e.lp.convs = []ConversationRecord{{ConversationID: "c-601", Start: e.ago(30 * time.Hour), ConsumerIDs: []string{"k"}, CustomerIDs: []string{"NOREAD"}}}
			}
			req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("NOREAD"))
			req.Channels = []Channel{ch}
			name := e.submit(req).Erasure.Name()
			e.settle()
			e.advance(e.cfg.BatchMaxWait)
			e.lp.advance(LPNotStarted, LPInProgress)
			e.advance(5 * 24 * time.Hour)
			e.lp.advance(LPInProgress, LPDone)
			e.lp.mu.Lock()
			tt.tamper(e.lp)
			e.lp.mu.Unlock()
			e.advance(e.svc.cfg.PollInterval)

			got := e.wantState(name, StateVerifying)
			if got.LastError != "LivePerson returned a record without its content" || got.NextAttemptTime.IsZero() {
				t.Errorf("last_error %q, next attempt %v: want the fixed phrase and a retry", got.LastError, got.NextAttemptTime)
			}
			if n := len(e.lp.createdBodies()); n != 1 {
				t.Errorf("%d deletion requests, want 1: an unread record is not sent again", n)
			}
			if got := planEntries(e.plan(name)); len(got) != 1 || !strings.HasSuffix(got[0], ":DONE") {
				t.Errorf("plan = %v, want the record DONE, not VERIFIED", got)
			}

			e.lp.mu.Lock()
			clear(e.lp.unread)
			clear(e.lp.flaggedUnread)
			e.lp.mu.Unlock()
			e.advance(time.Minute)
			done := e.wantState(name, StateCompleted)
			if !strings.HasPrefix(done.Receipt.VerificationSummary, "1 of 1 re-read records verified erased") {
				t.Errorf("summary %q", done.Receipt.VerificationSummary)
			}
		})
	}
}

// TestPartiallyMaskedRecordVerifies: LivePerson masks the person's lines and attributes but
// keeps the record, its system lines and its consumer participants. That is erased.
func TestPartiallyMaskedRecordVerifies(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{{ConversationID: "c-1", Start: e.ago(30 * time.Hour), ConsumerIDs: []string{"k"}, Emails: []string{"bo@example.com"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectEmail, Value: "bo@example.com"})
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	e.lp.mu.Lock()
	still := len(e.lp.convs) == 1 && len(e.lp.convs[0].ConsumerIDs) == 1
	e.lp.mu.Unlock()
	if !still {
		t.Fatal("the fake dropped the record; this test is about a record that stays, masked")
	}
	if got := planEntries(e.plan(name)); !slices.Equal(got, []string{"conversation:c-1:VERIFIED"}) {
		t.Errorf("plan = %v, want the masked conversation VERIFIED", got)
	}
	if !strings.HasPrefix(done.Receipt.VerificationSummary, "1 of 1 re-read records verified erased (content masked or record gone)") {
		t.Errorf("summary %q", done.Receipt.VerificationSummary)
	}
}

// TestUnmaskedContentFailsAfterOneRequeue: a conversation whose messages are read and still hold
// the person's words is sent once more, and then the erasure fails with the evidence.
func TestUnmaskedContentFailsAfterOneRequeue(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{{ConversationID: "c-1", Start: e.ago(30 * time.Hour), ConsumerIDs: []string{"k"},
		CustomerIDs: []string{"KEPT-1"}}}
	e.lp.kept["c-1"] = true
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("KEPT-1"))
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	e.wantState(name, StateSubmitted)
	if n := len(e.lp.createdBodies()); n != 2 {
		t.Fatalf("%d deletion requests, want the record sent a second time", n)
	}
	e.runLivePersonTimeline()
	got := e.wantState(name, StateFailed)
	if !strings.Contains(got.LastError, "still hold data") {
		t.Errorf("last_error = %q", got.LastError)
	}
}

// TestFinalSweepFollowsConsumersFoundEarlier: the consumer an e-mail led to stays the person's.
// Once the conversation that carried the e-mail is erased no attribute search leads to the
// consumer any more, yet a conversation of that consumer that appeared since is still found by
// the final sweep.
func TestFinalSweepFollowsConsumersFoundEarlier(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{
		{ConversationID: "c-1", Start: e.ago(30 * time.Hour), ConsumerIDs: []string{"k-1"}, Emails: []string{"cy@example.com"}},
	}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectEmail, Value: "cy@example.com"})
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	if got := planEntries(e.plan(name)); !slices.Equal(got, []string{"conversation:c-1:QUEUED"}) {
		t.Fatalf("first plan = %v", got)
	}
	e.lp.mu.Lock()
	e.lp.convs = append(e.lp.convs, ConversationRecord{ConversationID: "c-9", Start: e.ago(time.Hour), ConsumerIDs: []string{"k-1"}})
	e.lp.mu.Unlock()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	e.settle()
	got := planEntries(e.plan(name))
	if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "conversation:c-9:") }) {
		t.Errorf("plan after the final sweep = %v, want the consumer's later conversation c-9 in it", got)
	}
	if st := e.status(name); st.State == StateCompleted {
		t.Errorf("completed with the consumer's later conversation left behind")
	}
}

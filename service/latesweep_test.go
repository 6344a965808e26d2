package service

import (
	"testing"
	"time"
)

// TestNothingFoundSearchesAgainOnlyWhereChatsMayBeLate: an erasure whose first search found
// nothing before search_lag had passed searches again once it has, but only the chat window in
// which a chat can still have become searchable since. That search still finds a chat that ended
// just before the request came in, and one that started the day before and ended after it.
func TestNothingFoundSearchesAgainOnlyWhereChatsMayBeLate(t *testing.T) {
	e := newPipeEnv(t)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("LATE-2"))).Erasure.Name()
	e.settle()
	if got := e.wantState(name, StateResolving); got.BlockedOn != BlockedSearchLag {
		t.Fatalf("blocked on %d, want SEARCH_LAG", got.BlockedOn)
	}
	first := len(e.lp.searchCalls("chat:"))
	// Chats that were not searchable at the first search.
	e.lp.mu.Lock()
	e.lp.chats = append(e.lp.chats,
		ChatRecord{EngagementID: "1", Start: e.ago(90 * time.Minute), CustomerIDs: []string{"LATE-2"}},
		ChatRecord{EngagementID: "2", Start: e.ago(23 * time.Hour), CustomerIDs: []string{"LATE-2"}})
	e.lp.mu.Unlock()
	e.advance(2 * time.Hour)
	if again := len(e.lp.searchCalls("chat:")) - first; again != 1 {
		t.Errorf("the search after search_lag made %d chat searches, want 1 (the first made %d)", again, first)
	}
	got := e.wantState(name, StateScheduled)
	if n := countTargets(got, KindEngagement); n != 2 {
		t.Errorf("%d engagements targeted, want both late chats", n)
	}
}

// countTargets sums an erasure's target counts of kind.
func countTargets(e Erasure, kind TargetKind) int {
	n := 0
	for _, c := range e.TargetCounts {
		if c.Kind == kind {
			n += int(c.Count)
		}
	}
	return n
}

// TestFinalSweepSearchesTheSubjectOnlyWhereChatsMayBeLate: the final sweep searches the
// subject's chats only in the window where one may have become searchable since the erasure was
// resolved, an alias given with the Submit over the whole retention; the late chat is found.
func TestFinalSweepSearchesTheSubjectOnlyWhereChatsMayBeLate(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.chats = []ChatRecord{{EngagementID: "1", Start: e.ago(24 * time.Hour), CustomerIDs: []string{"LATE-3"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("LATE-3"))
	req.Aliases = []Subject{{Kind: SubjectEmail, Value: "late3@example.com"}}
	name := e.submit(req).Erasure.Name()
	e.settle()
	first := len(e.lp.searchCalls("chat:LATE-3"))
	firstAlias := len(e.lp.searchCalls("chat:late3@example.com"))
	e.lp.mu.Lock()
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "2", Start: e.ago(90 * time.Minute), CustomerIDs: []string{"LATE-3"}})
	e.lp.mu.Unlock()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	if n := len(e.lp.searchCalls("chat:LATE-3")) - first; n != 1 {
		t.Errorf("the final sweep made %d chat searches for the subject, want 1", n)
	}
	if n := len(e.lp.searchCalls("chat:late3@example.com")) - firstAlias; n != firstAlias {
		t.Errorf("the final sweep made %d chat searches for the alias, want %d (the whole retention)", n, firstAlias)
	}
	if bodies := e.lp.createdBodies(); len(bodies) != 2 || bodies[1] != "engagement:[2]" {
		t.Fatalf("bodies = %v, want a second request for the late chat", bodies)
	}
	e.runLivePersonTimeline()
	e.wantState(name, StateCompleted)
}

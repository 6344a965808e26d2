package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestReconcileLenientRequestTime: LivePerson's request_time is read leniently (no zone is read
// as UTC, a date alone as midnight, unix seconds could read as millis), so it may be hours off
// or meaningless. The batch's own request, whose create answer was lost, is still found: it is
// followed and nothing is created twice.
func TestReconcileLenientRequestTime(t *testing.T) {
	eastern := time.FixedZone("EDT", -4*3600)
	for _, tc := range []struct {
		name  string
		stamp func(time.Time) time.Time
	}{
		{"US-Eastern local time without a zone, read as UTC", func(t time.Time) time.Time {
			l := t.In(eastern)
			return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
		}},
		{"a date without a time, read as midnight", func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }},
		{"unix seconds read as millis", func(t time.Time) time.Time { return time.UnixMilli(t.Unix()).UTC() }},
		{"no request_time", func(time.Time) time.Time { return time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDocEnv(t)
			e.lp.stampAs = tc.stamp
			e.lp.loseAfter = true
			name := e.sendChat(1, "B")
			e.wantCreates(1)
			e.advance(time.Minute)
			e.wantCreates(1)
			e.wantFollows(name, e.lastRequest())
			e.advance(e.svc.cfg.PollInterval)
			e.wantCreates(1)
		})
	}
}

// TestReconcileRequestedByOnlyChooses: requested_by may pick one request among several, but it
// never makes the batch's own request "not created": after the operator rotates credentials,
// the batch's request carries a name the service has not seen yet, and is still found.
func TestReconcileRequestedByOnlyChooses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rotate  bool // B is created with new credentials: a requested_by not seen before
		foreign bool // another party's request appears after B's first send
		hold    bool // B cannot be told apart: held with both candidates
	}{
		{"credentials rotated", true, false, false},
		{"another party's request beside ours", false, true, false},
		{"credentials rotated and another party's request", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDocEnv(t)
			e.sendChat(1, "A") // teaches the service who it is at LivePerson
			if tc.rotate {
				e.lp.who = "erasured-app-v2"
			}
			e.lp.loseAfter = true
			b := e.sendChat(2, "B")
			own := e.lastRequest()
			var foreign int64
			if tc.foreign {
				foreign = e.lp.addForeign("console-user", e.clock.Now(), 0)
			}
			e.advance(time.Minute)
			e.wantCreates(2)
			if tc.hold {
				got := e.wantState(b, StateScheduled)
				want := slices.Sorted(slices.Values([]int64{own, foreign}))
				if got.BlockedOn != BlockedDeletionOutcomeUnknown || len(got.HeldBatches) != 1 || !slices.Equal(got.HeldBatches[0].Candidates, want) {
					t.Fatalf("erasure: blocked %d, held %+v; want batch 2 held with candidates %v", got.BlockedOn, got.HeldBatches, want)
				}
			} else {
				e.wantFollows(b, own)
			}
			e.advance(e.svc.cfg.PollInterval)
			e.wantCreates(2)
		})
	}
}

// TestReconcileForeignRequestAloneIsClaimed: B's POST never reached LivePerson, and the only
// request since is another party's. requested_by does not rule it out, so B follows it rather
// than be sent: a wrong claim, which verification catches (B's records are still there after
// LivePerson reports DONE), never a false receipt.
func TestReconcileForeignRequestAloneIsClaimed(t *testing.T) {
	e := newDocEnv(t)
	e.sendChat(1, "A")
	e.lp.loseBefore = true
	b := e.sendChat(2, "B")
	foreign := e.lp.addForeign("console-user", e.clock.Now(), 0)
	e.advance(time.Minute)
	e.wantCreates(1)
	e.wantFollows(b, foreign)
	e.runLivePersonTimeline()
	if got := e.status(b); got.State == StateCompleted {
		t.Fatalf("B completed although LivePerson deleted none of its records: %+v", got)
	}
}

// TestReconcileListUnreadableHolds: when LivePerson's list of deletion requests cannot be read
// (refused at once, or failing every time), the batch does not keep retrying for ever while it
// holds its account's send turn: it is held for an operator, with no candidates, its erasure
// saying why, logged and counted, and nothing is sent again.
func TestReconcileListUnreadableHolds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		lists int
	}{
		{"refused (no list rights)", fmt.Errorf("%w: 403", ErrRejected), 1},
		{"unavailable every time", fmt.Errorf("%w: 503", ErrUnavailable), maxListFailures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDocEnv(t)
			e.lp.loseAfter = true
			e.lp.listErr = tc.err
			name := e.sendChat(1, "B")
			first := e.clock.Now()
			for range 30 {
				e.advance(time.Minute)
			}
			e.wantCreates(1)
			if e.lp.lists != tc.lists {
				t.Errorf("LivePerson's list was read %d times, want %d", e.lp.lists, tc.lists)
			}
			if b := e.batchOf(1); b.State != batchHeld || len(b.Candidates) != 0 {
				t.Fatalf("batch 1 = %+v, want HELD without candidates", b)
			}
			got := e.wantState(name, StateScheduled)
			want := []HeldBatch{{BatchID: 1, Kind: KindEngagement, RecordCount: 2, SendTime: first}}
			if got.BlockedOn != BlockedDeletionOutcomeUnknown || got.LastError != heldUnlistedError || !slices.EqualFunc(got.HeldBatches, want, sameHeld) {
				t.Fatalf("erasure: blocked %d, last_error %q, held %+v; want DELETION_OUTCOME_UNKNOWN, %q, %+v",
					got.BlockedOn, got.LastError, got.HeldBatches, heldUnlistedError, want)
			}
			if n := bytes.Count([]byte(e.log.String()), []byte("deletion batch held")); n != 1 {
				t.Errorf("hold logged %d times, want once:\n%s", n, e.log.String())
			}
			if counts, err := e.svc.HeldBatchCounts(); err != nil || counts["1234"] != 1 {
				t.Errorf("HeldBatchCounts() = %v, %v; want 1 for account 1234", counts, err)
			}
			_, err := e.svc.Cancel(context.Background(), name, "changed our mind")
			var se *Error
			if !errors.As(err, &se) || se.Reason != "DELETION_OUTCOME_UNKNOWN" {
				t.Errorf("Cancel = %v, want DELETION_OUTCOME_UNKNOWN (not a retry hint)", err)
			}
			e.advance(30 * 24 * time.Hour)
			e.wantCreates(1)
			// The operator looked at LivePerson and names the request: the batch follows it.
			if _, err := e.svc.SettleBatch(context.Background(), "1234", 1, e.lastRequest(), false); err != nil {
				t.Fatal(err)
			}
			if got := e.wantFollows(name, e.lastRequest()); got.LastError != "" || got.BlockedOn != BlockedNone {
				t.Errorf("settled erasure: last_error %q, blocked %d; want neither", got.LastError, got.BlockedOn)
			}
		})
	}
}

// TestReconcileListRecovers: a list that fails a few times and then answers is no reason to
// hold: the batch finds its request, and a later failure streak counts from zero.
func TestReconcileListRecovers(t *testing.T) {
	e := newDocEnv(t)
	e.lp.loseAfter = true
	e.lp.listErr = fmt.Errorf("%w: 503", ErrUnavailable)
	name := e.sendChat(1, "B")
	for e.lp.lists < maxListFailures-1 {
		e.advance(time.Minute)
	}
	e.lp.listErr = nil
	e.advance(time.Minute)
	e.wantCreates(1)
	e.wantFollows(name, e.lastRequest())
}

// TestReconcileUnlistedHoldIsNotClaimedByLaterBatch: a batch held because the list could not be
// read reserves nothing (it has no candidates), yet its request may exist. When the list works
// again and a later batch of the account, whose POST never reached LivePerson, finds that one
// request, it cannot tell whose it is: it is held too, rather than take the held batch's
// request.
func TestReconcileUnlistedHoldIsNotClaimedByLaterBatch(t *testing.T) {
	e := newDocEnv(t)
	e.sendChat(1, "A")
	e.lp.loseAfter = true
	e.lp.listErr = fmt.Errorf("%w: 403", ErrRejected)
	e.sendChat(2, "B")
	bReq := e.lastRequest()
	e.advance(time.Minute)
	if b := e.batchOf(2); b.State != batchHeld {
		t.Fatalf("batch 2 = %+v, want HELD", b)
	}
	e.lp.listErr = nil
	e.lp.loseBefore = true
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "31", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"C"}})
	c := e.sendChat(3, "C")
	e.advance(time.Minute)
	e.wantCreates(2)
	got := e.wantState(c, StateScheduled)
	if len(got.HeldBatches) != 1 || got.HeldBatches[0].BatchID != 3 || !slices.Equal(got.HeldBatches[0].Candidates, []int64{bReq}) {
		t.Fatalf("C's erasure: requests %+v, held %+v; want batch 3 held with candidate %d", got.LPRequests, got.HeldBatches, bReq)
	}
}

package service

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCancelRefusedOnceDoneAtLivePerson: an open conversation keeps the erasure SCHEDULED while
// its closed records are deleted. Once LivePerson has made anything final, Cancel is refused,
// whatever the erasure's state.
func TestCancelRefusedOnceDoneAtLivePerson(t *testing.T) {
	for _, until := range []string{LPInProgress, LPDone} {
		t.Run(until, func(t *testing.T) {
			e := newPipeEnv(t)
			e.lp.chats = []ChatRecord{{EngagementID: "701", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"HELD-1"}}}
			e.lp.convs = []ConversationRecord{{ConversationID: "c-701", Open: true, Start: e.ago(time.Hour), ConsumerIDs: []string{"k"}, CustomerIDs: []string{"HELD-1"}}}
			name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("HELD-1"))).Erasure.Name()
			e.settle()
			e.advance(e.cfg.BatchMaxWait)
			e.lp.advance(LPNotStarted, LPInProgress)
			if until == LPDone {
				e.lp.advance(LPInProgress, LPDone)
			}
			e.advance(5 * 24 * time.Hour)
			e.wantState(name, StateScheduled) // the open conversation is still held
			_, err := e.svc.Cancel(context.Background(), name, "changed my mind")
			var se *Error
			if !asError(err, &se) || se.Kind != KindFailedPrecondition || se.Reason != "DELETION_FINAL_AT_LIVEPERSON" {
				t.Fatalf("Cancel with a request %s = %v, want FAILED_PRECONDITION DELETION_FINAL_AT_LIVEPERSON", until, err)
			}
			e.wantState(name, StateScheduled)
		})
	}
}

// TestDigitsAloneDoNotSkipMessaging: phone numbers and e-mail addresses holding digits are
// searched in Messaging Interactions like any other identifier.
func TestDigitsAloneDoNotSkipMessaging(t *testing.T) {
	for _, s := range []Subject{
		{Kind: SubjectPhone, Value: "+44 7700 900123"},
		{Kind: SubjectEmail, Value: "jane1984@example.com"},
		customer("CUST-12345"),
	} {
		t.Run(s.Value, func(t *testing.T) {
			e := newPipeEnv(t)
			c := ConversationRecord{ConversationID: "c-1", Start: e.ago(10 * 24 * time.Hour), ConsumerIDs: []string{"k"}}
			switch s.Kind {
			case SubjectPhone:
				c.Phones = []string{"+44 7700 900123"}
			case SubjectEmail:
				c.Emails = []string{s.Value}
			default:
				c.CustomerIDs = []string{s.Value}
			}
			e.lp.convs = []ConversationRecord{c}
			req := submitReq("00000000-0000-4000-8000-000000000001", "1234", s)
			req.Channels = []Channel{ChannelMessaging}
			name := e.submit(req).Erasure.Name()
			e.settle()
			if got := planEntries(e.plan(name)); !slices.Equal(got, []string{"conversation:c-1:QUEUED"}) {
				t.Errorf("plan = %v, want the conversation found through Messaging Interactions", got)
			}
			if n := len(e.lp.searchCalls("sde:")); n < 5 {
				t.Errorf("%d Messaging Interactions searches, want at least 5 (13 months in windows of 89 days)", n)
			}
		})
	}
}

// TestExplicitTargetsNotFound: named records LivePerson does not have are reported as not found,
// never queued, and the receipt does not call them erased.
func TestExplicitTargetsNotFound(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectTargets,
		ConversationIDs: []string{"c-0009", "c-missing"}, EngagementIDs: []string{"999999"}})).Erasure.Name()
	e.settle()
	want := []string{"conversation:c-0009:QUEUED", "conversation:c-missing:NOT_FOUND", "engagement:999999:NOT_FOUND"}
	if got := planEntries(e.plan(name)); !slices.Equal(got, want) {
		t.Errorf("plan = %v, want %v", got, want)
	}
	e.advance(e.cfg.BatchMaxWait)
	if bodies := e.lp.createdBodies(); !slices.Equal(bodies, []string{"conversation:[c-0009]"}) {
		t.Errorf("bodies = %v, want only the conversation that exists", bodies)
	}
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	rc := done.Receipt
	if rc.NotFoundCount != 2 || !strings.Contains(rc.VerificationSummary, "1 of 1 re-read records verified erased") ||
		!strings.Contains(rc.VerificationSummary, "2 named records not found") {
		t.Errorf("receipt not-found %d, summary %q", rc.NotFoundCount, rc.VerificationSummary)
	}
}

// TestExplicitTargetsNoneExist: when no named record exists, the erasure completes saying so.
func TestExplicitTargetsNoneExist(t *testing.T) {
	e := newPipeEnv(t)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectTargets,
		ConversationIDs: []string{"c-missing"}})).Erasure.Name()
	e.settle()
	e.advance(e.cfg.SearchLag)
	done := e.wantState(name, StateCompleted)
	rc := done.Receipt
	if rc.NotFoundCount != 1 || strings.Contains(rc.VerificationSummary, "erased") || !strings.Contains(rc.VerificationSummary, "1 named record not found") {
		t.Errorf("receipt not-found %d, summary %q", rc.NotFoundCount, rc.VerificationSummary)
	}
	if n := len(e.lp.createdBodies()); n != 0 {
		t.Errorf("%d deletion requests for records that do not exist", n)
	}
}

// TestConsumerIDWithoutConversations: a consumer id whose by-consumer search finds nothing is
// not sent for deletion; its profile is reported not found.
func TestConsumerIDWithoutConversations(t *testing.T) {
	e := newPipeEnv(t)
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectConsumerID, Value: "k-none"})
	req.EraseConsumerProfile = true
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	if n := len(e.lp.createdBodies()); n != 0 {
		t.Errorf("%d deletion requests for a consumer with no conversation", n)
	}
	rc := done.Receipt
	if rc.NotFoundCount != 1 || strings.Contains(rc.VerificationSummary, "erased") {
		t.Errorf("receipt not-found %d, summary %q", rc.NotFoundCount, rc.VerificationSummary)
	}
}

// TestResolveHidesConsumerIDSubject: the plan of a consumer_id subject does not return the
// subject's own identifier as the consumer record's id; it shows its fingerprint.
func TestResolveHidesConsumerIDSubject(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectConsumerID, Value: "cons-1"})
	req.EraseConsumerProfile = true
	res := e.submit(req)
	e.settle()
	plan := e.plan(res.Erasure.Name())
	var consumers []PlanRecord
	for _, g := range plan.Groups {
		if g.Kind == KindConsumer {
			consumers = g.Records
		}
		for _, r := range g.Records {
			if r.ID == "cons-1" {
				t.Errorf("plan record of kind %s carries the subject's consumer id", g.Kind)
			}
		}
	}
	if len(consumers) != 1 || consumers[0].ID != "" || consumers[0].Fingerprint != res.Erasure.Fingerprint {
		t.Errorf("consumer records = %+v, want one without id, with the subject's fingerprint", consumers)
	}
}

// TestReceiptSummary: the summary says what was verified and no more.
func TestReceiptSummary(t *testing.T) {
	ts := func(specs ...any) []Target {
		var out []Target
		for i := 0; i < len(specs); i += 3 {
			for range specs[i+2].(int) {
				out = append(out, Target{Kind: specs[i].(TargetKind), Status: specs[i+1].(TargetStatus)})
			}
		}
		return out
	}
	tests := []struct {
		name       string
		targets    []Target
		unsearched bool
		want       string
	}{
		{"all kinds", ts(KindEngagement, TargetVerified, 3, KindConversation, TargetVerified, 4, KindConsumer, TargetDone, 1,
			KindConversation, TargetNotFound, 1, KindEngagement, TargetNotFound, 1), false,
			"7 of 7 re-read records verified erased (content masked or record gone); " +
				"1 consumer profile reported deleted by LivePerson, which offers no read to verify it; 2 named records not found"},
		{"nothing", nil, false, "nothing found: no LivePerson record carries any of the subject's identifiers"},
		{"only not found", ts(KindConsumer, TargetNotFound, 1), false, "nothing found: 1 named record not found at LivePerson"},
		{"profiles only", ts(KindConsumer, TargetDone, 2), false,
			"2 consumer profiles reported deleted by LivePerson, which offers no read to verify them"},
		{"unsearched", nil, true, "nothing found: no LivePerson record carries any of the subject's identifiers; " +
			"messaging not searched for certain: Messaging Interactions may be unable to search some of the subject's identifiers " +
			"and no searchable one led to the person's consumer, and an approver accepted the plan without it"},
	}
	for _, tt := range tests {
		o, err := outcomeOf(tt.targets)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := o.summary(tt.unsearched); got != tt.want {
			t.Errorf("%s: summary\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	for _, st := range []TargetStatus{TargetFound, TargetQueued, TargetSubmitted, TargetDone, TargetDeferredOpen} {
		if _, err := outcomeOf([]Target{{Kind: KindConversation, Status: st}}); err == nil {
			t.Errorf("a conversation in status %s was accepted as complete", statusName(st))
		}
	}
}

// TestOldReceiptsStillVerify signs a receipt the way it was signed before receipts had alias
// fingerprints, unsearched channels and the not-found and unverifiable counts: it still verifies.
func TestOldReceiptsStillVerify(t *testing.T) {
	keys, err := NewKeyring("test", testKey)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	old := struct {
		Erasure             string        `json:"erasure"`
		AccountID           string        `json:"account_id"`
		SubjectFingerprint  string        `json:"subject_fingerprint"`
		Counts              []TargetCount `json:"counts,omitempty"`
		LPRequestIDs        []int64       `json:"lp_request_ids,omitempty"`
		ReceivedTime        time.Time     `json:"received_time"`
		CompleteTime        time.Time     `json:"complete_time"`
		VerificationSummary string        `json:"verification_summary"`
		PreviousHash        string        `json:"previous_hash,omitempty"`
		Hash                string        `json:"hash"`
		Signature           string        `json:"signature"`
		KeyID               string        `json:"key_id"`
	}{Erasure: "erasures/x", AccountID: "1234", SubjectFingerprint: "fp", Counts: []TargetCount{{Kind: KindEngagement, Status: TargetVerified, Count: 1}},
		LPRequestIDs: []int64{7}, ReceivedTime: at, CompleteTime: at.Add(time.Hour), VerificationSummary: "1 of 1 records verified erased (masked or gone)",
		KeyID: keys.SigningKeyID()}
	content, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	rc := Receipt{Erasure: old.Erasure, AccountID: old.AccountID, SubjectFingerprint: old.SubjectFingerprint, Counts: old.Counts,
		LPRequestIDs: old.LPRequestIDs, ReceivedTime: old.ReceivedTime, CompleteTime: old.CompleteTime,
		VerificationSummary: old.VerificationSummary, KeyID: old.KeyID, Hash: hex.EncodeToString(sum[:]),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(keys.signing, content))}
	if err := VerifyReceipt(rc, keys.PublicKey()); err != nil {
		t.Errorf("a receipt signed before the new fields: %v", err)
	}
	rc.NotFoundCount = 1
	if VerifyReceipt(rc, keys.PublicKey()) == nil {
		t.Error("a receipt with a not-found count added after signing verified")
	}
}

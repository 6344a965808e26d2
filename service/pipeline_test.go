package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
)

// settlePipeline runs every due task and batch flush, one at a time, until nothing is due at
// the clock's time. Tests drive the pipeline with it under a fake clock.
func settlePipeline(ctx context.Context, p *Pipeline, now func() time.Time) error {
	for range 10000 {
		ran, err := p.Step(ctx, now())
		if err != nil {
			return err
		}
		if !ran {
			return nil
		}
	}
	return fmt.Errorf("pipeline did not settle")
}

// The pipeline's limits the tests reach.
const (
	maxRejections     = pipeline.MaxRejections
	maxListFailures   = pipeline.MaxListFailures
	requestTimeMargin = pipeline.RequestTimeMargin
)

// The last_error texts the tests look for.
const (
	heldError         = pipeline.HeldError
	heldUnlistedError = pipeline.HeldUnlistedError
	turnWaitError     = pipeline.TurnWaitError
)

// updateBatch changes batch id as stored, behind the pipeline's back (what a crash at some point
// of a step leaves).
func (e *pipeEnv) updateBatch(id uint64, change func(b *batch)) error {
	return e.db.Update(context.Background(), func(tx storeTx) error {
		b, err := pipeline.GetBatch(tx, id)
		if err != nil || b == nil {
			return err
		}
		change(b)
		return pipeline.PutBatch(tx, b)
	})
}

// pipeEnv is a service with a pipeline over a fake LivePerson, driven step by step under a fake
// clock.
type pipeEnv struct {
	*env
	lp  *fakeLivePerson
	p   *Pipeline
	cfg PipelineConfig
}

var testPipelineConfig = PipelineConfig{
	SearchLag:    2 * time.Hour,
	BatchMaxWait: 6 * time.Hour,
}

func newPipeEnv(t *testing.T) *pipeEnv {
	e := &pipeEnv{env: newEnv(t), lp: newFakeLP(), cfg: testPipelineConfig}
	e.p = e.svc.NewPipeline(e.lp, e.cfg)
	return e
}

// restart reopens the store and starts a new pipeline over it: what a crash and restart does.
func (e *pipeEnv) restart() {
	e.env.restart()
	e.p = e.svc.NewPipeline(e.lp, e.cfg)
}

func (e *pipeEnv) settle() {
	e.t.Helper()
	if err := settlePipeline(context.Background(), e.p, e.clock.Now); err != nil {
		e.t.Fatal(err)
	}
}

// advance moves the clock and runs whatever became due.
func (e *pipeEnv) advance(d time.Duration) {
	e.t.Helper()
	e.clock.Advance(d)
	e.settle()
}

func (e *pipeEnv) status(name string) Erasure {
	e.t.Helper()
	got, err := e.svc.Status(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func (e *pipeEnv) wantState(name string, want State) Erasure {
	e.t.Helper()
	got := e.status(name)
	if got.State != want {
		e.t.Fatalf("%s: state %s (blocked %d, last error %q), want %s", name, got.State, got.BlockedOn, got.LastError, want)
	}
	return got
}

// runToCompletion takes submitted requests through LivePerson's timeline.
func (e *pipeEnv) runLivePersonTimeline() {
	e.t.Helper()
	e.lp.advance(LPNotStarted, LPInProgress)
	e.advance(5 * 24 * time.Hour)
	e.lp.advance(LPInProgress, LPDone)
	e.advance(e.svc.cfg.PollInterval)
}

func (e *pipeEnv) ago(d time.Duration) time.Time { return e.clock.Now().Add(-d) }

// seedCustomer gives customer ABC-123 two chats and two conversations (consumer cons-1, who also
// has a third conversation without attributes), plus near misses that must never be touched.
func (e *pipeEnv) seedCustomer() {
	f := e.lp
	f.chats = append(f.chats,
		ChatRecord{EngagementID: "1234000001", Start: e.ago(40 * 24 * time.Hour), CustomerIDs: []string{"ABC-123"}},
		ChatRecord{EngagementID: "1234000002", Start: e.ago(200 * 24 * time.Hour), CustomerIDs: []string{"ABC-123"}, Emails: []string{"x@example.com"}},
		ChatRecord{EngagementID: "1234000003", Start: e.ago(10 * 24 * time.Hour), CustomerIDs: []string{"ABC-1234"}}, // near miss
		ChatRecord{EngagementID: "1234000004", Start: e.ago(12 * 24 * time.Hour), CustomerIDs: []string{"abc-123"}},  // case differs
		ChatRecord{EngagementID: "1234000005", Start: e.ago(500 * 24 * time.Hour), CustomerIDs: []string{"ABC-123"}}, // past retention
	)
	f.convs = append(f.convs,
		ConversationRecord{ConversationID: "c-0001", Start: e.ago(20 * 24 * time.Hour), ConsumerIDs: []string{"cons-1"}, CustomerIDs: []string{"ABC-123"}},
		ConversationRecord{ConversationID: "c-0002", Start: e.ago(100 * 24 * time.Hour), ConsumerIDs: []string{"cons-1"}, CustomerIDs: []string{"ABC-123"}},
		ConversationRecord{ConversationID: "c-0003", Start: e.ago(150 * 24 * time.Hour), ConsumerIDs: []string{"cons-1"}},
		ConversationRecord{ConversationID: "c-0009", Start: e.ago(30 * 24 * time.Hour), ConsumerIDs: []string{"cons-9"}, CustomerIDs: []string{"ABC-1234"}}, // near miss
	)
}

func TestPipelineChatAndMessagingToCompleted(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.EraseConsumerProfile = true
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.wantState(name, StateScheduled)
	res, err := e.svc.Resolve(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	var planned []string
	for _, g := range res.Plan.Groups {
		for _, r := range g.Records {
			planned = append(planned, g.Kind.String()+":"+r.ID)
		}
	}
	want := []string{"engagement:1234000001", "engagement:1234000002", "conversation:c-0001", "conversation:c-0002", "conversation:c-0003", "consumer:cons-1"}
	slices.Sort(want)
	slices.Sort(planned)
	if !slices.Equal(planned, want) {
		t.Fatalf("plan = %v, want exactly %v (near misses, other cases and expired records excluded)", planned, want)
	}

	e.advance(e.cfg.BatchMaxWait) // the queue's oldest target has waited long enough
	got := e.wantState(name, StateSubmitted)
	if len(got.LPRequests) != 3 {
		t.Errorf("LivePerson requests = %+v, want one per kind", got.LPRequests)
	}
	bodies := e.lp.createdBodies()
	slices.Sort(bodies)
	wantBodies := []string{"consumer:[cons-1]", "conversation:[c-0001 c-0002 c-0003]", "engagement:[1234000001 1234000002]"}
	if !slices.Equal(bodies, wantBodies) {
		t.Errorf("deletion bodies = %v, want %v", bodies, wantBodies)
	}

	e.lp.advance(LPNotStarted, LPInProgress)
	e.advance(5 * 24 * time.Hour)
	e.wantState(name, StateDeleting)
	e.lp.advance(LPInProgress, LPDone)
	e.advance(e.svc.cfg.PollInterval)
	done := e.wantState(name, StateCompleted)
	if done.Receipt == nil {
		t.Fatal("COMPLETED without a receipt")
	}
	if err := VerifyReceipt(*done.Receipt, e.svc.keys.PublicKey()); err != nil {
		t.Errorf("VerifyReceipt: %v", err)
	}
	wantSummary := "5 of 5 re-read records verified erased (content masked or record gone); " +
		"1 consumer profile reported deleted by LivePerson, which offers no read to verify it"
	if done.Receipt.VerificationSummary != wantSummary || done.Receipt.UnverifiableCount != 1 {
		t.Errorf("verification summary %q (unverifiable %d), want %q", done.Receipt.VerificationSummary, done.Receipt.UnverifiableCount, wantSummary)
	}
	tampered := *done.Receipt
	tampered.AccountID = "9999"
	if VerifyReceipt(tampered, e.svc.keys.PublicKey()) == nil {
		t.Error("a tampered receipt verified")
	}
}

func TestPipelineNothingFoundWaitsForSearchLag(t *testing.T) {
	e := newPipeEnv(t)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("NOBODY"))).Erasure.Name()
	e.settle()
	got := e.wantState(name, StateResolving)
	if got.BlockedOn != BlockedSearchLag || !got.NextAttemptTime.Equal(got.ReceivedTime.Add(2*time.Hour)) {
		t.Errorf("blocked %d next %v, want SEARCH_LAG until received+2h", got.BlockedOn, got.NextAttemptTime)
	}
	e.advance(2 * time.Hour)
	done := e.wantState(name, StateCompleted)
	if done.Receipt == nil || !strings.HasPrefix(done.Receipt.VerificationSummary, "nothing found") {
		t.Errorf("receipt = %+v, want one saying nothing was found", done.Receipt)
	}
}

func TestPipelineLateAttributesFoundByFinalSweep(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.chats = []ChatRecord{{EngagementID: "1", Start: e.ago(24 * time.Hour), CustomerIDs: []string{"LATE-1"}}}
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("LATE-1"))).Erasure.Name()
	e.settle()
	// A chat that became searchable only after the first sweep.
	e.lp.mu.Lock()
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "2", Start: e.ago(time.Hour), CustomerIDs: []string{"LATE-1"}})
	e.lp.mu.Unlock()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	// The final sweep found the late chat: the erasure went round again, and since its latest
	// safe submit time has passed, the late chat was sent at once.
	again := e.wantState(name, StateSubmitted)
	if bodies := e.lp.createdBodies(); len(bodies) != 2 || bodies[1] != "engagement:[2]" || len(again.LPRequests) != 2 {
		t.Fatalf("bodies = %v, want a second request for the late chat", bodies)
	}
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	if len(done.LPRequests) != 2 {
		t.Errorf("LivePerson requests = %d, want 2 (the second for the late chat)", len(done.LPRequests))
	}
}

func TestPipelineManualConfirmation(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	ctx := context.Background()
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Confirmation = ConfirmationManual
	name := e.submit(req).Erasure.Name()
	e.settle()
	got := e.wantState(name, StateAwaitingConfirmation)
	if got.BlockedOn != BlockedConfirmation {
		t.Errorf("blocked on %d, want CONFIRMATION", got.BlockedOn)
	}
	plan, err := e.svc.Resolve(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Resolve(ctx, name, &Decision{Confirm: true, PlanEtag: "stale"}); KindOf(err) != KindAborted {
		t.Errorf("confirm with a stale etag: %v, want Aborted", err)
	}
	res, err := e.svc.Resolve(ctx, name, &Decision{Confirm: true, PlanEtag: plan.Plan.Etag})
	if err != nil || res.Erasure.State != StateScheduled {
		t.Fatalf("confirm: %v, %v; want SCHEDULED", res.Erasure, err)
	}
	if _, err := e.svc.Resolve(ctx, name, &Decision{Reject: true, Reason: "late"}); KindOf(err) != KindFailedPrecondition {
		t.Errorf("decision after confirmation: %v, want FailedPrecondition", err)
	}
}

func TestPipelineManualReject(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Confirmation = ConfirmationManual
	name := e.submit(req).Erasure.Name()
	e.settle()
	res, err := e.svc.Resolve(context.Background(), name, &Decision{Reject: true, Reason: "not our customer"})
	if err != nil || res.Erasure.State != StateRejected || res.Erasure.Reason != "not our customer" {
		t.Fatalf("reject: %+v, %v", res.Erasure, err)
	}
	e.advance(e.cfg.BatchMaxWait)
	if n := len(e.lp.createdBodies()); n != 0 {
		t.Errorf("%d deletion requests created for a rejected plan", n)
	}
}

func TestPipelineSelfApprovalRefused(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	ctx := WithPrincipal(context.Background(), "alice")
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Confirmation = ConfirmationManual
	res, err := e.svc.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	plan, _ := e.svc.Resolve(ctx, res.Erasure.Name(), nil)
	if _, err := e.svc.Resolve(ctx, res.Erasure.Name(), &Decision{Confirm: true, PlanEtag: plan.Plan.Etag}); KindOf(err) != KindPermissionDenied {
		t.Errorf("submitter confirming its own erasure: %v, want PermissionDenied", err)
	}
	if _, err := e.svc.Resolve(WithPrincipal(context.Background(), "bob"), res.Erasure.Name(), &Decision{Confirm: true, PlanEtag: plan.Plan.Etag}); err != nil {
		t.Errorf("another approver: %v", err)
	}
}

// TestPipelineOutcomeUnknownIsReconciled: LivePerson created the request but the answer was
// lost. The batch is found in LivePerson's list; nothing is sent twice.
func TestPipelineOutcomeUnknownIsReconciled(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.createErr = ErrOutcomeUnknown
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(name, StateScheduled) // the outcome is unknown: still waiting
	e.advance(time.Minute)            // retry: reconcile first
	got := e.wantState(name, StateSubmitted)
	if n := len(e.lp.createdBodies()); n != 1 {
		t.Errorf("%d deletion requests created, want exactly 1", n)
	}
	if len(got.LPRequests) != 1 || got.LPRequests[0].ID != e.lp.requests[0].ID {
		t.Errorf("LP requests = %+v, want the one LivePerson created", got.LPRequests)
	}
}

// TestPipelineCrashAfterIntentResendsOnce: the process died after committing a send but before
// LivePerson saw it. On restart the batch is reconciled (not found) and sent exactly once.
func TestPipelineCrashAfterIntentResendsOnce(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.clock.Advance(e.cfg.BatchMaxWait)
	if err := e.p.Flush(context.Background(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// The send was recorded (Sends = 1) and then the process died before the POST.
	if err := e.updateBatch(1, func(b *batch) { b.Sends = 1 }); err != nil {
		t.Fatal(err)
	}
	e.restart()
	e.settle()
	e.wantState(name, StateSubmitted)
	if n := len(e.lp.createdBodies()); n != 1 {
		t.Errorf("%d deletion requests created, want exactly 1", n)
	}
}

func TestPipelineQuotaExhaustedAndMonthRollover(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.quota = 1
	a := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	a.Channels = []Channel{ChannelChat}
	b := submitReq("00000000-0000-4000-8000-000000000002", "1234", Subject{Kind: SubjectConsumerID, Value: "cons-1"})
	b.Channels = []Channel{ChannelMessaging}
	na, nb := e.submit(a).Erasure.Name(), e.submit(b).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	sa, sb := e.status(na), e.status(nb)
	blocked := sb
	if sb.State == StateSubmitted {
		blocked = sa
	}
	if blocked.State != StateScheduled || blocked.BlockedOn != BlockedQuota {
		t.Fatalf("states %s/%s, blocked %d/%d: want one SUBMITTED and one blocked on QUOTA", sa.State, sb.State, sa.BlockedOn, sb.BlockedOn)
	}
	e.advance(time.Hour) // still the same month: no retry
	if n := len(e.lp.createdBodies()); n != 1 {
		t.Fatalf("%d requests created after a 429 in the same month, want 1", n)
	}
	e.lp.quota = 0 // LivePerson's quota renews with the month
	e.advance(pipeline.NextMonth(e.clock.Now()).Sub(e.clock.Now()))
	if got := e.status(blocked.Name()); got.State != StateSubmitted {
		t.Errorf("after the month turned: %s (blocked %d), want SUBMITTED", got.State, got.BlockedOn)
	}
}

func TestPipelineCancelBeforeAndAfterSubmission(t *testing.T) {
	e := newPipeEnv(t)
	ctx := context.Background()
	e.lp.chats = []ChatRecord{
		{EngagementID: "11", Start: e.ago(time.Hour * 30), CustomerIDs: []string{"A"}},
		{EngagementID: "22", Start: e.ago(time.Hour * 30), CustomerIDs: []string{"B"}},
		{EngagementID: "33", Start: e.ago(time.Hour * 30), CustomerIDs: []string{"C"}},
	}
	chat := func(n int, id string) SubmitRequest {
		r := submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", n), "1234", customer(id))
		r.Channels = []Channel{ChannelChat}
		return r
	}
	na := e.submit(chat(1, "A")).Erasure.Name()
	nb := e.submit(chat(2, "B")).Erasure.Name()
	nc := e.submit(chat(3, "C")).Erasure.Name()
	e.settle()
	// C is cancelled while queued: nothing reaches LivePerson for it.
	if got, err := e.svc.Cancel(ctx, nc, "dup"); err != nil || got.State != StateCancelled {
		t.Fatalf("cancel queued: %+v, %v", got, err)
	}
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(na, StateSubmitted)
	e.wantState(nb, StateSubmitted)
	if bodies := e.lp.createdBodies(); !slices.Equal(bodies, []string{"engagement:[11 22]"}) {
		t.Fatalf("bodies = %v, want A and B packed together without C", bodies)
	}
	// A is cancelled after submission: the shared request is cancelled, B goes back to the queue
	// and is sent again alone.
	if got, err := e.svc.Cancel(ctx, na, "withdrawn"); err != nil || got.State != StateCancelled {
		t.Fatalf("cancel submitted: %+v, %v", got, err)
	}
	if e.lp.requests[0].Status != LPCanceled {
		t.Errorf("shared LivePerson request is %s, want CANCELED", e.lp.requests[0].Status)
	}
	e.wantState(nb, StateScheduled)
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(nb, StateSubmitted)
	if bodies := e.lp.createdBodies(); len(bodies) != 2 || bodies[1] != "engagement:[22]" {
		t.Errorf("bodies = %v, want B resent alone", bodies)
	}
	e.lp.advance(LPNotStarted, LPInProgress)
	e.advance(5 * 24 * time.Hour)
	e.wantState(nb, StateDeleting)
	if _, err := e.svc.Cancel(ctx, nb, "too late"); KindOf(err) != KindFailedPrecondition {
		t.Errorf("cancel while DELETING: %v, want FailedPrecondition", err)
	}
}

func TestPipelineOpenConversationHeldUntilClosed(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{
		{ConversationID: "open-1", Open: true, Start: e.ago(time.Hour * 5), ConsumerIDs: []string{"k"}, CustomerIDs: []string{"OPEN-1"}},
	}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("OPEN-1"))
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	got := e.wantState(name, StateScheduled)
	if got.BlockedOn != BlockedOpenConversations {
		t.Errorf("blocked on %d, want OPEN_CONVERSATIONS", got.BlockedOn)
	}
	e.advance(e.cfg.BatchMaxWait)
	if n := len(e.lp.createdBodies()); n != 0 {
		t.Fatalf("an open conversation was submitted for deletion")
	}
	e.lp.mu.Lock()
	e.lp.convs[0].Open = false
	e.lp.mu.Unlock()
	e.advance(e.svc.cfg.PollInterval)
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(name, StateSubmitted)
}

func TestPipelineVerificationFailureRequeuesThenFails(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.chats = []ChatRecord{{EngagementID: "77", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"STUBBORN"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("STUBBORN"))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	stubborn := func() { // LivePerson says DONE but the record keeps its data
		e.lp.advance(LPNotStarted, LPInProgress)
		e.advance(5 * 24 * time.Hour)
		e.lp.mu.Lock()
		for i := range e.lp.requests {
			e.lp.requests[i].Status = LPDone
		}
		e.lp.mu.Unlock()
		e.advance(e.svc.cfg.PollInterval)
	}
	stubborn()
	e.wantState(name, StateSubmitted) // queued once more, and sent at once: past its safe time
	if bodies := e.lp.createdBodies(); len(bodies) != 2 {
		t.Fatalf("bodies = %v, want the record sent a second time", bodies)
	}
	stubborn()
	got := e.wantState(name, StateFailed)
	if !strings.Contains(got.LastError, "still hold data") || strings.Contains(got.LastError, "STUBBORN") {
		t.Errorf("last_error = %q, want evidence without the identifier", got.LastError)
	}
}

func TestPipelineSearchFailureBacksOff(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.searchErr = fmt.Errorf("%w: 503", ErrUnavailable)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	got := e.wantState(name, StateResolving)
	if got.BlockedOn != BlockedLivePersonUnavailable || got.LastError != "LivePerson unavailable" || !got.NextAttemptTime.After(e.clock.Now()) {
		t.Errorf("after a failed search: blocked %d, error %q, next %v", got.BlockedOn, got.LastError, got.NextAttemptTime)
	}
	e.lp.mu.Lock()
	e.lp.searchErr = nil
	e.lp.mu.Unlock()
	e.advance(time.Minute)
	e.wantState(name, StateScheduled)
}

func TestPipelineResumesAfterRestart(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(name, StateSubmitted)
	e.restart()
	e.runLivePersonTimeline()
	e.wantState(name, StateCompleted)
	if n := len(e.lp.createdBodies()); n != 2 {
		t.Errorf("%d requests, want 2 (engagements, conversations)", n)
	}
}

func TestPipelineExplicitTargets(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.convs = append(e.lp.convs, ConversationRecord{ConversationID: "c-open", Open: true, Start: e.ago(time.Hour)})
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", Subject{Kind: SubjectTargets,
		ConversationIDs: []string{"c-0009", "c-open", "c-missing"}, EngagementIDs: []string{"1234000003"}})).Erasure.Name()
	e.settle()
	res, err := e.svc.Resolve(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.OpenConversationsHeld != 1 || len(res.Plan.Groups) != 2 {
		t.Errorf("plan = %+v, want c-0009 and engagement 1234000003 queued, c-open held, c-missing absent", res.Plan)
	}
}

func TestPipelineUnsearchableIdentifierReported(t *testing.T) {
	e := newPipeEnv(t)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("98765432"))).Erasure.Name()
	e.settle()
	if got := e.status(name); !got.IdentifierUnsearchable {
		t.Error("a numeric customer id was not reported as unsearchable in messaging")
	}
}

func TestPipelineRepeatedRejectionFails(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.searchErr = fmt.Errorf("%w: 400", ErrRejected)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("X"))).Erasure.Name()
	e.settle()
	for range maxRejections {
		e.advance(time.Minute)
	}
	got := e.wantState(name, StateFailed)
	if got.LastError != "LivePerson rejected the request" {
		t.Errorf("last_error = %q", got.LastError)
	}
}

func TestSubmitRefusesUnconfiguredAccount(t *testing.T) {
	e := newEnv(t)
	keys, _ := NewKeyring("test", testKey)
	svc, err := New(e.db, keys, Config{Now: e.clock.Now, Accounts: []string{"1234"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Submit(context.Background(), submitReq("00000000-0000-4000-8000-000000000001", "9999", customer("a")))
	if KindOf(err) != KindInvalid {
		t.Errorf("Submit for an unconfigured account: %v, want Invalid", err)
	}
	if _, err := svc.Submit(context.Background(), submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("a"))); err != nil {
		t.Errorf("Submit for a configured account: %v", err)
	}
}

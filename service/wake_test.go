package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDecisionsWithoutPipeline: Confirm, Reject and a Cancel before anything reached LivePerson
// are store writes. A server whose pipeline is not running records them (Confirm schedules the
// plan's targets), and a pipeline started later carries the confirmed erasure on from what is
// stored.
func TestDecisionsWithoutPipeline(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.chats = append(e.lp.chats,
		ChatRecord{EngagementID: "1234000077", Start: e.ago(30 * 24 * time.Hour), CustomerIDs: []string{"DEF-456"}},
		ChatRecord{EngagementID: "1234000078", Start: e.ago(30 * 24 * time.Hour), CustomerIDs: []string{"GHI-789"}})
	ctx := context.Background()
	var names []string
	for i, who := range []string{"ABC-123", "DEF-456", "GHI-789"} {
		req := submitReq(fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i+1), "1234", customer(who))
		req.Confirmation = ConfirmationManual
		names = append(names, e.submit(req).Erasure.Name())
	}
	e.settle()
	confirmed, rejected, cancelled := names[0], names[1], names[2]
	for _, name := range names {
		e.wantState(name, StateAwaitingConfirmation)
	}
	plan := e.plan(confirmed)

	e.env.restart() // the store reopened by a service with no pipeline
	e.p = nil
	res, err := e.svc.Resolve(ctx, confirmed, &Decision{Confirm: true, PlanEtag: plan.Etag})
	if err != nil || res.Erasure.State != StateScheduled || res.Erasure.BlockedOn != BlockedNone {
		t.Fatalf("confirm without a pipeline: %+v, %v; want SCHEDULED", res.Erasure, err)
	}
	if res, err := e.svc.Resolve(ctx, rejected, &Decision{Reject: true, Reason: "not ours"}); err != nil || res.Erasure.State != StateRejected {
		t.Fatalf("reject without a pipeline: %+v, %v; want REJECTED", res.Erasure, err)
	}
	if got, err := e.svc.Cancel(ctx, cancelled, "withdrawn"); err != nil || got.State != StateCancelled {
		t.Fatalf("cancel without a pipeline: %+v, %v; want CANCELLED", got, err)
	}
	select {
	case <-e.svc.wake:
	default:
		t.Error("the decisions left no wake-up for a pipeline")
	}

	e.p = e.svc.NewPipeline(e.lp, e.cfg)
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(confirmed, StateSubmitted)
	e.runLivePersonTimeline()
	e.advance(e.cfg.SearchLag)
	e.wantState(confirmed, StateCompleted)
	e.wantState(rejected, StateRejected)
	e.wantState(cancelled, StateCancelled)
	for _, body := range e.lp.createdBodies() {
		if strings.Contains(body, "1234000077") || strings.Contains(body, "1234000078") {
			t.Errorf("deletion request %s holds a record of the rejected or cancelled erasure", body)
		}
	}
}

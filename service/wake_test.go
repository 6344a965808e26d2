package service

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestDecisionsWithoutPipeline: Confirm and Reject are store writes. A server whose pipeline is
// not running records them (Confirm schedules the plan's targets), and a pipeline started later
// carries the confirmed erasure on from what is stored.
func TestDecisionsWithoutPipeline(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "1234000077", Start: e.ago(30 * 24 * time.Hour), CustomerIDs: []string{"DEF-456"}})
	ctx := context.Background()
	var names []string
	for i, who := range []string{"ABC-123", "DEF-456"} {
		req := submitReq(fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i+1), "1234", customer(who))
		req.Confirmation = ConfirmationManual
		names = append(names, e.submit(req).Erasure.Name())
	}
	e.settle()
	confirmed, rejected := names[0], names[1]
	e.wantState(confirmed, StateAwaitingConfirmation)
	e.wantState(rejected, StateAwaitingConfirmation)
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
}

package service

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
)

// wantBacklog checks that the pipeline's backlog of account 1234, as stored, is what the
// erasures stored say: RECEIVED, RESOLVING and AWAITING_CONFIRMATION ones resolving, open ones
// holding records on open conversations open; and that the stored counts are not negative.
func (e *pipeEnv) wantBacklog(when string) pipeline.Backlog {
	e.t.Helper()
	var got, raw, want pipeline.Backlog
	err := e.db.View(func(tx storeTx) error {
		var err error
		if got, err = pipeline.GetBacklog(tx, "1234"); err != nil {
			return err
		}
		if v := tx.Get(schema.Ledger, pipeline.BacklogKey("1234")); v != nil {
			if err := json.Unmarshal(v, &raw); err != nil {
				return err
			}
		}
		return tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return false, err
			}
			switch r.State {
			case StateReceived, StateResolving, StateAwaitingConfirmation:
				want.Resolving++
			}
			for _, c := range r.TargetCounts {
				if !r.State.Final() && c.Status == TargetDeferredOpen && c.Count > 0 {
					want.Open++
					break
				}
			}
			return true, nil
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if got.Resolving != want.Resolving || got.Open != want.Open || raw.Resolving < 0 || raw.Open < 0 {
		e.t.Errorf("%s: backlog %+v (stored %+v), want resolving %d, open %d", when, got, raw, want.Resolving, want.Open)
	}
	return got
}

// TestBacklogCountedAcrossRestart: the count of erasures on their way to the queue follows
// every change and is exact after each restart (the store reopened, a new pipeline): Submits,
// resolution, a conversation held open and then closed, batches and deletion.
func TestBacklogCountedAcrossRestart(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.convs = append(e.lp.convs, ConversationRecord{ConversationID: "open-1", Open: true, Start: e.ago(5 * time.Hour),
		ConsumerIDs: []string{"k"}, CustomerIDs: []string{"OPEN-1"}})
	for i, c := range []string{"ABC-123", "OPEN-1", "NONE-1"} {
		e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-00000000f%03d", i), "1234", customer(c)))
	}
	if b := e.wantBacklog("after three Submits"); b.Resolving != 3 || b.Arrivals != 3 {
		t.Fatalf("backlog %+v, want three erasures resolving and three arrivals", b)
	}
	e.restart()
	e.wantBacklog("after a restart")
	e.settle()
	if b := e.wantBacklog("after resolution"); b.Open != 1 {
		t.Errorf("backlog %+v, want the erasure holding an open conversation counted", b)
	}
	e.restart()
	e.wantBacklog("after resolution and a restart")
	e.lp.convs[len(e.lp.convs)-1].Open = false
	e.advance(e.svc.cfg.PollInterval)
	e.advance(e.cfg.SearchLag)
	e.restart()
	e.wantBacklog("after the open conversation closed and a restart")
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	e.advance(e.cfg.SearchLag)
	e.restart()
	if b := e.wantBacklog("at the end, after a restart"); b.Resolving != 0 || b.Open != 0 {
		t.Errorf("backlog %+v at the end, want nothing on the way", b)
	}
}

// TestPackSendsABurstInOneRequest: two erasures submitted together, with no batch_max_wait (the
// default), share one deletion request: the first one planned waits for the second, and the
// batch leaves once nothing is on the way and the account's quiet period has passed. The old
// rule sent each alone as soon as it was queued.
func TestPackSendsABurstInOneRequest(t *testing.T) {
	e := &pipeEnv{env: newEnv(t), lp: newFakeLP(), cfg: PipelineConfig{SearchLag: 2 * time.Hour}}
	e.p = e.svc.NewPipeline(e.lp, e.cfg)
	e.lp.chats = append(e.lp.chats,
		ChatRecord{EngagementID: "1234000001", Start: e.ago(40 * 24 * time.Hour), CustomerIDs: []string{"ONE-1"}},
		ChatRecord{EngagementID: "1234000002", Start: e.ago(40 * 24 * time.Hour), CustomerIDs: []string{"TWO-2"}})
	a := e.submit(submitReq("00000000-0000-4000-8000-00000000fa01", "1234", customer("ONE-1"))).Erasure.Name()
	b := e.submit(submitReq("00000000-0000-4000-8000-00000000fa02", "1234", customer("TWO-2"))).Erasure.Name()
	e.settle()
	e.wantState(a, StateScheduled)
	e.wantState(b, StateScheduled)
	if n := len(e.lp.createdBodies()); n != 0 {
		t.Fatalf("%d requests created before the quiet period passed, want none", n)
	}
	e.advance(time.Minute)
	if n := len(e.lp.createdBodies()); n != 1 {
		t.Fatalf("%d requests created, want one for both erasures", n)
	}
	ra, rb := e.wantState(a, StateSubmitted).LPRequests, e.wantState(b, StateSubmitted).LPRequests
	if len(ra) != 1 || len(rb) != 1 || ra[0].ID != rb[0].ID {
		t.Errorf("LivePerson requests %+v and %+v, want the same one", ra, rb)
	}
}

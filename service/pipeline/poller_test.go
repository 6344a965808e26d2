package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// statusLP is a LivePerson whose every deletion request has one status; it answers nothing
// else (a call of any other method panics).
type statusLP struct {
	model.LivePerson
	status string
}

func (l statusLP) GetDeletion(_ context.Context, _ string, id int64) (model.Deletion, error) {
	return model.Deletion{ID: id, Status: l.status}, nil
}

// TestPollRefusedMoveBacksOff: a poll whose answer calls for an erasure change the transition
// table refuses (here DONE for a SUBMITTED erasure, a skip the fake's table lacks) changes
// neither the batch's status nor the erasure, reports the refused move with the batch's
// account and step, and moves the batch's next poll on instead of leaving it due now.
func TestPollRefusedMoveBacksOff(t *testing.T) {
	db := openSchedule(t, nil)
	d := &fakeDomain{}
	p := New(Config{DB: db, Domain: d, LP: statusLP{status: model.LPDone}, Now: func() time.Time { return t0 },
		Wake: make(chan struct{}, 1), Timing: Timing{PollInterval: time.Hour}})
	const lpID = 77
	d.seed(t, db, &model.Record{Erasure: model.Erasure{ID: "a", AccountID: "1234", State: model.StateSubmitted,
		LPRequests: []model.LPRequest{{ID: lpID, Kind: model.KindEngagement, RecordCount: 1, Status: model.LPNotStarted}}}},
		[]model.Target{{Kind: model.KindEngagement, ID: "1234000001", Status: model.TargetSubmitted, Batch: 1, LPRequest: lpID}})
	err := db.Update(context.Background(), func(tx store.Tx) error {
		b := &Batch{ID: 1, Account: "1234", Kind: int32(model.KindEngagement), State: model.LPNotStarted, LPID: lpID,
			Erasures: []string{"a"}, Sends: 1, Sent: t0.Add(-time.Hour)}
		if err := PollNext(tx, b, t0); err != nil {
			return err
		}
		return PutBatch(tx, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	var before model.Record
	db.View(func(tx store.Tx) error { r, _ := model.GetRecord(tx, "a"); before = *r; return nil })

	if err := p.step(context.Background(), TaskBatch+"1"); err != nil {
		t.Fatalf("the poll's step = %v, want nil (it backs off)", err)
	}
	if want := []string{"1234 poll batch 1"}; !slices.Equal(d.refusedMoves, want) {
		t.Errorf("refused moves reported = %q, want %q", d.refusedMoves, want)
	}
	db.View(func(tx store.Tx) error {
		b, err := GetBatch(tx, 1)
		if err != nil || b == nil {
			t.Fatalf("GetBatch = %v, %v", b, err)
		}
		if b.State != model.LPNotStarted || b.Failures != 1 || !b.NextPoll.After(t0) {
			t.Errorf("batch after the refused poll: state %s, failures %d, next poll %v; want NOT_STARTED, 1, after %v",
				b.State, b.Failures, b.NextPoll, t0)
		}
		if tx.Get(schema.Schedule, schema.ScheduleKey(t0, TaskBatch+"1")) != nil {
			t.Error("the batch's poll is still due now")
		}
		if tx.Get(schema.Schedule, schema.ScheduleKey(b.NextPoll, TaskBatch+"1")) == nil {
			t.Errorf("no schedule entry at the batch's next poll %v", b.NextPoll)
		}
		r, _ := model.GetRecord(tx, "a")
		if r.State != model.StateSubmitted || r.Revision != before.Revision {
			t.Errorf("erasure after the refused poll: %s at revision %d, want SUBMITTED at %d", r.State, r.Revision, before.Revision)
		}
		return nil
	})
}

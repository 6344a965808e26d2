package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

func TestInFlight(t *testing.T) {
	tests := []struct {
		name string
		b    Batch
		want bool
	}{
		{"formed, never sent", Batch{State: BatchIntent}, false},
		{"sent, answer unknown", Batch{State: BatchIntent, Sends: 1}, true},
		{"settled as not created", Batch{State: BatchIntent, Sends: 1, Resend: true}, false},
		{"held", Batch{State: BatchHeld, Sends: 1}, false},
		{"created", Batch{State: "NOT_STARTED", Sends: 1, LPID: 9}, false},
	}
	for _, tt := range tests {
		if got := tt.b.InFlight(); got != tt.want {
			t.Errorf("%s: InFlight = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSendTurnProtocol: while a batch of an account is in flight, the account's next batch
// waits for the turn; the first one's outcome frees the turn and schedules the waiter at once.
func TestSendTurnProtocol(t *testing.T) {
	db := openSchedule(t, nil)
	s := NewScheduler(SchedulerConfig{DB: db, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1),
		Step: func(context.Context, string) error { return nil }})
	update := func(fn func(tx store.Tx) error) {
		t.Helper()
		if err := db.Update(context.Background(), fn); err != nil {
			t.Fatal(err)
		}
	}
	first := &Batch{ID: 1, Account: "1234", State: BatchIntent}
	second := &Batch{ID: 2, Account: "1234", State: BatchIntent}
	other := &Batch{ID: 3, Account: "5678", State: BatchIntent}
	update(func(tx store.Tx) error {
		for _, b := range []*Batch{first, second, other} {
			ok, err := TakeSendTurn(tx, b)
			if err != nil || !ok {
				t.Errorf("batch %d: TakeSendTurn = %v, %v; want the turn (none in flight)", b.ID, ok, err)
			}
		}
		// Batch 2 took the turn from batch 1, which had not been sent; now 1 is sent and in flight.
		first.Sends = 1
		if err := PutBatch(tx, first); err != nil {
			return err
		}
		turn, _, _ := GetSendTurn(tx, "1234")
		turn.Batch = 1
		return PutSendTurn(tx, "1234", turn)
	})
	update(func(tx store.Tx) error {
		if err := PutBatch(tx, second); err != nil {
			return err
		}
		if ok, err := TakeSendTurn(tx, second); ok || err != nil {
			t.Errorf("TakeSendTurn(2) while 1 is in flight = %v, %v; want a wait", ok, err)
		}
		return nil
	})
	update(func(tx store.Tx) error {
		if err := ReleaseSendTurn(tx, second, t0); err != nil { // not the holder: nothing happens
			return err
		}
		if turn, held, _ := GetSendTurn(tx, "1234"); !held || turn.Batch != 1 || !slices.Equal(turn.Waiting, []uint64{2}) {
			t.Errorf("turn after a release by a waiter = %+v, held %v; want 1 holding it, 2 waiting", turn, held)
		}
		return ReleaseSendTurn(tx, first, t0)
	})
	if due, _, _ := s.Due(t0, 10); !slices.Equal(due, []string{"b/2"}) {
		t.Errorf("due after the release = %v, want the waiter b/2", due)
	}
	db.View(func(tx store.Tx) error {
		if _, held, _ := GetSendTurn(tx, "1234"); held {
			t.Error("the released turn is still held")
		}
		b, err := GetBatch(tx, 2)
		if err != nil || b == nil || !b.NextPoll.Equal(t0) {
			t.Errorf("stored waiter = %+v, %v; want its next poll at the release", b, err)
		}
		if b, _ := GetBatch(tx, 99); b != nil {
			t.Errorf("GetBatch of no batch = %+v, want nil", b)
		}
		return nil
	})
}

package service

import (
	"testing"
	"time"
)

func TestCanTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{StateReceived, StateResolving}:             true,
		{StateResolving, StateAwaitingConfirmation}: true,
		{StateResolving, StateScheduled}:            true,
		{StateResolving, StateCompleted}:            true,
		{StateAwaitingConfirmation, StateScheduled}: true,
		{StateAwaitingConfirmation, StateRejected}:  true,
		{StateAwaitingConfirmation, StateResolving}: true,
		{StateScheduled, StateSubmitted}:            true,
		{StateSubmitted, StateDeleting}:             true,
		{StateSubmitted, StateScheduled}:            true,
		{StateDeleting, StateVerifying}:             true,
		{StateDeleting, StateScheduled}:             true,
		{StateVerifying, StateCompleted}:            true,
		{StateVerifying, StateScheduled}:            true,
	}
	for from := StateUnspecified; from <= StateRejected+1; from++ {
		for to := StateUnspecified; to <= StateRejected+1; to++ {
			want := allowed[[2]State{from, to}]
			if from.Valid() && !from.Final() && (to == StateFailed || to == StateCancelled) {
				want = true
			}
			if got := CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestFinalStatesHaveNoExit(t *testing.T) {
	for _, s := range []State{StateCompleted, StateFailed, StateCancelled, StateRejected} {
		if !s.Final() {
			t.Errorf("%s.Final() = false, want true", s)
		}
		for to := StateReceived; to <= StateRejected; to++ {
			if CanTransition(s, to) {
				t.Errorf("CanTransition(%s, %s) = true, want false: final states have no exit", s, to)
			}
		}
	}
}

func TestAddMonth(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 10, 30, 0, 0, time.UTC) }
	tests := []struct{ in, want time.Time }{
		{d(2026, 3, 10), d(2026, 4, 10)},
		{d(2026, 1, 31), d(2026, 2, 28)},
		{d(2028, 1, 31), d(2028, 2, 29)}, // leap year
		{d(2026, 3, 31), d(2026, 4, 30)},
		{d(2026, 12, 15), d(2027, 1, 15)},
		{d(2026, 12, 31), d(2027, 1, 31)},
	}
	for _, tt := range tests {
		if got := AddMonth(tt.in); !got.Equal(tt.want) {
			t.Errorf("AddMonth(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

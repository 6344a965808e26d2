package server

import (
	"slices"
	"testing"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// TestWatchEventNamesSkippedStates: a change that passed over states says which, so a watcher
// sees every state the erasure moved through.
func TestWatchEventNamesSkippedStates(t *testing.T) {
	ev := service.Event{Revision: 7, PreviousState: service.StateScheduled,
		Skipped: []service.State{service.StateSubmitted, service.StateDeleting}}
	ev.Erasure.State = service.StateVerifying
	got := eventToProto(ev)
	want := []erasurev1.State{erasurev1.State_STATE_SUBMITTED, erasurev1.State_STATE_DELETING}
	if !slices.Equal(got.GetSkippedStates(), want) || got.GetPreviousState() != erasurev1.State_STATE_SCHEDULED ||
		got.GetErasure().GetState() != erasurev1.State_STATE_VERIFYING {
		t.Errorf("eventToProto = %v, want SCHEDULED → VERIFYING skipping %v", got, want)
	}
}

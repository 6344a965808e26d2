package service

import (
	"errors"
	"fmt"
	"slices"
)

// transitions lists, for each state, the states it may move to in one step. Final states have
// none.
//
//   - RESOLVING → COMPLETED when nothing at all was found.
//   - AWAITING_CONFIRMATION → RESOLVING when a Submit adds identifiers to a plan not yet
//     approved: the new plan is searched, then reviewed again.
//   - SUBMITTED → SCHEDULED when a shared LivePerson request was cancelled for another erasure
//     and this erasure's records go back to the queue.
//   - DELETING → SCHEDULED when a request that had started was cancelled after all (LivePerson
//     reports CANCELED for a request last seen IN_PROGRESS): its records go back to the queue
//     and are sent again in a new request.
//
// There is no DELETING → SUBMITTED. A request's status does not go back: a poll that reports
// NOT_STARTED for a request last seen IN_PROGRESS (a stale replica, a lagging cache) is taken
// as no news, the batch stays IN_PROGRESS and the erasure DELETING (the pipeline's poller). Moving back
// would tell watchers the deletion had not begun when LivePerson already said it had.
//   - VERIFYING → SCHEDULED when a record still holds data and is queued once more, or the final
//     sweep found records that appeared late.
var transitions = map[State][]State{
	StateReceived:             {StateResolving},
	StateResolving:            {StateAwaitingConfirmation, StateScheduled, StateCompleted},
	StateAwaitingConfirmation: {StateScheduled, StateRejected, StateResolving},
	StateScheduled:            {StateSubmitted},
	StateSubmitted:            {StateDeleting, StateScheduled},
	StateDeleting:             {StateVerifying, StateScheduled},
	StateVerifying:            {StateCompleted, StateScheduled},
}

// skips lists the moves that pass over states in one change, with the states passed over in
// table order. They all follow LivePerson: an erasure's state follows the status of its
// deletion requests, and LivePerson's first answer about a request (when it is created, or at a
// poll after a while) may already be past NOT_STARTED or past IN_PROGRESS. The erasure then
// never stopped in the states between, and its event says so instead of inventing them.
var skips = map[[2]State][]State{
	{StateScheduled, StateDeleting}:  {StateSubmitted},
	{StateScheduled, StateVerifying}: {StateSubmitted, StateDeleting},
	{StateSubmitted, StateVerifying}: {StateDeleting},
}

// CanTransition reports whether an erasure in state from may move to state to in one step. Any
// non-final state may also move to FAILED or CANCELLED.
func CanTransition(from, to State) bool {
	if !from.Valid() || !to.Valid() || from.Final() || from == to {
		return false
	}
	if to == StateFailed || to == StateCancelled {
		return true
	}
	return slices.Contains(transitions[from], to)
}

// Skipped returns the states a move from `from` to `to` passes over when it is one of the
// declared skips (ok true), in table order; ok is false for any other move.
func Skipped(from, to State) (states []State, ok bool) {
	states, ok = skips[[2]State{from, to}]
	return slices.Clone(states), ok
}

// checkMove decides whether a change may move an erasure from `from` to `to`, and returns the
// states the move skips: none for a change within a state (from == to, a final one included),
// for the creation of an erasure (from StateUnspecified to RECEIVED) and for an allowed
// transition; the declared states for a declared skip. Any other move is refused with
// STATE_TRANSITION_NOT_ALLOWED.
func checkMove(from, to State) ([]State, error) {
	switch {
	case from == to && to.Valid(), from == StateUnspecified && to == StateReceived, CanTransition(from, to):
		return nil, nil
	}
	if states, ok := skips[[2]State{from, to}]; ok {
		return states, nil
	}
	return nil, refuseMove("erasure cannot move from %s to %s", from, to)
}

// refuseMove returns the error of a change the transition table refuses; its message names
// states, never data.
func refuseMove(format string, args ...any) error {
	return newError(KindFailedPrecondition, "STATE_TRANSITION_NOT_ALLOWED", format, args...)
}

// transitionRefused reports whether err is (or wraps) the refusal of a change by the
// transition table.
func transitionRefused(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == "STATE_TRANSITION_NOT_ALLOWED"
}

// CheckHistory checks a change history of erasures, as Watch delivers it from the first
// revision: each erasure's first event creates it in RECEIVED, each later one starts from the
// state the one before left, and every move is an allowed transition (skipping nothing) or a
// declared skip naming exactly the states it skips. It returns the first violation, naming
// the revision and the states (never personal data).
func CheckHistory(events []Event) error {
	last := map[string]State{} // each erasure's state after its latest event
	for _, ev := range events {
		id, from, to := ev.Erasure.ID, ev.PreviousState, ev.Erasure.State
		cur, seen := last[id]
		switch {
		case !seen && from != StateUnspecified:
			return fmt.Errorf("revision %d: the first event of an erasure moves it from %s, want the creation (from UNSPECIFIED)", ev.Revision, from)
		case seen && from != cur:
			return fmt.Errorf("revision %d: the event moves from %s, but the erasure's previous event left it %s", ev.Revision, from, cur)
		}
		want, err := checkMove(from, to)
		if err != nil {
			return fmt.Errorf("revision %d: %s → %s is not a transition the table allows", ev.Revision, from, to)
		}
		if !slices.Equal(ev.Skipped, want) {
			return fmt.Errorf("revision %d: %s → %s names skipped states %v, want %v", ev.Revision, from, to, ev.Skipped, want)
		}
		last[id] = to
	}
	return nil
}

// localCancellable reports whether an erasure in state s can be cancelled without asking
// LivePerson: none of its records is in a LivePerson deletion request yet.
func localCancellable(s State) bool {
	switch s {
	case StateReceived, StateResolving, StateAwaitingConfirmation, StateScheduled:
		return true
	}
	return false
}

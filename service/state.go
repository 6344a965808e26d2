package service

// transitions lists, for each state, the states it may move to. Final states have none.
//
//   - RESOLVING → COMPLETED when nothing at all was found.
//   - SCHEDULED → RESOLVING and VERIFYING → RESOLVING for the final re-resolution sweep after the
//     search lag, which may find records that appeared late.
//   - SUBMITTED → SCHEDULED when a shared LivePerson request was cancelled for another erasure
//     and this erasure's records go back to the queue.
//   - VERIFYING → SCHEDULED when a record still holds data and is queued once more.
var transitions = map[State][]State{
	StateReceived:             {StateResolving},
	StateResolving:            {StateAwaitingConfirmation, StateScheduled, StateCompleted},
	StateAwaitingConfirmation: {StateScheduled, StateRejected, StateResolving},
	StateScheduled:            {StateSubmitted, StateResolving},
	StateSubmitted:            {StateDeleting, StateScheduled},
	StateDeleting:             {StateVerifying},
	StateVerifying:            {StateCompleted, StateScheduled, StateResolving},
}

// Final reports whether s is a final state: nothing moves out of it.
func (s State) Final() bool {
	switch s {
	case StateCompleted, StateFailed, StateCancelled, StateRejected:
		return true
	}
	return false
}

// CanTransition reports whether an erasure in state from may move to state to. Any non-final
// state may also move to FAILED or CANCELLED.
func CanTransition(from, to State) bool {
	if !from.Valid() || !to.Valid() || from.Final() || from == to {
		return false
	}
	if to == StateFailed || to == StateCancelled {
		return true
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
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

package pipeline

import (
	"context"
	"time"
)

// A step that finds it cannot work before some time (a search service that asked us to come
// back later, say) may hold its task instead of writing a backoff: the task keeps its due entry
// in the schedule, so nothing is lost and a restart runs it again, but Run's loop leaves it out
// until then. The hold lives in memory only; the schedule's entry stays the truth.

// holderKey carries, in a task's context, the scheduler and task that HoldTask holds.
type holderKey struct{}

type holder struct {
	s    *Scheduler
	task string
}

func withHolder(ctx context.Context, s *Scheduler, task string) context.Context {
	return context.WithValue(ctx, holderKey{}, holder{s: s, task: task})
}

// HoldTask keeps the task that ctx runs from being started again before until, without a store
// write. It reports whether the task is held: outside Run (a task run by hand) it is not, and
// the step must then move its entry itself.
func HoldTask(ctx context.Context, until time.Time) bool {
	h, ok := ctx.Value(holderKey{}).(holder)
	if !ok {
		return false
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.held[h.task] = until
	if h.s.heldMin.IsZero() || until.Before(h.s.heldMin) {
		h.s.heldMin = until
	}
	return true
}

// heldUntil is the earliest time a held task is released (zero: none held), so that Run wakes
// then.
func (s *Scheduler) heldUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if s.heldMin.IsZero() || s.heldMin.After(now) {
		return s.heldMin
	}
	// The earliest hold has passed: find the next (once per release, not per round).
	s.heldMin = time.Time{}
	for task, until := range s.held {
		switch {
		case !until.After(now):
			delete(s.held, task) // released: also the hold of a task gone from the schedule
		case s.heldMin.IsZero() || until.Before(s.heldMin):
			s.heldMin = until
		}
	}
	return s.heldMin
}

package model

import (
	"cmp"
	"slices"
)

// CountTargets is the public summary of targets: how many of each kind are in each status.
func CountTargets(ts []Target) []TargetCount {
	m := map[[2]int32]int32{}
	for _, t := range ts {
		m[[2]int32{int32(t.Kind), int32(t.Status)}]++
	}
	out := make([]TargetCount, 0, len(m))
	for k, n := range m {
		out = append(out, TargetCount{Kind: TargetKind(k[0]), Status: TargetStatus(k[1]), Count: n})
	}
	slices.SortFunc(out, func(a, b TargetCount) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Status, b.Status))
	})
	return out
}

// MergeTargets adds newly found targets to known ones; known targets keep their progress.
// It returns the merged list and how many were new (a record not found before and found now
// counts as new).
func MergeTargets(known, found []Target) ([]Target, int) {
	out := slices.Clone(known)
	added := 0
	for _, f := range found {
		i := slices.IndexFunc(out, func(t Target) bool { return t.Kind == f.Kind && t.ID == f.ID })
		switch {
		case i < 0:
			out = append(out, f)
			added++
		case out[i].Status == TargetDeferredOpen && f.Status == TargetFound:
			out[i].Status = TargetFound // the held conversation has closed
		case out[i].Status == TargetNotFound && f.Status != TargetNotFound:
			out[i].Status, out[i].Start = f.Status, f.Start // LivePerson has it now
			added++
		}
	}
	return out, added
}

// HasStatus reports whether any target is in one of the statuses.
func HasStatus(ts []Target, statuses ...TargetStatus) bool {
	return slices.ContainsFunc(ts, func(t Target) bool { return slices.Contains(statuses, t.Status) })
}

// HasLive reports whether any target is a record LivePerson has: anything but NOT_FOUND, which
// the pipeline never queues, sends or waits for.
func HasLive(ts []Target) bool {
	return slices.ContainsFunc(ts, func(t Target) bool { return t.Status != TargetNotFound })
}

// LPRequestIDs lists the LivePerson requests that have held records of e, in order.
func LPRequestIDs(e *Erasure) []int64 {
	var ids []int64
	for _, q := range e.LPRequests {
		ids = append(ids, q.ID)
	}
	return ids
}

// HeldFirst is what e shows it is blocked on when something else (other) would block it: a held
// batch outranks every other reason, since only an operator can move it on.
func HeldFirst(e *Erasure, other BlockedOn) BlockedOn {
	if len(e.HeldBatches) > 0 {
		return BlockedDeletionOutcomeUnknown
	}
	return other
}

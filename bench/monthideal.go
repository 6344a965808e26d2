package bench

import (
	"cmp"
	"slices"
	"time"

	"github.com/erasured/erasured/service"
)

// The month's two ideals. The ids-only ideal is the fewest requests that hold a kind's ids,
// ceil(ids/100), as if every id could wait for the others. It cannot be met without missing
// deadlines: an erasure's records must be sent by its latest safe submit time, about four days
// after it arrives (its due time a month on, less LivePerson's 5 + 20 days and erasured's
// margin), and a kind whose ids arrive slowly (consumer profiles; any kind at a small quota)
// cannot fill 100 ids in that time. The deadline ideal is the fewest requests that hold every
// id and send each by its erasure's latest safe submit time, no earlier than its records can be
// found: the ideal the month's goal and its demand levels are measured against.

// idealItem is one id of a kind: from when it can be sent (its erasure's records are found),
// and by when it must be (its erasure's latest safe submit time).
type idealItem struct{ from, by time.Time }

// deadlineIdeal is the fewest requests of at most capacity ids that send every item within
// [from, by]. The greedy is optimal: the first request must leave by the earliest deadline, and
// leaving exactly then lets it take the most ids; of those that arrived by then, taking the
// soonest due leaves the rest the most time. An item with from after by cannot be sent in time:
// it is counted as sent alone at its from (it still needs a request).
func deadlineIdeal(items []idealItem, capacity int) int {
	left := slices.Clone(items)
	for i := range left {
		left[i].by = later(left[i].by, left[i].from)
	}
	slices.SortStableFunc(left, func(a, b idealItem) int { return cmp.Or(a.by.Compare(b.by), a.from.Compare(b.from)) })
	n := 0
	for len(left) > 0 {
		at := left[0].by
		n++
		kept, took := left[:0], 0
		for _, it := range left {
			if took < capacity && !it.from.After(at) {
				took++
				continue
			}
			kept = append(kept, it)
		}
		left = kept
	}
	return n
}

// idsOnlyIdeal is ceil(ids/100): the fewest requests that hold the ids, deadlines aside.
func idsOnlyIdeal(ids int) int { return (ids + MaxIDsPerRequest - 1) / MaxIDsPerRequest }

// monthSearchLag and monthSafeLead are the production defaults the month's erasured runs with:
// records are found once the search lag after an erasure's arrival has passed, and must be sent
// LivePerson's 5 + 20 days and a margin of a day before its due time.
const (
	monthSearchLag = 2 * time.Hour
	monthSafeLead  = (5 + 20 + 1) * 24 * time.Hour
)

// window is when subject s's records can and must be sent, arriving at the month's start + arrive.
func (s *monthSubject) window() idealItem {
	received := monthStart.Add(s.arrive)
	return idealItem{from: received.Add(monthSearchLag), by: service.AddMonth(received).Add(-monthSafeLead)}
}

// kindIDs lists, per kind, the ids subject s asks to delete.
func (s *monthSubject) kindIDs() map[service.TargetKind][]string {
	out := map[service.TargetKind][]string{service.KindEngagement: s.chats, service.KindConversation: s.convs}
	if s.profileOf != "" {
		out[service.KindConsumer] = []string{s.profileOf}
	}
	return out
}

// idealOf is both ideals of the subjects' ids (only those sent holds, when not nil: kind → id →
// sent): per kind, and summed. An id two subjects share counts once, from the first's arrival to
// the sooner deadline.
func idealOf(subjects []monthSubject, sent map[service.TargetKind]map[string]bool) (deadline, idsOnly map[service.TargetKind]int) {
	items := map[service.TargetKind]map[string]idealItem{}
	for i := range subjects {
		w := subjects[i].window()
		for k, ids := range subjects[i].kindIDs() {
			for _, id := range ids {
				if sent != nil && !sent[k][id] {
					continue
				}
				if items[k] == nil {
					items[k] = map[string]idealItem{}
				}
				v := w
				if it, ok := items[k][id]; ok {
					v = idealItem{from: earlier(it.from, w.from), by: earlier(it.by, w.by)}
				}
				items[k][id] = v
			}
		}
	}
	deadline, idsOnly = map[service.TargetKind]int{}, map[service.TargetKind]int{}
	for k, m := range items {
		list := make([]idealItem, 0, len(m))
		for _, it := range m {
			list = append(list, it)
		}
		deadline[k] = deadlineIdeal(list, MaxIDsPerRequest)
		idsOnly[k] = idsOnlyIdeal(len(list))
	}
	return deadline, idsOnly
}

func sumKinds(m map[service.TargetKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

package pipeline

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The month forecast. For each account it projects when the records now waiting in the queue
// will be sent, forming batches the way the batcher does (at-risk erasures first, then by latest
// safe submit time; a part-full batch leaves as the flush policy says), under the quota left
// this month and the months after, the pacing of routine work, and the demand still to come:
// the erasures received but not resolved yet, and the arrivals expected from the rate of recent
// ones. An erasure whose records are projected to leave after its latest safe submit time is
// forecast to miss its deadline; the planner (planner.go) marks it at risk then, days before
// the rule that looks at the deadline alone would.
//
// Nothing the forecast needs lives in memory only: the queue, the ledger and the erasures
// themselves are read afresh each time, so a restart or a new leader forecasts the same.

// Forecast is an account's month forecast as the planner last made it. It holds no personal
// data: counts and rates only.
type Forecast struct {
	Account string    `json:"account"`
	Time    time.Time `json:"time"` // when it was made
	// Misses is how many queued erasures are forecast to be sent after their latest safe submit
	// time (each is marked at risk).
	Misses int `json:"misses"`
	// Limit is the monthly quota the forecast was made with; Used and Exhausted this month's
	// use then (Month names it).
	Limit     int    `json:"limit"`
	Month     string `json:"month"`
	Used      int    `json:"used"`
	Exhausted bool   `json:"exhausted,omitempty"`
	// ErasuresPerDay and IDsPerErasure (by kind, as the service numbers kinds) are the demand
	// estimated from the erasures received recently.
	ErasuresPerDay float64           `json:"erasures_per_day"`
	IDsPerErasure  map[int32]float64 `json:"ids_per_erasure,omitempty"`
	// RequestsPerDay is the pace of deletion requests that demand calls for under the flush
	// policy; DemandRatio that pace over a month against the monthly quota: above 1 the quota
	// cannot carry the demand.
	RequestsPerDay float64 `json:"requests_per_day"`
	DemandRatio    float64 `json:"demand_ratio"`
	// Over is set while demand exceeds the quota: from when DemandRatio passes 1 until it falls
	// below overClear (the gap keeps an estimate that hovers near 1 from flapping).
	Over bool `json:"over,omitempty"`
}

// overClear is the demand ratio below which an account over its quota counts as back within it.
const overClear = 0.95

// Left is how many requests the quota still allows this month, as of the forecast.
func (f Forecast) Left() int { return Quota{Used: f.Used, Exhausted: f.Exhausted}.Left(f.Limit) }

// DaysLeft is how many days the quota left lasts at the forecast's pace of requests, counted
// from now; at most the days until the month ends (when the quota renews), which it is when the
// quota carries the rest of the month.
func (f Forecast) DaysLeft(now time.Time) float64 {
	rest := NextMonth(now).Sub(now).Hours() / 24
	if f.RequestsPerDay <= 0 {
		return rest
	}
	return min(float64(f.Left())/f.RequestsPerDay, rest)
}

// demandWindow is how far back the arrival rate is estimated from.
const demandWindow = 7 * 24 * time.Hour

// demand is an account's expected work, read from the erasures it received recently.
type demand struct {
	received      int               // erasures received in the window
	resolved      int               // of them, those whose records are known
	ids           map[int32]float64 // records to delete of the resolved ones, by kind
	onTheWay      []time.Time       // latest safe submit times of those still being resolved
	perDay        float64           // erasures a day
	idsPerErasure map[int32]float64 // by kind
}

// recentErasure is the part of a stored erasure the demand estimate reads.
type recentErasure struct {
	AccountID    string              `json:"account_id"`
	State        model.State         `json:"state"`
	ReceivedTime time.Time           `json:"received_time"`
	DueTime      time.Time           `json:"due_time"`
	TargetCounts []model.TargetCount `json:"target_counts"`
}

// readDemand estimates each account's demand from the erasures received in the window before
// now. Erasure ids grow with the time they were made, so the newest come first in a reverse scan
// of the erasures, which stops a little past the window's start (ids made on several machines
// may be out of order by a few).
func readDemand(tx store.Tx, now time.Time, t Timing) (map[string]*demand, error) {
	start := now.Add(-demandWindow)
	out := map[string]*demand{}
	older, oldest, sawOlder := 0, now, false
	err := tx.ScanReverse(schema.Erasures, nil, func(_, v []byte) (bool, error) {
		var e recentErasure
		if err := json.Unmarshal(v, &e); err != nil {
			return false, err
		}
		if e.ReceivedTime.After(now) {
			return true, nil
		}
		if e.ReceivedTime.Before(start) {
			sawOlder = true
			older++
			return older < 64, nil
		}
		older = 0
		if e.ReceivedTime.Before(oldest) {
			oldest = e.ReceivedTime
		}
		d := out[e.AccountID]
		if d == nil {
			d = &demand{ids: map[int32]float64{}}
			out[e.AccountID] = d
		}
		d.received++
		switch {
		case e.State == model.StateReceived || e.State == model.StateResolving:
			d.onTheWay = append(d.onTheWay, safeBy(e.DueTime, t))
		case len(e.TargetCounts) > 0 || e.State >= model.StateScheduled:
			d.resolved++
			for _, c := range e.TargetCounts {
				if c.Status >= model.TargetFound && c.Status <= model.TargetVerified {
					d.ids[int32(c.Kind)] += float64(c.Count)
				}
			}
		}
		return true, nil
	})
	// The rate is over the window, or over the time since the first erasure when the store
	// holds none older: a day at the least, so that the first few do not look like a flood.
	span := demandWindow
	if !sawOlder {
		span = max(now.Sub(oldest), 24*time.Hour)
	}
	for _, d := range out {
		d.perDay = float64(d.received) / (span.Hours() / 24)
		d.idsPerErasure = map[int32]float64{}
		for k, n := range d.ids {
			if d.resolved > 0 {
				d.idsPerErasure[k] = n / float64(d.resolved)
			}
		}
	}
	return out, err
}

// safeBy is the latest safe submit time of an erasure due at due (see enqueueTargets).
func safeBy(due time.Time, t Timing) time.Time {
	return due.Add(-(t.CancelWindow + t.DeletionWindow + t.Margin))
}

// slack is how long an erasure received at now may wait before its latest safe submit time.
func slack(now time.Time, t Timing) time.Duration {
	return max(safeBy(now.AddDate(0, 1, 0), t).Sub(now), time.Hour)
}

// requestsPerDay is the pace of deletion requests that ids records a day of one kind call for
// under policy: full requests, or, for a kind too slow to fill one in time, a part-full one each
// time the first record's wait runs out (slack under FlushPack, BatchMaxWait under
// FlushMaxWait); one per erasure under FlushPerErasure.
func requestsPerDay(ids, erasures float64, policy FlushPolicy, wait time.Duration) float64 {
	if ids <= 0 {
		return 0
	}
	if policy == FlushPerErasure {
		return max(erasures, ids/MaxBatchIDs)
	}
	return max(ids/MaxBatchIDs, 24/max(wait.Hours(), 1))
}

// simItem is a share of one kind's work in the projection: a queued erasure's records (id set),
// or work expected (an erasure being resolved, an hour of arrivals).
type simItem struct {
	id       string
	count    float64
	safeBy   time.Time
	enqueued time.Time
	atRisk   bool
}

// projection is one account's projection: its quota and the work of each kind.
type projection struct {
	account   string
	limit     int
	month     string
	used      int
	exhausted bool
	queues    map[int32][]*simItem
	perHour   map[int32]float64 // records expected to arrive an hour, by kind
}

// forecastStep is the projection's step; a send projected within a step after an erasure's
// latest safe submit time does not count as a miss (the batcher forms batches every round).
const forecastStep = time.Hour

// forecastHorizon bounds how far ahead the projection looks.
const forecastHorizon = 45 * 24 * time.Hour

// project runs the projection from now and returns the queued erasures forecast to miss their
// latest safe submit time.
func (p *Pipeline) project(pr *projection, now time.Time) map[string]bool {
	missed := map[string]bool{}
	pending := map[*simItem]bool{} // queued erasures' shares neither sent nor missed yet
	end := now
	for _, q := range pr.queues {
		for _, it := range q {
			if it.id != "" {
				pending[it] = true
				end = later(end, it.safeBy)
			}
		}
	}
	end = earlier(end.Add(forecastStep), now.Add(forecastHorizon))
	kinds := slices.Sorted(func(yield func(int32) bool) {
		for k := range pr.queues {
			if !yield(k) {
				return
			}
		}
	})
	for t := now; len(pending) > 0 && !t.After(end); t = t.Add(forecastStep) {
		if m := Month(t); m != pr.month {
			pr.month, pr.used, pr.exhausted = m, 0, false
		}
		if t.After(now) {
			for _, k := range kinds {
				if n := pr.perHour[k] * forecastStep.Hours(); n > 0 {
					pr.queues[k] = append(pr.queues[k], &simItem{count: n, safeBy: safeBy(t.AddDate(0, 1, 0), p.t), enqueued: t})
				}
			}
		}
		for _, k := range kinds {
			pr.queues[k] = p.simFlush(pr, pr.queues[k], now, t, func(it *simItem, at time.Time) {
				if pending[it] {
					delete(pending, it)
					if at.After(it.safeBy.Add(forecastStep)) {
						missed[it.id] = true
					}
				}
			})
		}
		for it := range pending {
			if t.After(it.safeBy.Add(forecastStep)) {
				delete(pending, it)
				missed[it.id] = true
			}
		}
	}
	for it := range pending { // past the horizon
		missed[it.id] = true
	}
	return missed
}

// simFlush forms, at step t, the batches of one kind's queue that the flush policy sends and the
// quota allows, calling sent for each share that leaves in full, with the time it leaves. It
// returns what is left of the queue.
func (p *Pipeline) simFlush(pr *projection, q []*simItem, now, t time.Time, sent func(*simItem, time.Time)) []*simItem {
	for len(q) > 0 {
		slices.SortStableFunc(q, func(a, b *simItem) int {
			if a.atRisk != b.atRisk {
				if a.atRisk {
					return -1
				}
				return 1
			}
			return cmp.Or(a.safeBy.Compare(b.safeBy), a.enqueued.Compare(b.enqueued))
		})
		total, trigger := 0.0, time.Time{}
		for _, it := range q {
			total += it.count
			due := it.safeBy
			if p.cfg.Flush == FlushMaxWait {
				due = earlier(due, it.enqueued.Add(p.cfg.BatchMaxWait))
				if it.atRisk {
					due = it.enqueued
				}
			}
			if trigger.IsZero() || due.Before(trigger) {
				trigger = due
			}
		}
		at := t
		switch {
		case p.cfg.Flush == FlushPerErasure:
		case total >= MaxBatchIDs-1e-9:
		case !trigger.After(t):
			at = later(now, trigger)
		default:
			return q
		}
		atRisk := q[0].atRisk
		allows := func(at time.Time) bool {
			return paceAllows(Quota{Used: pr.used, Exhausted: pr.exhausted}, pr.limit, p.cfg.Reserve, atRisk, p.cfg.Flush, at, p.t)
		}
		if !allows(at) {
			if at = t; !allows(at) {
				return q
			}
		}
		pr.used++
		room := float64(MaxBatchIDs)
		if p.cfg.Flush == FlushPerErasure {
			room = min(room, q[0].count)
		}
		n := 0
		for n < len(q) && room > 1e-9 {
			it := q[n]
			take := min(it.count, room)
			it.count -= take
			room -= take
			if it.count > 1e-9 {
				break
			}
			sent(it, at)
			n++
		}
		q = q[n:]
	}
	return q
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

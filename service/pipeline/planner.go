package pipeline

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The month planner: it paces each account's routine quota over the month (quotaAllows), and
// runs the forecast (forecast.go) on a cadence from the pipeline's round, marking at risk the
// erasures it finds will miss their deadline and telling operators when demand exceeds what
// the quota carries (plan.go).

// quotaAllows reports whether the batcher may form one more batch of account at now, given
// the month's use q: the quota's limit and the at-risk reserve, and, under FlushPack, the pace.
func (p *Pipeline) quotaAllows(q Quota, account string, atRisk bool, now time.Time) bool {
	return paceAllows(q, p.cfg.Quota(account), p.cfg.Reserve, atRisk, p.cfg.Flush, now, p.t)
}

// paceAllows reports whether a quota of limit, used as q, allows one more batch at now. At-risk
// work may use all of it, the reserve included. Routine work may not use the reserve and, under
// FlushPack, not run ahead of the month: its use stays within paceBudget, so that a month's
// quota is not spent in its first days while erasures keep coming for the rest of it. The
// baselines (FlushMaxWait, FlushPerErasure) are not paced: they show the batcher without a planner.
func paceAllows(q Quota, limit int, reserve float64, atRisk bool, policy FlushPolicy, now time.Time, t Timing) bool {
	if !q.Allows(limit, reserve, atRisk) {
		return false
	}
	if atRisk || policy != FlushPack {
		return true
	}
	return float64(q.Used) < paceBudget(limit, reserve, now, t)
}

// paceBudget is how many requests routine work may have used by now in its month: the routine
// quota (the limit less the reserve) in proportion to the month's elapsed share, plus a burst
// of what the pro-rata grows by in the slack of an erasure received now (the time it may wait
// before its latest safe submit time). With the burst, a batch held back by the pace is allowed
// again within that slack unless demand runs ahead of the quota for longer, which is what the
// forecast foresees: it marks the erasures that would wait too long at risk, and at-risk work
// is never paced.
func paceBudget(limit int, reserve float64, now time.Time, t Timing) float64 {
	routine := float64(limit - ReserveUnits(limit, reserve))
	end := NextMonth(now)
	start := end.AddDate(0, -1, 0)
	length := float64(end.Sub(start))
	share := float64(now.Sub(start)) / length
	burst := routine * float64(slack(now, t)) / length
	return routine*share + max(burst, 1)
}

// The forecast's cadence, in the pipeline's time (a benchmark's clock may run fast).
const (
	// forecastEvery is how often the forecast runs.
	forecastEvery = time.Hour
	// forecastSoonest is the least time between two forecasts, however much the queue changes.
	forecastSoonest = 5 * time.Minute
)

// planState is a pipeline's memory of its last forecast, for the cadence alone: a new pipeline
// forecasts at its first round.
type planState struct {
	mu      sync.Mutex
	running bool
	last    time.Time // when the last forecast started
	queued  int       // the queue's entries then
	// spent remembers, per account and kind, the queue last marked waiting for a spent quota
	// and its month. Marking the same queue again that month writes nothing, yet reads every
	// erasure of it in a write transaction; the scheduler's rounds would do it each time.
	spent map[spentKey]spentMark
}

type spentKey struct {
	account string
	kind    int32
}

type spentMark struct {
	month string
	ids   string // the queue's erasures, joined
}

// spentMarked reports whether the queue of account and kind holding erasures ids was marked
// waiting for month's spent quota, as it is now.
func (st *planState) spentMarked(account string, kind int32, month string, ids []string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	m, ok := st.spent[spentKey{account, kind}]
	return ok && m.month == month && m.ids == strings.Join(ids, ",")
}

// setSpent records that the queue of account and kind holding ids was marked waiting for
// month's spent quota.
func (st *planState) setSpent(account string, kind int32, month string, ids []string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.spent == nil {
		st.spent = map[spentKey]spentMark{}
	}
	st.spent[spentKey{account, kind}] = spentMark{month: month, ids: strings.Join(ids, ",")}
}

// planRound runs, from the scheduler's round, the month planner's periodic work: the forecast,
// every forecastEvery, or sooner when the queue grew or shrank by a quarter since the last (at
// least forecastSoonest after it). It runs beside the steps, one at a time.
func (p *Pipeline) planRound(ctx context.Context, now time.Time, start func(func())) {
	st := &p.planned
	st.mu.Lock()
	if st.running || (!st.last.IsZero() && now.Sub(st.last) < forecastSoonest) {
		st.mu.Unlock()
		return
	}
	if !st.last.IsZero() && now.Sub(st.last) < forecastEvery {
		queued := 0
		err := p.db.View(func(tx store.Tx) error { queued = tx.Count(schema.Queue); return nil })
		if d := queued - st.queued; err != nil || max(d, -d) < max(st.queued/4, 20) {
			st.mu.Unlock()
			return
		}
	}
	st.running, st.last = true, now
	st.mu.Unlock()
	start(func() {
		_, n, err := p.plan(ctx, now, p.now)
		if err != nil && ctx.Err() == nil {
			p.log.Error("pipeline: month forecast", "err", err)
		}
		st.mu.Lock()
		st.running, st.queued = false, n
		st.mu.Unlock()
	})
}

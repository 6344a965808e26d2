package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Plan forecasts every account's month at now (forecast.go): it marks at risk each queued
// erasure forecast to miss its deadline, stores each account's forecast in the ledger, and logs
// once when an account's demand comes to exceed its quota, and once when it is back within.
// The pipeline's round runs it on a cadence; callers that drive the pipeline by hand (tests, a
// benchmark on a fake clock) call it themselves.
func (p *Pipeline) Plan(ctx context.Context, now time.Time) ([]Forecast, error) {
	fs, _, err := p.plan(ctx, now, nil)
	return fs, err
}

// planRead is what a forecast reads of the store, in one transaction.
type planRead struct {
	queues   []*Queue
	demand   map[string]*demand
	prev     map[string]Forecast
	quotas   map[string]Quota
	accounts []string
	untimed  []string // erasures queued at risk that do not say since when (AtRiskTime)
}

func (p *Pipeline) readPlan(now time.Time) (*planRead, error) {
	in := &planRead{prev: map[string]Forecast{}, quotas: map[string]Quota{}}
	err := p.db.View(func(tx store.Tx) (err error) {
		if in.queues, err = ReadQueues(tx); err != nil {
			return err
		}
		if in.demand, err = readDemand(tx, now, p.t); err != nil {
			return err
		}
		prev, err := ReadForecasts(tx)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		add := func(a string) {
			if !seen[a] {
				seen[a] = true
				in.accounts = append(in.accounts, a)
			}
		}
		for _, f := range prev {
			in.prev[f.Account] = f
			add(f.Account)
		}
		for a := range in.demand {
			add(a)
		}
		checked := map[string]bool{}
		for _, g := range in.queues {
			add(g.Account)
			for i, e := range g.Entries {
				if id := g.IDs[i]; e.AtRisk && !checked[id] {
					checked[id] = true
					r, err := model.GetRecord(tx, id)
					if err != nil {
						return err
					}
					if r != nil && !r.State.Final() && r.AtRiskTime.IsZero() {
						in.untimed = append(in.untimed, id)
					}
				}
			}
		}
		slices.Sort(in.accounts)
		for _, a := range in.accounts {
			if in.quotas[a], err = GetQuota(tx, a, Month(now)); err != nil {
				return err
			}
		}
		return nil
	})
	return in, err
}

// plan is Plan, and also returns how many entries the queue held (for the cadence). clock, when
// set, stamps the at-risk marks (see markAt).
func (p *Pipeline) plan(ctx context.Context, now time.Time, clock func() time.Time) ([]Forecast, int, error) {
	in, err := p.readPlan(now)
	if err != nil {
		return nil, 0, err
	}
	queued := 0
	byAccount := map[string][]*Queue{}
	for _, g := range in.queues {
		byAccount[g.Account] = append(byAccount[g.Account], g)
		queued += len(g.IDs)
	}
	mark := slices.Clone(in.untimed)
	var out []Forecast
	for _, a := range in.accounts {
		f, missed := p.forecastAccount(a, byAccount[a], in.demand[a], in.quotas[a], now)
		prev, had := in.prev[a]
		f.Over = f.DemandRatio > 1
		if had && prev.Over {
			f.Over = f.DemandRatio >= overClear
		}
		for _, g := range byAccount[a] {
			for i, e := range g.Entries {
				if missed[g.IDs[i]] && !e.AtRisk {
					mark = append(mark, g.IDs[i])
				}
			}
		}
		out = append(out, f)
	}
	slices.Sort(mark)
	mark = slices.Compact(mark)
	for chunk := range slices.Chunk(mark, 100) {
		// An erasure is at risk from when the mark commits, not from when the forecast began:
		// a forecast takes a while, and a batch formed meanwhile could not see the mark.
		if err := p.db.Update(ctx, func(tx store.Tx) error { return p.markAtRisk(tx, chunk, markAt(now, clock)) }); err != nil {
			return out, queued, err
		}
	}
	err = p.db.Update(ctx, func(tx store.Tx) error {
		for _, f := range out {
			if err := PutForecast(tx, f); err != nil {
				return err
			}
		}
		return tx.OnCommit(func() { p.logDemand(in.prev, out) })
	})
	return out, queued, err
}

// forecastAccount makes account's forecast from its queues, its demand (nil: nothing received
// recently) and this month's use, and returns the queued erasures forecast to miss.
func (p *Pipeline) forecastAccount(account string, queues []*Queue, d *demand, q Quota, now time.Time) (Forecast, map[string]bool) {
	f := Forecast{Account: account, Time: now, Limit: p.cfg.Quota(account), Month: Month(now), Used: q.Used, Exhausted: q.Exhausted}
	pr := &projection{account: account, limit: f.Limit, month: f.Month, used: q.Used, exhausted: q.Exhausted,
		queues: map[int32][]*simItem{}, perHour: map[int32]float64{}}
	queuedIDs, queuedErasures := map[int32]float64{}, map[string]bool{}
	for _, g := range queues {
		for i, e := range g.Entries {
			pr.queues[g.Kind] = append(pr.queues[g.Kind], &simItem{id: g.IDs[i], count: float64(e.Count),
				safeBy: e.SafeBy, enqueued: e.Enqueued, atRisk: e.AtRisk})
			queuedIDs[g.Kind] += float64(e.Count)
			queuedErasures[g.IDs[i]] = true
		}
	}
	perErasure := map[int32]float64{}
	if d != nil {
		f.ErasuresPerDay, perErasure = d.perDay, d.idsPerErasure
		if d.resolved == 0 && len(queuedErasures) > 0 { // nothing resolved recently: judge by the queue
			for k, n := range queuedIDs {
				perErasure[k] = n / float64(len(queuedErasures))
			}
		}
		for _, due := range d.onTheWay {
			for k, n := range perErasure {
				pr.queues[k] = append(pr.queues[k], &simItem{count: n, safeBy: due, enqueued: now})
			}
		}
	}
	f.IDsPerErasure = map[int32]float64{}
	wait := slack(now, p.t)
	if p.cfg.Flush == FlushMaxWait {
		wait = p.cfg.BatchMaxWait
	}
	for k, n := range perErasure {
		f.IDsPerErasure[k] = round2(n)
		pr.perHour[k] = f.ErasuresPerDay * n / 24
		f.RequestsPerDay += requestsPerDay(f.ErasuresPerDay*n, f.ErasuresPerDay, p.cfg.Flush, wait)
	}
	for _, k := range queuedKinds {
		if _, ok := pr.queues[k]; !ok && pr.perHour[k] > 0 {
			pr.queues[k] = nil
		}
	}
	if f.Limit > 0 {
		days := NextMonth(now).Sub(NextMonth(now).AddDate(0, -1, 0)).Hours() / 24
		f.DemandRatio = round2(f.RequestsPerDay * days / float64(f.Limit))
	}
	missed := p.project(pr, now)
	f.Misses = len(missed)
	f.ErasuresPerDay, f.RequestsPerDay = round2(f.ErasuresPerDay), round2(f.RequestsPerDay)
	return f, missed
}

// markAtRisk marks erasures ids at risk at now, in tx: the record (AtRisk, and AtRiskTime the
// first time) and its queue entries, so that the batcher takes them first and lets them use the
// quota's reserve. Final erasures are passed over.
func (p *Pipeline) markAtRisk(tx store.Tx, ids []string, now time.Time) error {
	for _, id := range ids {
		r, err := model.GetRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil || r.State.Final() || (r.AtRisk && !r.AtRiskTime.IsZero()) {
			continue
		}
		r.AtRisk = true
		if r.AtRiskTime.IsZero() {
			r.AtRiskTime = now
		}
		if err := p.d.Transition(tx, r, r.State, nil, now); err != nil {
			return err
		}
		for _, kind := range queuedKinds {
			v := tx.Get(schema.Queue, schema.QueueKey(r.AccountID, kind, id))
			if v == nil {
				continue
			}
			var e QueueEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			e.AtRisk = true
			if err := Enqueue(tx, r.AccountID, kind, id, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// logDemand says, once per crossing, that an account's demand came to exceed what its quota
// carries, or came back within it.
func (p *Pipeline) logDemand(prev map[string]Forecast, now []Forecast) {
	for _, f := range now {
		was := prev[f.Account].Over
		switch {
		case f.Over && !was:
			p.log.Warn("deletion demand exceeds the LivePerson quota: erasures will miss their deadline unless LivePerson raises the quota, which it does on request (then set accounts[].monthly_quota to match)",
				"account", f.Account, "demand_ratio", f.DemandRatio, "forecast_misses", f.Misses,
				"quota_limit", f.Limit, "requests_per_month_needed", math.Round(f.DemandRatio*float64(f.Limit)))
		case !f.Over && was:
			p.log.Info("deletion demand is back within the LivePerson quota",
				"account", f.Account, "demand_ratio", f.DemandRatio, "forecast_misses", f.Misses, "quota_limit", f.Limit)
		}
	}
}

// markAt is when a forecast made at now marks erasures at risk: the clock's time at the mark,
// or now when there is no clock (a caller driving the pipeline by hand) or it reads earlier.
func markAt(now time.Time, clock func() time.Time) time.Time {
	if clock == nil {
		return now
	}
	return later(now, clock())
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

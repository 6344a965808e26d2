package service

import (
	"context"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// AccountForecast is an account's month forecast as the pipeline's planner last made it, with
// this month's quota use as the ledger holds it now. It holds no personal data.
type AccountForecast struct {
	Account string
	// Misses is how many queued erasures are forecast to miss their deadline (each is marked
	// at risk, and Status shows since when).
	Misses int
	// QuotaLimit, QuotaUsed and QuotaLeft are this month's deletion-request quota and its use.
	QuotaLimit, QuotaUsed, QuotaLeft int
	// QuotaDaysLeft is how many days the quota left lasts at the pace the demand calls for: at
	// most the days until the month ends, which it is when the quota carries the month.
	QuotaDaysLeft float64
	// DemandRatio is the requests a month the demand calls for over the monthly quota: above 1
	// the quota cannot carry the demand (Over says so, with a margin against flapping).
	DemandRatio float64
	Over        bool
	// ErasuresPerDay is the rate of erasures received recently; RequestsPerDay the pace of
	// requests they call for.
	ErasuresPerDay, RequestsPerDay float64
	// Forecast is the planner's record as stored, with the time it was made.
	Forecast pipeline.Forecast
}

// Forecast returns every account's latest month forecast, by account, with its quota use as of
// now. It reads one ledger entry per account (and one for its quota), never the erasures, so a
// metrics scrape may call it. Accounts the planner has not forecast yet are absent.
func (s *Service) Forecast(ctx context.Context) ([]AccountForecast, error) {
	var out []AccountForecast
	now := s.now()
	err := s.db.View(func(tx store.Tx) error {
		fs, err := pipeline.ReadForecasts(tx)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if f.Month != pipeline.Month(now) { // made last month: this month's use is what counts
				f.Month, f.Used, f.Exhausted = pipeline.Month(now), 0, false
			}
			q, err := pipeline.GetQuota(tx, f.Account, f.Month)
			if err != nil {
				return err
			}
			f.Used, f.Exhausted = q.Used, q.Exhausted
			used := f.Used
			if q.Exhausted {
				used = max(used, f.Limit)
			}
			out = append(out, AccountForecast{Account: f.Account, Misses: f.Misses, QuotaLimit: f.Limit,
				QuotaUsed: used, QuotaLeft: f.Left(), QuotaDaysLeft: f.DaysLeft(now), DemandRatio: f.DemandRatio,
				Over: f.Over, ErasuresPerDay: f.ErasuresPerDay, RequestsPerDay: f.RequestsPerDay, Forecast: f})
		}
		return nil
	})
	return out, s.storeError(err)
}

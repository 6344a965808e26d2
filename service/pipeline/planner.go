package pipeline

import (
	"context"
	"time"
)

// quotaAllows reports whether the batcher may form one more batch of account at now, given
// the month's use q: the quota's limit and the at-risk reserve.
func (p *Pipeline) quotaAllows(q Quota, account string, atRisk bool, now time.Time) bool {
	return q.Allows(p.cfg.Quota(account), p.cfg.Reserve, atRisk)
}

// planRound runs, from the scheduler's round, the month planner's periodic work. Nothing yet.
func (p *Pipeline) planRound(ctx context.Context, now time.Time, start func(func())) {}

package service

import (
	"context"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// A batch step whose change of an erasure the transition table refuses must not retry at once:
// its schedule entry is still due after the failed transaction, and the step would call
// LivePerson in a tight loop for as long as the refusal lasts. These helpers back it off and
// report the refusal as an incident (transition_refused), so that a gap in the table shows.

// refusedRetry reports that a step of batch id asked for an erasure change the transition
// table refuses, and has the batch tried again later (batchRetry).
func (p *Pipeline) refusedRetry(ctx context.Context, id uint64, step string, cause error) error {
	p.reportRefusedMove(id, step)
	return p.batchRetry(ctx, id, step, cause)
}

// reportRefusedMove reports a transition refused at a step of batch id, as an incident of its
// account. The incident names the batch, never an erasure's data.
func (p *Pipeline) reportRefusedMove(id uint64, step string) {
	account := ""
	_ = p.s.db.View(func(tx store.Tx) error {
		b, err := pipeline.GetBatch(tx, id)
		if err == nil && b != nil {
			account = b.Account
		}
		return err
	})
	p.s.report(Incident{Kind: IncidentTransitionRefused, Account: account, Step: step, Reason: "state_transition_not_allowed"}, "batch", id)
}

// followRefused handles a batch that could not follow request d, just created or found to be its
// own, because the transition table refused a change of one of its erasures. The batch holds
// its account's send turn until it follows a request, and retrying would hold it for as long
// as the refusal lasts, keeping the account's other batches from being sent. So the refusal is
// reported and the batch is held with d as its one candidate: the turn passes on, the erasures
// show that an operator must settle the batch, and SettleBatch with d makes it follow d once
// the table allows the change. If even the hold fails, the batch is retried later.
func (p *Pipeline) followRefused(ctx context.Context, id uint64, d Deletion, step string, cause error) error {
	p.reportRefusedMove(id, step)
	var b *batch
	err := p.s.db.View(func(tx store.Tx) error {
		var err error
		b, err = pipeline.GetBatch(tx, id)
		return err
	})
	if err != nil || b == nil {
		return err
	}
	if err := p.hold(ctx, b, []int64{d.ID}, nil); err == nil {
		return nil
	}
	return p.batchRetry(ctx, id, step, cause)
}

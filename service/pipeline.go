package service

import (
	"context"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// PipelineConfig holds the pipeline's timings and limits; a zero field takes its default from
// DefaultPipelineConfig.
type PipelineConfig struct {
	// SearchLag: how long after a conversation its attributes become searchable (default 2h).
	SearchLag time.Duration
	// BatchMaxWait bounds how long a queued target waits for a fuller batch (default 0: no
	// bound). Under the default flush policy a part-full batch leaves at its first member's
	// latest safe submit time, or once nothing more can join it; this only sets an upper bound
	// an operator may want (the sandbox uses seconds). Under FlushMaxWait it is the trigger.
	BatchMaxWait time.Duration
	// Quota returns an account's monthly deletion-request quota (default 100).
	Quota func(account string) int
	// Reserve is the share of each month's quota kept for at-risk work (default 10%, at least 1).
	Reserve float64
	// Workers bounds how many erasures are worked on at once (default 8).
	Workers int
	// StepTimeout bounds one step's LivePerson work (default 10m).
	StepTimeout time.Duration
	// CallTimeout is the LivePerson client's timeout of one call (default 30 s, the client's
	// own): a create whose answer was lost is sent again only once LivePerson would list it.
	CallTimeout time.Duration
	// Flush chooses when a part-full batch leaves (default pipeline.FlushPack). The other
	// policies are the baselines the month benchmark compares it with.
	Flush pipeline.FlushPolicy
	// After is the pipeline's timer, time.After when nil: a benchmark on a fast clock gives
	// one that runs as fast as its Now.
	After func(time.Duration) <-chan time.Time
	// MaxTxnOps is the most operations the store takes in one transaction (etcd's
	// --max-txn-ops on a shared store; 0: no bound): a batch takes no more erasures than its
	// transaction can write.
	MaxTxnOps int
}

// Pipeline carries erasures from RECEIVED to a final state (see package pipeline). All its
// progress lives in the store: it can stop at any moment (crash included) and a new Pipeline
// resumes from the store.
type Pipeline = pipeline.Pipeline

// NewPipeline prepares the pipeline of s over lp, and gives s the port for the operations that
// call LivePerson themselves (Preview, a remote Cancel, SettleBatch). Run starts it.
//
// The service never holds the pipeline: it signals new work on its wake channel, which the
// pipeline listens to, and every decision it records (Confirm, Reject, Cancel) is a store write
// the pipeline finds whenever it runs.
func (s *Service) NewPipeline(lp LivePerson, cfg PipelineConfig) *Pipeline {
	s.mu.Lock()
	s.lp = lp
	s.mu.Unlock()
	cfg = cfg.withDefaults()
	// The pipeline's searches go through a gate that holds resolve steps while LivePerson has
	// asked us to wait (a 429 with Retry-After); the service's own calls do not.
	return pipeline.New(pipeline.Config{DB: s.db, Domain: domain{s}, LP: pipeline.GateSearches(lp, s.now), Now: s.now, Log: s.log,
		Wake: s.wake, Timing: s.timing(), SearchLag: cfg.SearchLag, BatchMaxWait: cfg.BatchMaxWait,
		Quota: cfg.Quota, Reserve: cfg.Reserve, Workers: cfg.Workers, StepTimeout: cfg.StepTimeout,
		CallTimeout: cfg.CallTimeout, Flush: cfg.Flush, After: cfg.After, MaxTxnOps: cfg.MaxTxnOps})
}

// timing is what the pipeline and the service's own operations share of the service's timings.
func (s *Service) timing() pipeline.Timing {
	return pipeline.Timing{PollInterval: s.cfg.PollInterval, CancelWindow: s.cfg.CancelWindow,
		DeletionWindow: s.cfg.DeletionWindow, Margin: s.cfg.Margin}
}

// changes are the erasure and batch changes the service's own operations share with the
// pipeline's steps (see pipeline.Changes); they need no running pipeline.
func (s *Service) changes() *pipeline.Changes {
	return pipeline.NewChanges(domain{s}, s.timing(), s.log)
}

// taskErasure starts the schedule's task of each erasure step (see package pipeline).
const taskErasure = pipeline.TaskErasure

// setNext schedules the erasure's next step at `at` (zero: none) and records it on the erasure.
func setNext(tx store.Tx, r *record, at time.Time) error { return pipeline.SetNext(tx, &r.Erasure, at) }

// wakePipeline tells the pipeline, if one runs, that there is new work. It never blocks: one
// pending wake-up stands for any number, since the pipeline reads the whole schedule each time.
func (s *Service) wakePipeline() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// keeperDue is the key keeper, when its time has come at now (pipeline.Domain.Maintenance).
func (s *Service) keeperDue(now time.Time) func(ctx context.Context) {
	if !s.keepDue(now) {
		return nil
	}
	return s.runKeeper
}

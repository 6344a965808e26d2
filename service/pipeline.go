package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// PipelineConfig holds the pipeline's timings and limits; a zero field takes its default from
// DefaultPipelineConfig.
type PipelineConfig struct {
	// SearchLag: how long after a conversation its attributes become searchable (default 2h).
	SearchLag time.Duration
	// BatchMaxWait: the longest a queued target waits for a fuller batch (default 6h).
	BatchMaxWait time.Duration
	// Quota returns an account's monthly deletion-request quota (default 100).
	Quota func(account string) int
	// Reserve is the share of each month's quota kept for at-risk work (default 10%, at least 1).
	Reserve float64
	// Workers bounds how many erasures are worked on at once (default 8).
	Workers int
	// StepTimeout bounds one step's LivePerson work (default 10m).
	StepTimeout time.Duration
}

// Pipeline carries erasures from RECEIVED to a final state. All its progress lives in the store:
// it can stop at any moment (crash included) and a new Pipeline resumes from the store. Its
// loop is the scheduler of package pipeline; the steps it runs are here, over the erasure
// records.
type Pipeline struct {
	s     *Service
	lp    LivePerson
	cfg   PipelineConfig
	sched *pipeline.Scheduler
}

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
	p := &Pipeline{s: s, lp: lp, cfg: cfg.withDefaults()}
	p.sched = pipeline.New(pipeline.Config{DB: s.db, Now: s.now, Log: s.log, Workers: p.cfg.Workers,
		StepTimeout: p.cfg.StepTimeout, Wake: s.wake, Step: p.step, Round: p.round,
		Urgent: func(task string) bool { return strings.HasPrefix(task, taskBatch) }})
	return p
}

// Wake makes the pipeline look for due work now.
func (p *Pipeline) Wake() { p.s.wakePipeline() }

// Run works until ctx ends. Background work never inherits an RPC's deadline: it runs under
// ctx, the pipeline's own.
func (p *Pipeline) Run(ctx context.Context) error { return p.sched.Run(ctx) }

// round is the work of each turn of the loop beside the due tasks: batching the queues, and
// the key keeper when its time has come.
func (p *Pipeline) round(ctx context.Context, now time.Time, start func(func())) {
	if err := p.flushQueues(ctx, now); err != nil && ctx.Err() == nil {
		p.s.log.Error("pipeline: batching", "err", err)
	}
	if p.s.keepDue(now) {
		start(func() { p.s.runKeeper(ctx) })
	}
}

// Tasks in the schedule: an erasure step or a batch step.
const (
	taskErasure = "e/"
	taskBatch   = pipeline.TaskBatch
)

// step runs one task of the schedule.
func (p *Pipeline) step(ctx context.Context, task string) error {
	switch {
	case strings.HasPrefix(task, taskErasure):
		return p.stepErasure(ctx, strings.TrimPrefix(task, taskErasure))
	case strings.HasPrefix(task, taskBatch):
		return p.stepBatch(ctx, strings.TrimPrefix(task, taskBatch))
	}
	return fmt.Errorf("unknown task %q", task)
}

// setNext schedules the erasure's next step at `at` (zero: none) and records it on the erasure.
func setNext(tx store.Tx, r *record, at time.Time) error {
	if err := pipeline.Reschedule(tx, taskErasure+r.ID, r.NextAttemptTime, at); err != nil {
		return err
	}
	r.NextAttemptTime = at
	return nil
}

// wakePipeline tells the pipeline, if one runs, that there is new work. It never blocks: one
// pending wake-up stands for any number, since the pipeline reads the whole schedule each time.
func (s *Service) wakePipeline() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Package pipeline carries erasures from RECEIVED to a final state. It holds the scheduler loop
// and every step the loop runs, each in its own file:
//
//   - scheduler.go: the loop that finds the tasks whose time has come in the schedule and runs
//     them on a bounded set of workers, and the schedule writes (Reschedule);
//   - steps.go: an erasure's step as its state calls for, its commit and its backoff;
//   - search.go and resolver.go: the search of LivePerson for a subject's records, and the
//     resolve step that plans their deletion and queues them;
//   - queue.go, ledger.go and batcher.go: the queue of records waiting for a deletion request,
//     the quota ledger (monthly use, the reserve kept for at-risk work, the send turn, who we
//     are at LivePerson), and the batcher that packs queued records into batches under the
//     quota, planned and sealed outside the committer;
//   - batch.go, submitter.go, reconciler.go, hold.go and poller.go: the batch (one LivePerson
//     deletion request), created exactly once, reconciled against LivePerson's list when an
//     answer was lost, held for an operator when that cannot tell, and polled to its end;
//   - verifier.go: the re-read of every deleted record and the final sweep;
//   - notices.go: what a LivePerson call that retries within a step shows on the erasure.
//
// Imports go one way: service → pipeline → model, schema, store. The package never imports
// service. What it needs of the erasure domain (the erasure's data key, with which targets,
// identifiers and batch ids are sealed; the one transition function every change goes through;
// receipts; incidents) it reaches through Domain, which the Service implements. All its progress
// lives in the store: a Pipeline can stop at any moment (crash included) and a new one resumes.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// DB is what the pipeline needs from the store: transactions that commit durably.
type DB interface {
	Viewer
	Update(ctx context.Context, fn func(tx store.Tx) error) error
}

// Config is what a Pipeline runs on, and its timings and limits. Every field is required
// unless it says otherwise; the service fills them from its own configuration and defaults.
type Config struct {
	DB     DB
	Domain Domain
	LP     model.LivePerson
	Now    func() time.Time
	Log    *slog.Logger
	// Wake is the service's "new work" signal, which Run listens to (see SchedulerConfig.Wake).
	Wake chan struct{}
	// Timing is what the pipeline shares with the service's own operations (see Changes).
	Timing Timing
	// SearchLag: how long after a conversation its attributes become searchable.
	SearchLag time.Duration
	// BatchMaxWait: the longest a queued target waits for a fuller batch.
	BatchMaxWait time.Duration
	// Quota returns an account's monthly deletion-request quota.
	Quota func(account string) int
	// Reserve is the share of each month's quota kept for at-risk work (at least 1 unit).
	Reserve float64
	// Workers bounds how many tasks run at once; StepTimeout bounds one step's LivePerson work.
	Workers     int
	StepTimeout time.Duration
	// CallTimeout is the longest one LivePerson call may take (the LivePerson client's timeout
	// of each attempt): LivePerson may still be processing a create it received that long
	// after, and not list it yet (see ListingWait). Zero leaves ListingAllowance alone.
	CallTimeout time.Duration
	// Flush chooses when a part-full batch leaves (zero: FlushPack).
	Flush FlushPolicy
	// After is the pipeline's timer (nil: time.After); see SchedulerConfig.After.
	After func(time.Duration) <-chan time.Time
	// MaxTxnOps bounds the operations of one store transaction (0: none); see maxMembers.
	MaxTxnOps int
}

// FlushPolicy chooses when the batcher sends a batch that is not full.
type FlushPolicy int

const (
	// FlushPack, the default, keeps a part-full batch while more records of its kind may still
	// join it and every member has time to spare before its latest safe submit time.
	FlushPack FlushPolicy = iota
	// FlushMaxWait sends a part-full batch once its oldest record has waited BatchMaxWait (or a
	// member is at risk or at its latest safe time): the rule before FlushPack, kept as a
	// baseline for the month benchmark.
	FlushMaxWait
	// FlushPerErasure sends every erasure's records of a kind in a request of their own, at
	// once: the naive baseline of one request per subject. Not for production.
	FlushPerErasure
)

// Pipeline carries erasures from RECEIVED to a final state. Its loop is the Scheduler; the
// tasks it runs are an erasure's step (TaskErasure) or a batch's (TaskBatch).
type Pipeline struct {
	db    DB
	d     Domain
	lp    model.LivePerson
	now   func() time.Time
	log   *slog.Logger
	wake  chan struct{}
	t     Timing
	ch    *Changes
	cfg   Config
	sched *Scheduler
	// planned is the month planner's memory of its last forecast (see planRound).
	planned planState
	// countAgain is when a failed count of the backlog (ensureBacklog) is tried again.
	countAgain time.Time
}

// New prepares a pipeline of cfg; Run starts it.
func New(cfg Config) *Pipeline {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &Pipeline{db: cfg.DB, d: cfg.Domain, lp: cfg.LP, now: cfg.Now, log: cfg.Log, wake: cfg.Wake,
		t: cfg.Timing, cfg: cfg}
	p.ch = NewChanges(cfg.Domain, cfg.Timing, cfg.Log)
	p.sched = NewScheduler(SchedulerConfig{DB: cfg.DB, Now: cfg.Now, Log: cfg.Log, Workers: cfg.Workers,
		StepTimeout: cfg.StepTimeout, Wake: cfg.Wake, After: cfg.After, Step: p.step, Round: p.round,
		Urgent: func(task string) bool { return strings.HasPrefix(task, TaskBatch) }})
	return p
}

// Wake makes the pipeline look for due work now. It never blocks: one pending wake-up stands for
// any number, since the pipeline reads the whole schedule each time.
func (p *Pipeline) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends. Background work never inherits an RPC's deadline: it runs under
// ctx, the pipeline's own, and every store write the pipeline makes uses a context derived
// from it (a replica's fencing of the pipeline's writes goes through it).
func (p *Pipeline) Run(ctx context.Context) error { return p.sched.Run(ctx) }

// Flush forms every batch due at now (the batching each turn of Run's loop does). It is for
// callers that drive the pipeline by hand, such as tests under a fake clock; Run calls it itself.
func (p *Pipeline) Flush(ctx context.Context, now time.Time) error { return p.flushQueues(ctx, now) }

// Step runs, in the caller's goroutine, Flush and then the first task due at now, and reports
// whether a task was due. Like Flush it is for callers that drive the pipeline by hand.
func (p *Pipeline) Step(ctx context.Context, now time.Time) (bool, error) {
	if err := p.flushQueues(ctx, now); err != nil {
		return false, err
	}
	tasks, _, err := p.sched.Due(now, 1)
	if err != nil || len(tasks) == 0 {
		return false, err
	}
	p.sched.RunTask(ctx, tasks[0])
	return true, nil
}

// round is the work of each turn of the loop beside the due tasks: batching the queues, and
// the domain's maintenance when its time has come.
func (p *Pipeline) round(ctx context.Context, now time.Time, start func(func())) {
	if err := p.flushQueues(ctx, now); err != nil && ctx.Err() == nil {
		p.log.Error("pipeline: batching", "err", err)
	}
	if work := p.d.Maintenance(now); work != nil {
		start(func() { work(ctx) })
	}
	p.planRound(ctx, now, start)
}

// TaskErasure starts the schedule's task of each erasure step: TaskErasure and the erasure id.
const TaskErasure = "e/"

// step runs one task of the schedule.
func (p *Pipeline) step(ctx context.Context, task string) error {
	switch {
	case strings.HasPrefix(task, TaskErasure):
		return p.stepErasure(ctx, strings.TrimPrefix(task, TaskErasure))
	case strings.HasPrefix(task, TaskBatch):
		return p.stepBatch(ctx, strings.TrimPrefix(task, TaskBatch))
	}
	return fmt.Errorf("unknown task %q", task)
}

// SetNext schedules the erasure's next step at `at` (zero: none) and records it on the erasure.
func SetNext(tx store.Tx, e *model.Erasure, at time.Time) error {
	if err := Reschedule(tx, TaskErasure+e.ID, e.NextAttemptTime, at); err != nil {
		return err
	}
	e.NextAttemptTime = at
	return nil
}

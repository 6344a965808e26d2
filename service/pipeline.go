package service

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/erasured/erasured/service/schema"
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
// it can stop at any moment (crash included) and a new Pipeline resumes from the store.
type Pipeline struct {
	s   *Service
	lp  LivePerson
	cfg PipelineConfig

	mu       sync.Mutex
	inflight map[string]bool // tasks being worked on, so no task runs twice at once
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
	return &Pipeline{s: s, lp: lp, cfg: cfg.withDefaults(), inflight: map[string]bool{}}
}

// Wake makes the pipeline look for due work now.
func (p *Pipeline) Wake() { p.s.wakePipeline() }

// maxIdle is the longest the pipeline sleeps without looking at the store.
const maxIdle = time.Second

// Run works until ctx ends. Background work never inherits an RPC's deadline: it runs under
// ctx, the pipeline's own.
func (p *Pipeline) Run(ctx context.Context) error {
	sem := make(chan struct{}, p.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		now := p.s.now()
		tasks, next, err := p.due(now, 256)
		if err != nil && ctx.Err() == nil {
			p.s.log.Error("pipeline: reading the schedule", "err", err)
		}
		// Start as many due tasks as there are free workers, and no more: waiting here for a
		// worker would hold up batching below behind a backlog of long resolve steps. A task
		// that finishes wakes the loop for the next round.
	launch:
		for _, task := range tasks {
			select {
			case sem <- struct{}{}:
			default:
				break launch
			}
			if !p.claim(task) {
				<-sem
				continue
			}
			wg.Go(func() {
				defer func() { <-sem; p.release(task) }()
				p.runTask(ctx, task)
			})
		}
		if err := p.flushQueues(ctx, now); err != nil && ctx.Err() == nil {
			p.s.log.Error("pipeline: batching", "err", err)
		}
		if p.s.keepDue(now) {
			wg.Go(func() { p.s.runKeeper(ctx) })
		}
		wait := maxIdle
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(p.s.now()), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-p.s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (p *Pipeline) claim(task string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[task] {
		return false
	}
	p.inflight[task] = true
	return true
}

func (p *Pipeline) release(task string) {
	p.mu.Lock()
	delete(p.inflight, task)
	p.mu.Unlock()
	p.Wake()
}

// Tasks in the schedule: an erasure step or a batch step.
const (
	taskErasure = "e/"
	taskBatch   = "b/"
)

// due returns tasks whose time has come (at most limit, not counting tasks already running) and
// the time of the next one after them. Batch tasks come first whatever their due time: a batch
// holds up to 100 records of many erasures, and its send must not wait behind a backlog of
// erasures still being resolved.
func (p *Pipeline) due(now time.Time, limit int) (tasks []string, next time.Time, err error) {
	var batches, erasures []string
	err = p.s.db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Schedule, nil, func(k, _ []byte) (bool, error) {
			at, task, err := schema.ParseScheduleKey(k)
			if err != nil {
				return false, err
			}
			if at.After(now) {
				next = at
				return false, nil
			}
			switch {
			case p.running(task):
			case strings.HasPrefix(task, taskBatch):
				batches = append(batches, task)
			case len(erasures) < limit:
				erasures = append(erasures, task)
			}
			return true, nil
		})
	})
	return append(batches, erasures...), next, err
}

func (p *Pipeline) running(task string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight[task]
}

func (p *Pipeline) runTask(ctx context.Context, task string) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StepTimeout)
	defer cancel()
	var err error
	switch {
	case strings.HasPrefix(task, taskErasure):
		err = p.stepErasure(ctx, strings.TrimPrefix(task, taskErasure))
	case strings.HasPrefix(task, taskBatch):
		err = p.stepBatch(ctx, strings.TrimPrefix(task, taskBatch))
	default:
		err = fmt.Errorf("unknown task %q", task)
	}
	if err != nil && ctx.Err() == nil {
		p.s.log.Warn("pipeline step failed", "task", task, "err", err)
	}
}

// reschedule moves a task from old (zero: not scheduled) to at (zero: unschedule), in tx.
func reschedule(tx store.Tx, task string, old, at time.Time) error {
	if !old.IsZero() {
		if err := tx.Delete(schema.Schedule, schema.ScheduleKey(old, task)); err != nil {
			return err
		}
	}
	if at.IsZero() {
		return nil
	}
	return tx.Put(schema.Schedule, schema.ScheduleKey(at, task), nil)
}

// setNext schedules the erasure's next step at `at` (zero: none) and records it on the erasure.
func setNext(tx store.Tx, r *record, at time.Time) error {
	if err := reschedule(tx, taskErasure+r.ID, r.NextAttemptTime, at); err != nil {
		return err
	}
	r.NextAttemptTime = at
	return nil
}

// scheduledTasks lists every scheduled task (for tests and diagnostics).
func scheduledTasks(tx store.Tx) ([]string, error) {
	var out []string
	err := tx.Scan(schema.Schedule, nil, func(k, _ []byte) (bool, error) {
		out = append(out, string(bytes.Clone(k[8:])))
		return true, nil
	})
	return out, err
}

// wakePipeline tells the pipeline, if one runs, that there is new work. It never blocks: one
// pending wake-up stands for any number, since the pipeline reads the whole schedule each time.
func (s *Service) wakePipeline() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Viewer is what the scheduler reads the schedule through: a read transaction of the store.
type Viewer interface {
	View(fn func(tx store.Tx) error) error
}

// SchedulerConfig is what a Scheduler runs.
type SchedulerConfig struct {
	// DB holds the schedule (schema.Schedule: due time + task → nothing). The scheduler only
	// reads it; a task removes or moves its own entry when it runs.
	DB Viewer
	// Now is the clock.
	Now func() time.Time
	// Log receives the scheduler's own failures (never personal data).
	Log *slog.Logger
	// Workers bounds how many tasks run at once; StepTimeout bounds each one (zero: no bound).
	Workers     int
	StepTimeout time.Duration
	// Wake makes Run look at the schedule at once. Its owner sends without blocking; Run also
	// sends on it when a task finishes, so that the freed worker takes the next due task.
	Wake chan struct{}
	// Step runs one task.
	Step func(ctx context.Context, task string) error
	// Urgent tasks are run before every other due task whatever their due time, and are never
	// held back by the limit of one read of the schedule.
	Urgent func(task string) bool
	// Round, when set, runs after each launch of due tasks, in the loop (batching the queues,
	// say). Work it starts with start runs beside the tasks, and Run waits for it before it
	// returns.
	Round func(ctx context.Context, now time.Time, start func(func()))
	// After is the timer of Run's idle wait (nil: time.After). A benchmark whose Now runs
	// faster than real time gives one that runs as fast.
	After func(time.Duration) <-chan time.Time
}

// Scheduler runs the due tasks of the schedule. All its progress lives in the store: it can
// stop at any moment, and a new Scheduler over the same store carries on.
type Scheduler struct {
	cfg SchedulerConfig

	mu       sync.Mutex
	inflight map[string]bool      // tasks being run, so that no task runs twice at once
	held     map[string]time.Time // tasks held by their step until a time (HoldTask), in memory only
	heldMin  time.Time            // the earliest hold still to pass, when known (see heldUntil)
}

// NewScheduler returns a scheduler of cfg; Run starts it. DB, Now, Wake and Step are required; fewer
// than one worker counts as one, and a zero StepTimeout leaves steps unbounded.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Urgent == nil {
		cfg.Urgent = func(string) bool { return false }
	}
	cfg.Workers = max(cfg.Workers, 1)
	return &Scheduler{cfg: cfg, inflight: map[string]bool{}, held: map[string]time.Time{}}
}

// Reschedule moves task from old (zero: not scheduled) to at (zero: unschedule), in tx. A task
// is scheduled once at most: whoever moves it names the time it was at.
func Reschedule(tx store.Tx, task string, old, at time.Time) error {
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

// MaxIdle is the longest Run sleeps without looking at the schedule.
const MaxIdle = time.Second

// Due reads the tasks whose time has come: the urgent ones first, then at most limit others,
// leaving out tasks already running and tasks held (HoldTask) until a later time, and the due
// time of the first task after them (zero: none). An urgent task is read first because it must
// not wait behind a backlog of others: a batch holds records of many erasures. The scan
// allocates nothing for a task it leaves out: under load most due tasks are running or held.
func (s *Scheduler) Due(now time.Time, limit int) (tasks []string, next time.Time, err error) {
	var urgent, rest []string
	err = s.cfg.DB.View(func(tx store.Tx) error {
		s.mu.Lock() // once for the scan, not once per task
		defer s.mu.Unlock()
		return tx.Scan(schema.Schedule, nil, func(k, _ []byte) (bool, error) {
			if len(k) < 9 {
				return false, errors.New("malformed schedule key")
			}
			at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
			if at.After(now) {
				next = at
				return false, nil
			}
			task := k[8:]
			if s.inflight[string(task)] {
				return true, nil
			}
			if until, held := s.held[string(task)]; held {
				if until.After(now) {
					return true, nil
				}
				delete(s.held, string(task))
			}
			switch name := string(task); {
			case s.cfg.Urgent(name):
				urgent = append(urgent, name)
			case len(rest) < limit:
				rest = append(rest, name)
			}
			return true, nil
		})
	})
	return append(urgent, rest...), next, err
}

// RoundGap is the least time between the starts of two rounds of Run's loop when wake-ups
// come faster: every wake-up in between is served by the one round that follows. A pipeline
// woken after a quiet spell starts its round at once.
const RoundGap = 5 * time.Millisecond

// Run works until ctx ends, then waits for every task and every piece of work Round started.
// Tasks never inherit an RPC's deadline: they run under ctx, the scheduler's own.
func (s *Scheduler) Run(ctx context.Context) error {
	sem := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	after := s.cfg.After
	if after == nil {
		after = time.After
	}
	for {
		now := s.cfg.Now()
		// Read the schedule only when a worker is free to take a task: with every worker busy
		// nothing could start, and a finishing task wakes the loop. Under load that spares a
		// scan of the whole due backlog per wake-up.
		var tasks []string
		var next time.Time
		if free := cap(sem) - len(sem); free > 0 {
			var err error
			tasks, next, err = s.Due(now, free)
			if err != nil && ctx.Err() == nil {
				s.cfg.Log.Error("pipeline: reading the schedule", "err", err)
			}
		}
		// Start as many due tasks as there are free workers, and no more: waiting here for a
		// worker would hold up Round (batching) behind a backlog of long steps. A task that
		// finishes wakes the loop for the next round.
	launch:
		for _, task := range tasks {
			select {
			case sem <- struct{}{}:
			default:
				break launch
			}
			if !s.claim(task) {
				<-sem
				continue
			}
			wg.Go(func() {
				defer func() { <-sem; s.release(task) }()
				s.RunTask(withHolder(ctx, s, task), task)
			})
		}
		if s.cfg.Round != nil {
			s.cfg.Round(ctx, now, wg.Go)
		}
		wait := MaxIdle
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.cfg.Now()), time.Millisecond))
		}
		if until := s.heldUntil(); !until.IsZero() {
			wait = min(wait, max(until.Sub(s.cfg.Now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.cfg.Wake:
			// Coalesce: a wake-up sooner than RoundGap after this round began waits out the
			// rest of the gap, and the wake-ups that come meanwhile are served with it.
			if gap := RoundGap - s.cfg.Now().Sub(now); gap > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-after(gap):
				}
			}
		case <-after(wait):
		}
	}
}

// RunTask runs one task under the step timeout, and logs its failure unless ctx ended. A failed
// step leaves the task's schedule entry as it was, still due, so the next round runs it again at
// once: a step that can fail for a while must move its own entry on (the batch steps
// back off with batchRetry on LivePerson's failures and on a refused state change).
func (s *Scheduler) RunTask(ctx context.Context, task string) {
	if s.cfg.StepTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.StepTimeout)
		defer cancel()
	}
	if err := s.cfg.Step(ctx, task); err != nil && ctx.Err() == nil {
		s.cfg.Log.Warn("pipeline step failed", "task", task, "err", err)
	}
}

func (s *Scheduler) claim(task string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[task] {
		return false
	}
	s.inflight[task] = true
	return true
}

func (s *Scheduler) release(task string) {
	s.mu.Lock()
	delete(s.inflight, task)
	s.mu.Unlock()
	select {
	case s.cfg.Wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) running(task string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[task]
}

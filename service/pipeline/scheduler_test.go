package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openSchedule opens a store holding the given schedule entries (task → due time).
func openSchedule(t *testing.T, entries map[string]time.Time) *boltstore.DB {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(context.Background(), func(tx store.Tx) error {
		for task, at := range entries {
			if err := tx.Put(schema.Schedule, schema.ScheduleKey(at, task), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestDue(t *testing.T) {
	db := openSchedule(t, map[string]time.Time{
		"e/1": t0.Add(-3 * time.Hour), "e/2": t0.Add(-2 * time.Hour), "e/3": t0.Add(-time.Hour),
		"b/9": t0, // due now, and urgent: first though latest
		"e/4": t0.Add(time.Minute), "e/5": t0.Add(time.Hour),
	})
	s := NewScheduler(SchedulerConfig{DB: db, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1),
		Step:   func(context.Context, string) error { return nil },
		Urgent: func(task string) bool { return task[0] == 'b' }})
	tests := []struct {
		name    string
		limit   int
		running string
		want    []string
	}{
		{"all due", 10, "", []string{"b/9", "e/1", "e/2", "e/3"}},
		{"limit counts only the others", 1, "", []string{"b/9", "e/1"}},
		{"a running task is left out", 2, "e/1", []string{"b/9", "e/2", "e/3"}},
		{"a running urgent task too", 10, "b/9", []string{"e/1", "e/2", "e/3"}},
	}
	for _, tt := range tests {
		if tt.running != "" && !s.claim(tt.running) {
			t.Fatalf("%s: claim(%s) refused", tt.name, tt.running)
		}
		got, next, err := s.Due(t0, tt.limit)
		if tt.running != "" {
			s.release(tt.running)
		}
		if err != nil || !slices.Equal(got, tt.want) || !next.Equal(t0.Add(time.Minute)) {
			t.Errorf("%s: Due = %v, next %v, %v; want %v, next %v", tt.name, got, next, err, tt.want, t0.Add(time.Minute))
		}
	}
	if _, next, _ := s.Due(t0.Add(2*time.Hour), 10); !next.IsZero() {
		t.Errorf("next = %v with nothing left in the future, want zero", next)
	}
}

// TestClaim: a task runs once at a time, and its end wakes the loop for the freed worker.
func TestClaim(t *testing.T) {
	wake := make(chan struct{}, 1)
	s := NewScheduler(SchedulerConfig{DB: openSchedule(t, nil), Now: time.Now, Wake: wake, Step: func(context.Context, string) error { return nil }})
	if !s.claim("e/1") || s.claim("e/1") {
		t.Fatal("a claimed task was claimed again")
	}
	s.release("e/1")
	select {
	case <-wake:
	default:
		t.Error("a finished task did not wake the loop")
	}
	if !s.claim("e/1") {
		t.Error("a released task could not be claimed")
	}
}

// TestRunBoundsWorkers runs due tasks that never leave the schedule on two workers: no more
// than two run at once, none runs twice at once, Round runs beside them, and Run returns only
// once every step and the work Round started have ended.
func TestRunBoundsWorkers(t *testing.T) {
	entries := map[string]time.Time{}
	for _, task := range []string{"e/1", "e/2", "e/3", "e/4", "e/5"} {
		entries[task] = t0.Add(-time.Hour)
	}
	db := openSchedule(t, entries)
	var (
		mu               sync.Mutex
		now, peak, total int
		twice            bool
		active           = map[string]bool{}
		roundWork        atomic.Int32
	)
	ctx, cancel := context.WithCancel(context.Background())
	step := func(ctx context.Context, task string) error {
		mu.Lock()
		twice = twice || active[task]
		active[task] = true
		now++
		peak = max(peak, now)
		total++
		if total >= 8 {
			cancel()
		}
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		now--
		delete(active, task)
		mu.Unlock()
		return errors.New("not yet") // the task stays due
	}
	round := func(ctx context.Context, _ time.Time, start func(func())) {
		start(func() { <-ctx.Done(); time.Sleep(10 * time.Millisecond); roundWork.Add(1) })
	}
	s := NewScheduler(SchedulerConfig{DB: db, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1), Workers: 2,
		StepTimeout: time.Minute, Step: step, Round: round})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end after its context")
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > 2 || twice {
		t.Errorf("peak %d steps at once (want at most 2), a task twice at once: %v", peak, twice)
	}
	if now != 0 {
		t.Errorf("Run returned with %d steps still running", now)
	}
	if n := roundWork.Load(); n == 0 {
		t.Error("Run returned before the work Round started had ended")
	}
}

// TestRunTaskTimeout: a step runs under the step timeout, not under the loop's context alone.
func TestRunTaskTimeout(t *testing.T) {
	var deadline time.Time
	s := NewScheduler(SchedulerConfig{DB: openSchedule(t, nil), Now: time.Now, Wake: make(chan struct{}, 1), StepTimeout: time.Hour,
		Step: func(ctx context.Context, _ string) error { deadline, _ = ctx.Deadline(); return nil }})
	s.RunTask(context.Background(), "e/1")
	if d := time.Until(deadline); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("step deadline in %v, want the hour of the step timeout", d)
	}
}

func TestReschedule(t *testing.T) {
	db := openSchedule(t, map[string]time.Time{"e/1": t0.Add(time.Hour)})
	s := NewScheduler(SchedulerConfig{DB: db, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1),
		Step: func(context.Context, string) error { return nil }})
	steps := []struct {
		name    string
		old, at time.Time
		want    []string // due at t0
	}{
		{"moved to now", t0.Add(time.Hour), t0, []string{"e/1"}},
		{"moved away", t0, t0.Add(time.Hour), nil},
		{"unscheduled", t0.Add(time.Hour), time.Time{}, nil},
		{"scheduled anew", time.Time{}, t0.Add(-time.Minute), []string{"e/1"}},
	}
	for _, st := range steps {
		err := db.Update(context.Background(), func(tx store.Tx) error { return Reschedule(tx, "e/1", st.old, st.at) })
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Due(t0, 10)
		if err != nil || !slices.Equal(got, st.want) {
			t.Errorf("%s: due %v, %v; want %v", st.name, got, err, st.want)
		}
	}
	var n int
	db.View(func(tx store.Tx) error { n = tx.Count(schema.Schedule); return nil })
	if n != 1 {
		t.Errorf("the schedule holds %d entries, want the task once", n)
	}
}

package service

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeriodEndsWhenItStopsBeingCurrent: the keyring dates a period key's end no earlier than
// the last moment it was current (it wrapped data keys until then, and a backup of that moment
// must stay readable for the retention), and no later than one keeper interval after, also when
// the key period changes between restarts, in either direction.
func TestPeriodEndsWhenItStopsBeingCurrent(t *testing.T) {
	t0 := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC) // a Monday; weeks of the key period begin on Thursdays
	const step = time.Hour                            // how often the keeper rolls
	day, week := 24*time.Hour, 7*24*time.Hour
	cases := []struct {
		name          string
		before, after time.Duration // the key period before and after the restart
		restart       time.Duration // after t0
	}{
		{"shorter after restart", week, day, 3*day + 5*time.Hour},
		{"longer after restart", day, week, 5 * time.Hour},
		{"unchanged", day, day, 30 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			lastCurrent := map[string]time.Time{}
			k, err := OpenKeyring("test", testKey, dir, tc.before, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			at := t0.Add(time.Hour)
			for ; at.Before(t0.Add(tc.restart)); at = at.Add(step) {
				cur, err := k.roll(at)
				if err != nil {
					t.Fatal(err)
				}
				lastCurrent[cur] = at
			}
			if k, err = OpenKeyring("test", testKey, dir, tc.after, at); err != nil {
				t.Fatal(err)
			}
			for end := at.Add(3 * week); at.Before(end); at = at.Add(step) {
				cur, err := k.roll(at)
				if err != nil {
					t.Fatal(err)
				}
				lastCurrent[cur] = at
			}
			past := k.pastPeriods()
			if len(past) < 3 {
				t.Fatalf("past periods %v: the keyring did not roll", past)
			}
			for _, p := range past {
				last := lastCurrent[p.name]
				if p.end.Before(last) {
					t.Errorf("%s ends %v by the keyring, but was current (wrapping data keys) at %v", p.name, p.end, last)
				}
				if p.end.After(last.Add(step)) {
					t.Errorf("%s ends %v by the keyring, but was last current at %v", p.name, p.end, last)
				}
			}
		})
	}
}

// TestForwardClockStepMakesNoFutureKey: the host's clock set far ahead (a bad time source, a
// virtual machine resumed with a wrong clock) and back again must not leave a key of a far
// future period current: it would stay current, and keep every data key it wraps readable in
// old copies of the database, until real time reached its period. While the wall clock is
// ahead of the time the monotonic clock measured, the keyring rolls by the latter.
func TestForwardClockStepMakesNoFutureKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := OpenKeyring("test", testKey, dir, testPeriod, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	k.log = slog.New(slog.NewTextHandler(&logs, nil))
	var stepped time.Duration // how far the wall clock is set ahead of the monotonic clock
	k.clockStep = func() time.Duration { return stepped }

	stepped = 365 * 24 * time.Hour
	cur, err := k.roll(testNow.Add(stepped))
	if err != nil {
		t.Fatal(err)
	}
	if want := periodKeyName(testNow.Truncate(testPeriod)); cur != want {
		t.Errorf("with the clock a year ahead the current key is %s, want %s", cur, want)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the clock step is not logged as an error: %q", logs.String())
	}
	stepped = 0
	next := testNow.Add(testPeriod)
	if cur, err = k.roll(next); err != nil {
		t.Fatal(err)
	}
	if want := periodKeyName(next.Truncate(testPeriod)); cur != want {
		t.Errorf("a period after the clock came back the current key is %s, want %s", cur, want)
	}
	for _, n := range k.PeriodKeys() {
		if n > cur {
			t.Errorf("period key %s of a future period was made", n)
		}
	}
}

// TestFutureKeyAtStartIsLogged: a key directory holding the key of a period that has not begun
// (made while the clock was ahead) is reported at start, naming the key.
func TestFutureKeyAtStartIsLogged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	future := testNow.Add(90 * 24 * time.Hour)
	if _, err := OpenKeyring("test", testKey, dir, testPeriod, future); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := OpenKeyring("test", testKey, dir, testPeriod, testNow); err != nil {
		t.Fatal(err)
	}
	name := periodKeyName(future.Truncate(testPeriod))
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), name) {
		t.Errorf("start with the future key %s: logged %q", name, logs.String())
	}
}

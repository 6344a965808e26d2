package service

import (
	"path/filepath"
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

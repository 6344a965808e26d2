package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

// bruteIdeal is the fewest groups of at most capacity items such that every group can leave at
// one time within all its members' windows (its latest from is no later than its earliest by),
// over every partition of the items.
func bruteIdeal(items []idealItem, capacity int) int {
	best := len(items)
	var groups [][]idealItem
	var place func(i int)
	place = func(i int) {
		if len(groups) >= best {
			return
		}
		if i == len(items) {
			best = len(groups)
			return
		}
		it := items[i]
		for g := range groups {
			if len(groups[g]) >= capacity {
				continue
			}
			from, by := it.from, it.by
			for _, o := range groups[g] {
				from, by = later(from, o.from), earlier(by, o.by)
			}
			if from.After(by) {
				continue
			}
			groups[g] = append(groups[g], it)
			place(i + 1)
			groups[g] = groups[g][:len(groups[g])-1]
		}
		groups = append(groups, []idealItem{it})
		place(i + 1)
		groups = groups[:len(groups)-1]
	}
	place(0)
	return best
}

// The greedy deadline ideal is the optimum: it equals the brute force over every partition on
// many small random inputs, and is never below the ids-only ideal.
func TestDeadlineIdealIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := monthStart
	for trial := range 3000 {
		n, capacity := 1+rng.IntN(8), 1+rng.IntN(4)
		items := make([]idealItem, n)
		for i := range items {
			from := t0.Add(time.Duration(rng.IntN(10)) * time.Hour)
			items[i] = idealItem{from: from, by: from.Add(time.Duration(rng.IntN(6)) * time.Hour)}
		}
		got, want := deadlineIdeal(items, capacity), bruteIdeal(items, capacity)
		if got != want {
			t.Fatalf("trial %d, capacity %d, items %v: greedy %d, brute force %d", trial, capacity, items, got, want)
		}
		if low := (n + capacity - 1) / capacity; got < low {
			t.Fatalf("trial %d: %d requests below the ids-only %d", trial, got, low)
		}
	}
}

// Worked cases: ids that arrive too far apart for one request need two, though they fit in one.
func TestDeadlineIdealCases(t *testing.T) {
	h := func(n int) time.Time { return monthStart.Add(time.Duration(n) * time.Hour) }
	for _, c := range []struct {
		name  string
		items []idealItem
		want  int
	}{
		{"none", nil, 0},
		{"overlapping windows share a request", []idealItem{{h(0), h(10)}, {h(5), h(12)}, {h(9), h(9)}}, 1},
		{"a later arrival past the first deadline needs its own", []idealItem{{h(0), h(4)}, {h(5), h(9)}}, 2},
	} {
		if got := deadlineIdeal(c.items, 3); got != c.want {
			t.Errorf("%s: %d requests, want %d", c.name, got, c.want)
		}
	}
	burst := make([]idealItem, 250)
	for i := range burst {
		burst[i] = idealItem{h(0), h(96)}
	}
	if got := deadlineIdeal(burst, MaxIDsPerRequest); got != 3 {
		t.Errorf("a burst of 250 ids: %d requests, want 3", got)
	}
	// A slow kind: one id a day, each to be sent within four days, needs a request every five.
	var slow []idealItem
	for d := range 30 {
		slow = append(slow, idealItem{h(24 * d), h(24*d + 96)})
	}
	if got := deadlineIdeal(slow, MaxIDsPerRequest); got != 6 {
		t.Errorf("one id a day for 30 days, 4 days each: %d requests, want 6", got)
	}
}

package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
)

// The month's arrivals are what the report says: the same for the same seed, within the
// demand asked for, a burst share arriving at the burst times, all within the month.
func TestMonthArrivals(t *testing.T) {
	for _, level := range []float64{0.5, 1, 1.5} {
		d := monthArrivals(7, 20, level)
		again := monthArrivals(7, 20, level)
		if len(d.Subjects) != len(again.Subjects) || d.Subjects[0].customerID != again.Subjects[0].customerID {
			t.Fatalf("level %v: two draws of one seed differ", level)
		}
		want := int(level*20 + 0.5)
		if d.Ideal > want || d.Ideal < want-2 {
			t.Errorf("level %v: deadline ideal %d requests, want about %d", level, d.Ideal, want)
		}
		if dl, ids := idealOf(d.Subjects, nil); sumKinds(dl) != d.Ideal || sumKinds(ids) != d.IdsOnly {
			t.Errorf("level %v: ideals %d/%d, recounted %d/%d", level, d.Ideal, d.IdsOnly, sumKinds(dl), sumKinds(ids))
		}
		if d.IdsOnly > d.Ideal {
			t.Errorf("level %v: ids-only ideal %d above the deadline ideal %d", level, d.IdsOnly, d.Ideal)
		}
		bursts := 0
		for i, s := range d.Subjects {
			if s.arrive < 0 || s.arrive >= monthLength {
				t.Errorf("subject %d arrives at %v, outside the month", i, s.arrive)
			}
			if i > 0 && s.arrive < d.Subjects[i-1].arrive {
				t.Errorf("subject %d arrives before subject %d", i, i-1)
			}
			if n := len(s.chats) + len(s.convs); n < 1 || n > maxRecords {
				t.Errorf("subject %d has %d records", i, n)
			}
			if s.burst {
				bursts++
			}
		}
		if share := float64(bursts) / float64(len(d.Subjects)); share < burstShare/2 || share > 2*burstShare {
			t.Errorf("level %v: %d of %d subjects in bursts, want about %.0f%%", level, bursts, len(d.Subjects), 100*burstShare)
		}
	}
}

// A tiny month end to end: every count of the report adds up, so that a broken harness shows
// here and not only in a long benchmark run.
func TestMonthSmoke(t *testing.T) {
	// At a quota of 16 the sparse kinds (consumer profiles above all) take most of it: the
	// month at 100% holds some 26 subjects.
	mc := MonthConfig{Quota: 16, Levels: []float64{1}, Speed: 2_000_000, Background: -1, HoldSearches: true,
		Policies: []pipeline.FlushPolicy{pipeline.FlushPack, pipeline.FlushPerErasure}}.withDefaults()
	d := monthArrivals(mc.Seed, mc.Quota, 1)
	if n := len(d.Subjects); n < 10 || n > 40 {
		t.Fatalf("%d subjects, want a tiny month of 10–40", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var results []monthResult
	for _, p := range mc.Policies {
		var err error
		dir := t.TempDir()
		if shm := defaultMonthStoreDir(); shm != "" {
			if dir, err = os.MkdirTemp(shm, "erasured-month-test-"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		o, err := runMonth(ctx, dir, mc, &d, p)
		if err != nil {
			t.Fatalf("%s: %v", policyName(p), err)
		}
		r := analyzeMonth(o)
		results = append(results, r)
		if r.Submitted != len(d.Subjects) || r.Subjects != len(d.Subjects) {
			t.Errorf("%s: %d submitted of %d subjects", policyName(p), r.Submitted, len(d.Subjects))
		}
		if r.Records != r.IDsSent+r.NotSentFinal+r.NotSentOpen {
			t.Errorf("%s: %d records ≠ %d sent + %d + %d not sent", policyName(p), r.Records, r.IDsSent, r.NotSentFinal, r.NotSentOpen)
		}
		if r.Foreign != 0 || r.SentTwice != 0 || r.Duplicates != 0 || r.WronglyErased != 0 {
			t.Errorf("%s: ids not a subject's %d, sent twice %d, bodies twice %d, others' records masked %d",
				policyName(p), r.Foreign, r.SentTwice, r.Duplicates, r.WronglyErased)
		}
		if r.Met+r.Missed != r.Submitted || len(r.Leads)+r.NotForecast != r.Missed {
			t.Errorf("%s: met %d + missed %d ≠ %d submitted, or %d leads + %d not forecast ≠ missed",
				policyName(p), r.Met, r.Missed, r.Submitted, len(r.Leads), r.NotForecast)
		}
		sum, inMonths := 0, 0
		for _, n := range r.Requests {
			sum += n
		}
		for _, n := range r.Months {
			inMonths += n
		}
		if sum != len(o.Deletions) || r.Used != sum || inMonths != sum {
			t.Errorf("%s: requests per kind sum to %d, by month to %d, used %d; LivePerson holds %d", policyName(p), sum, inMonths, r.Used, len(o.Deletions))
		}
		// The deadline ideal bounds the requests of a run that met every deadline (one that sent
		// ids late could pack them tighter).
		if r.IDsSent > 0 && (r.IdealAll == 0 || (r.Missed == 0 && r.IdealAll > r.Used)) {
			t.Errorf("%s: ideal %d for %d requests", policyName(p), r.IdealAll, r.Used)
		}
		if r.Unfinished == 0 && r.Erased != r.Records {
			t.Errorf("%s: every erasure final but %d of %d records masked", policyName(p), r.Erased, r.Records)
		}
		if r.Completed+r.Unfinished > r.Submitted {
			t.Errorf("%s: %d completed and %d open of %d", policyName(p), r.Completed, r.Unfinished, r.Submitted)
		}
	}
	var out bytes.Buffer
	writeMonthReport(&out, mc, 1, results, time.Second)
	for _, want := range []string{"demand 100%", "deadline ideal", "FlushPack", "FlushPerErasure check", "goals (FlushPack rows)", "sanity: subjects"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
}

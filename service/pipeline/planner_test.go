package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// planTiming are the service's default windows: a record queued must be sent 26 days before
// its erasure is due.
var planTiming = Timing{CancelWindow: 120 * time.Hour, DeletionWindow: 480 * time.Hour, Margin: 24 * time.Hour}

// newPlanPipeline is a pipeline over a fake domain with a monthly quota of 100 (10 kept for
// at-risk work), its clock at *now, logging into logs.
func newPlanPipeline(t *testing.T, now *time.Time, flush FlushPolicy, logs *bytes.Buffer) (*Pipeline, *fakeDomain, DB) {
	t.Helper()
	db := openSchedule(t, nil)
	d := &fakeDomain{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	p := New(Config{DB: db, Domain: d, Now: func() time.Time { return *now }, Wake: make(chan struct{}, 1),
		Quota: func(string) int { return 100 }, Reserve: 0.1, Timing: planTiming, Flush: flush,
		BatchMaxWait: 6 * time.Hour, Log: log})
	return p, d, db
}

// queueErasure stores a SCHEDULED erasure of account 1234 with n conversations queued, whose
// latest safe submit time is safe.
func queueErasure(t *testing.T, d *fakeDomain, db DB, id string, n int, safe time.Time, atRisk bool) {
	t.Helper()
	r := &model.Record{Erasure: model.Erasure{ID: id, AccountID: "1234", State: model.StateScheduled,
		DueTime: safe.Add(planTiming.CancelWindow + planTiming.DeletionWindow + planTiming.Margin), AtRisk: atRisk}}
	ts := make([]model.Target, n)
	for i := range ts {
		ts[i] = model.Target{Kind: model.KindConversation, ID: fmt.Sprintf("%s-%03d", id, i), Status: model.TargetQueued}
	}
	d.seed(t, db, r, ts)
	err := db.Update(context.Background(), func(tx store.Tx) error {
		return Enqueue(tx, "1234", int32(model.KindConversation), id,
			QueueEntry{Enqueued: safe.Add(-72 * time.Hour), SafeBy: safe, AtRisk: atRisk, Count: n})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func setUsed(t *testing.T, db DB, month string, used int) {
	t.Helper()
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		return PutQuota(tx, "1234", month, Quota{Used: used})
	}); err != nil {
		t.Fatal(err)
	}
}

// erasureOf reads erasure id and whether its queue entry is marked at risk.
func erasureOf(t *testing.T, db DB, id string) (r *model.Record, queuedAtRisk bool) {
	t.Helper()
	err := db.View(func(tx store.Tx) (err error) {
		if r, err = model.GetRecord(tx, id); err != nil {
			return err
		}
		g, err := QueueOf(tx, "1234", int32(model.KindConversation))
		if err != nil || g == nil {
			return err
		}
		for i, qid := range g.IDs {
			if qid == id {
				queuedAtRisk = g.Entries[i].AtRisk
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, queuedAtRisk
}

// TestForecastMarksWhatTheQuotaCannotCarry: late in April, with 88 of 100 requests used, the
// routine quota (90) carries two more full batches this month. Erasures a and b (100 records
// each, safe until April 29 and 30) go in them; c (100 records, safe until April 30, after b in
// the batcher's order) would wait for May's quota, past its safe time; d (50, safe until May 5)
// waits for May and is still in time. The forecast marks c at risk (the record, since when, and
// its queue entry), and no other. Marked, c goes first and may use the reserve: once the
// batcher has run, every batch due in April is formed in April, the forecast finds no miss, and
// c keeps the time it was first found at risk.
func TestForecastMarksWhatTheQuotaCannotCarry(t *testing.T) {
	now := time.Date(2026, 4, 28, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	p, d, db := newPlanPipeline(t, &now, FlushPack, &logs)
	queueErasure(t, d, db, "a", 100, now.Add(24*time.Hour), false)
	queueErasure(t, d, db, "b", 100, now.Add(48*time.Hour), false)
	queueErasure(t, d, db, "c", 100, now.Add(50*time.Hour), false)
	queueErasure(t, d, db, "d", 50, time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC), false)
	setUsed(t, db, Month(now), 88)

	fs, err := p.Plan(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Account != "1234" || fs[0].Misses != 1 || fs[0].Used != 88 || fs[0].Limit != 100 {
		t.Fatalf("forecast = %+v; want account 1234, 1 miss, 88 of 100 used", fs)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"a", false}, {"b", false}, {"c", true}, {"d", false}} {
		r, queued := erasureOf(t, db, tc.id)
		if r.AtRisk != tc.want || queued != tc.want {
			t.Errorf("erasure %s: at risk %v, its queue entry %v; want %v", tc.id, r.AtRisk, queued, tc.want)
		}
		if want := map[bool]time.Time{true: now}[tc.want]; !r.AtRiskTime.Equal(want) {
			t.Errorf("erasure %s: at risk since %v, want %v", tc.id, r.AtRiskTime, want)
		}
	}

	// The batcher and the forecast take turns, an hour apart: every batch of April is formed
	// in April, c on the reserve, and d waits for May.
	for i := range 3 {
		at := now.Add(time.Duration(i) * time.Hour)
		if err := p.Flush(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		if fs, err = p.Plan(context.Background(), at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	var q Quota
	db.View(func(tx store.Tx) (err error) { q, err = GetQuota(tx, "1234", Month(now)); return err })
	if q.Used != 91 || fs[0].Misses != 0 {
		t.Errorf("after the batcher ran: %d requests used, %d misses forecast; want 91 (a, b and c sent), 0", q.Used, fs[0].Misses)
	}
	if r, _ := erasureOf(t, db, "c"); !r.AtRisk || !r.AtRiskTime.Equal(now) {
		t.Errorf("c after later forecasts: at risk %v since %v; want true since %v (set once)", r.AtRisk, r.AtRiskTime, now)
	}
	if r, _ := erasureOf(t, db, "a"); r.AtRisk {
		t.Error("a, sent on the routine quota, was marked at risk")
	}
}

// TestForecastTimesAnAtRiskErasure: an erasure queued at risk by the deadline rule, without a
// time, gets the time the forecast first saw it; a later forecast keeps it.
func TestForecastTimesAnAtRiskErasure(t *testing.T) {
	now := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	p, d, db := newPlanPipeline(t, &now, FlushPack, &logs)
	queueErasure(t, d, db, "late", 3, now.Add(-time.Hour), true)
	queueErasure(t, d, db, "fine", 3, now.Add(72*time.Hour), false)
	for _, at := range []time.Time{now, now.Add(2 * time.Hour)} {
		if _, err := p.Plan(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		if r, _ := erasureOf(t, db, "late"); !r.AtRisk || !r.AtRiskTime.Equal(now) {
			t.Errorf("forecast at %v: the erasure at risk since %v, want %v", at, r.AtRiskTime, now)
		}
		if r, _ := erasureOf(t, db, "fine"); r.AtRisk || !r.AtRiskTime.IsZero() {
			t.Errorf("forecast at %v: an erasure with time to spare marked at risk", at)
		}
	}
}

// TestPacing: under FlushPack routine work may not run ahead of the month: 30 requests used by
// April 3 are too many, by April 20 they are not; at-risk work is never paced, and may use the
// reserve until the quota is spent; routine work never may. The baselines are not paced.
func TestPacing(t *testing.T) {
	early := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC)
	late := time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		flush  FlushPolicy
		used   int
		atRisk bool
		at     time.Time
		want   bool
	}{
		{"routine early", FlushPack, 30, false, early, false},
		{"routine later", FlushPack, 30, false, late, true},
		{"routine within the burst at the month's start", FlushPack, 5, false, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), true},
		{"at risk early", FlushPack, 30, true, early, true},
		{"at risk on the reserve", FlushPack, 95, true, early, true},
		{"at risk, quota spent", FlushPack, 100, true, late, false},
		{"routine on the reserve", FlushPack, 90, false, time.Date(2026, 4, 30, 23, 0, 0, 0, time.UTC), false},
		{"max wait baseline early", FlushMaxWait, 30, false, early, true},
		{"per erasure baseline early", FlushPerErasure, 30, false, early, true},
		{"baseline keeps the reserve", FlushMaxWait, 90, false, early, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.at
			var logs bytes.Buffer
			p, _, _ := newPlanPipeline(t, &now, tc.flush, &logs)
			if got := p.quotaAllows(Quota{Used: tc.used}, "1234", tc.atRisk, tc.at); got != tc.want {
				t.Errorf("quotaAllows(used %d, at risk %v, %v) = %v, want %v", tc.used, tc.atRisk, tc.at, got, tc.want)
			}
		})
	}
}

// TestPacingHoldsAFullBatchEarlyInTheMonth: through the batcher, a full routine batch is held
// on April 3 with 30 requests used, and formed on April 10.
func TestPacingHoldsAFullBatchEarlyInTheMonth(t *testing.T) {
	now := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	p, d, db := newPlanPipeline(t, &now, FlushPack, &logs)
	queueErasure(t, d, db, "a", 100, now.Add(96*time.Hour), false)
	setUsed(t, db, Month(now), 30)
	used := func() int {
		var q Quota
		db.View(func(tx store.Tx) (err error) { q, err = GetQuota(tx, "1234", Month(now)); return err })
		return q.Used
	}
	if err := p.Flush(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if u := used(); u != 30 {
		t.Errorf("April 3: %d requests used after a flush, want 30 (the full batch held)", u)
	}
	// Held by the pace, not by a spent quota: the erasure is not told the quota is gone.
	if r, _ := erasureOf(t, db, "a"); r.BlockedOn == model.BlockedQuota || !r.NextAttemptTime.IsZero() && r.NextAttemptTime.After(now.AddDate(0, 0, 20)) {
		t.Errorf("April 3: erasure blocked on %v, next attempt %v: the pace read as a spent quota", r.BlockedOn, r.NextAttemptTime)
	}
	now = time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)
	if err := p.Flush(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if u := used(); u != 31 {
		t.Errorf("April 10: %d requests used after a flush, want 31 (the batch formed)", u)
	}
}

// putRecent stores n erasures of account 1234 received over the week before now, each with ids
// conversations found, in id order as their times.
func putRecent(t *testing.T, db DB, now time.Time, n, ids int) {
	t.Helper()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for i := range n {
			at := now.Add(-demandWindow + time.Duration(i+1)*demandWindow/time.Duration(n))
			r := &model.Record{Erasure: model.Erasure{ID: fmt.Sprintf("r%05d", i), AccountID: "1234",
				State: model.StateCompleted, ReceivedTime: at, DueTime: at.AddDate(0, 1, 0),
				TargetCounts: []model.TargetCount{{Kind: model.KindConversation, Status: model.TargetVerified, Count: int32(ids)}}}}
			if err := putRecord(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDemandOverQuotaSaidOnce: an account receiving 40 subjects a day with 11 conversations each
// (1,200 a month) needs 132 requests of 100 in April against a quota of 100: the forecast's
// demand ratio is 1.32, and one warning names the account and the ratio and says LivePerson can
// raise the quota, however many forecasts follow. A week later, nothing new received, one line
// says the demand is back within the quota.
func TestDemandOverQuotaSaidOnce(t *testing.T) {
	now := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	p, _, db := newPlanPipeline(t, &now, FlushPack, &logs)
	putRecent(t, db, now, 280, 11)
	var last []Forecast
	for i := range 3 {
		fs, err := p.Plan(context.Background(), now.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		last = fs
	}
	if len(last) != 1 || last[0].DemandRatio < 1.3 || last[0].DemandRatio > 1.34 || !last[0].Over {
		t.Fatalf("forecast = %+v; want a demand ratio of about 1.32, over", last)
	}
	if d := last[0].DaysLeft(now); d <= 0 || d > 23 {
		t.Errorf("quota days left = %v, want the 100 requests left at 4.4 a day, about 22.7", d)
	}
	over := strings.Count(logs.String(), "exceeds the LivePerson quota")
	if over != 1 || !strings.Contains(logs.String(), "account=1234") || !strings.Contains(logs.String(), "demand_ratio=1.32") ||
		!strings.Contains(logs.String(), "raises the quota") {
		t.Errorf("%d warnings; want one naming account 1234, ratio 1.32 and the raise on request:\n%s", over, logs.String())
	}
	if _, err := p.Plan(context.Background(), now.Add(8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Plan(context.Background(), now.Add(8*24*time.Hour+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "back within the LivePerson quota"); n != 1 {
		t.Errorf("%d lines saying the demand is back within the quota, want 1:\n%s", n, logs.String())
	}
}

// TestPlanRoundCadence: the round forecasts at once, then not again until forecastEvery has
// passed (the queue unchanged), and each forecast is stored in the ledger.
func TestPlanRoundCadence(t *testing.T) {
	now := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	p, d, db := newPlanPipeline(t, &now, FlushPack, &logs)
	queueErasure(t, d, db, "a", 3, now.Add(72*time.Hour), false)
	run := func(at time.Time) {
		p.planRound(context.Background(), at, func(f func()) { f() })
	}
	stored := func() time.Time {
		var f Forecast
		db.View(func(tx store.Tx) (err error) { f, _, err = GetForecast(tx, "1234"); return err })
		return f.Time
	}
	run(now)
	if got := stored(); !got.Equal(now) {
		t.Fatalf("after the first round the stored forecast is of %v, want %v", got, now)
	}
	run(now.Add(30 * time.Minute))
	if got := stored(); !got.Equal(now) {
		t.Errorf("a round 30 min later forecast again (%v)", got)
	}
	run(now.Add(forecastEvery))
	if got := stored(); !got.Equal(now.Add(forecastEvery)) {
		t.Errorf("a round %v later did not forecast (stored %v)", forecastEvery, got)
	}
}

// TestPacingNeverHoldsABatchAtItsSendTime: a part-full batch whose first member is within
// sendLead of its latest safe submit time leaves, however far the month's use runs ahead of its
// pace, without waiting for the forecast to mark the member at risk.
func TestPacingNeverHoldsABatchAtItsSendTime(t *testing.T) {
	now := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	p, d, db := newPlanPipeline(t, &now, FlushPack, &logs)
	safe := time.Date(2026, 4, 5, 0, 0, 0, 0, time.UTC)
	queueErasure(t, d, db, "a", 100, safe, false)
	setUsed(t, db, Month(now), 40)
	used := func() int {
		var q Quota
		db.View(func(tx store.Tx) (err error) { q, err = GetQuota(tx, "1234", Month(now)); return err })
		return q.Used
	}
	if err := p.Flush(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if u := used(); u != 40 {
		t.Fatalf("April 3: %d requests used, want 40 (the full batch held by the pace)", u)
	}
	now = safe.Add(-sendLead)
	if err := p.Flush(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if u := used(); u != 41 {
		t.Errorf("%v, sendLead before the member's safe time: %d requests used, want 41", now, u)
	}
}

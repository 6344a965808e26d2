package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
)

// TestWindowsSince: the windows of a narrowed sweep are windows LivePerson accepts (aligned, at
// most 28 days once rounded), follow one another, end at now rounded up, cover since, stay within
// the retention, and are the fewest that do; with since zero they are the whole sweep.
func TestWindowsSince(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 2000 {
		now := base.Add(time.Duration(rng.Int64N(int64(3 * 365 * 24 * time.Hour))))
		since := now.Add(-time.Duration(rng.Int64N(int64(500 * 24 * time.Hour))))
		start := retentionStart(now).Truncate(windowAlign)
		var got [][2]time.Time
		for from, to := range windowsSince(now, since, chatWindow) {
			got = append(got, [2]time.Time{from, to})
		}
		if len(got) == 0 {
			t.Fatalf("now %v since %v: no window", now, since)
		}
		for i, w := range got {
			if w[0].Truncate(windowAlign) != w[0] || ceil(w[1], windowAlign) != w[1] || !w[1].After(w[0]) || w[1].Sub(w[0]) > chatWindow {
				t.Fatalf("now %v since %v: window %v is not one LivePerson takes", now, since, w)
			}
			if i > 0 && w[0] != got[i-1][1] {
				t.Fatalf("now %v since %v: gap or overlap at %v", now, since, w)
			}
		}
		first, last := got[0][0], got[len(got)-1][1]
		if last != ceil(now, windowAlign) {
			t.Fatalf("now %v since %v: windows end at %v", now, since, last)
		}
		if first.Before(start) || first.After(since) && first != start {
			t.Fatalf("now %v since %v: windows start at %v (retention from %v)", now, since, first, start)
		}
		full := 0
		for range windows(now, chatWindow) {
			full++
		}
		fewest := int((last.Sub(since.Truncate(windowAlign)) + chatWindow - 1) / chatWindow)
		if want := min(max(fewest, 1), full); len(got) != want && !(since.Before(start) && len(got) == full) {
			t.Fatalf("now %v since %v: %d windows, want %d", now, since, len(got), want)
		}
	}
	var all, zero []time.Time
	now := time.Date(2026, 3, 31, 23, 59, 0, 0, time.UTC)
	for from := range windows(now, chatWindow) {
		all = append(all, from)
	}
	for from := range windowsSince(now, time.Time{}, chatWindow) {
		zero = append(zero, from)
	}
	if !slices.Equal(all, zero) || len(all) != 15 {
		t.Errorf("windowsSince with no since: %v, want the %d windows of the full sweep", zero, len(all))
	}
}

// lagLP is an Engagement History that knows when each chat ended and, like LivePerson, finds a
// chat by keyword only once it has ended and search_lag has passed since, by its start time.
type lagLP struct {
	model.LivePerson
	lag   time.Duration
	at    time.Time // the time of the calls
	chats []lagChat
	calls []string // keyword@from of each search
}

type lagChat struct {
	id         string
	customer   string
	start, end time.Time
}

func (l *lagLP) SearchChats(_ context.Context, _ string, from, to time.Time, keyword string) ([]model.ChatRecord, error) {
	l.calls = append(l.calls, keyword+"@"+from.Format(time.RFC3339))
	var out []model.ChatRecord
	for _, c := range l.chats {
		if !c.start.Before(from) && c.start.Before(to) && !c.end.Add(l.lag).After(l.at) && c.customer == keyword {
			out = append(out, model.ChatRecord{EngagementID: c.id, Start: c.start, CustomerIDs: []string{c.customer}})
		}
	}
	return out, nil
}

func foundIDs(res resolution) []string {
	var ids []string
	for _, t := range res.targets {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestLateSweepFindsWhatAFullSweepFinds: an erasure created at created is searched completely at
// first (at or after created), and again later. Every chat that the first search missed and a
// full later search finds, the narrowed later search finds too: chats that ended just before the
// erasure was received but became searchable only after the first search, chats that started
// before the narrowed windows' reach and ended late, chats on a window's edge, chats after
// received.
func TestLateSweepFindsWhatAFullSweepFinds(t *testing.T) {
	const lag = 2 * time.Hour
	rng := rand.New(rand.NewPCG(5, 6))
	subject := []model.Subject{{Kind: model.SubjectCustomerID, Value: "LATE-1"}}
	ctx := context.Background()
	missed := 0
	for run := range 300 {
		created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
		r := &model.Record{Erasure: model.Erasure{CreateTime: created, ReceivedTime: created.Add(-time.Duration(rng.Int64N(int64(3 * time.Hour))))}}
		first := created.Add(time.Duration(rng.Int64N(int64(3 * time.Hour))))
		later := first.Add(lag + time.Duration(rng.Int64N(int64(60*24*time.Hour))))
		from := lateFrom(r, lag)
		lp := &lagLP{lag: lag}
		edges := []time.Time{from, from.Truncate(windowAlign), later.Add(-chatWindow).Truncate(windowAlign), created.Add(-lag), first.Add(-lag)}
		for i := range 60 {
			var start time.Time
			if i < len(edges) {
				start = edges[i].Add(time.Duration(rng.IntN(3)-1) * time.Millisecond)
			} else {
				start = created.Add(time.Duration(rng.Int64N(int64(40*24*time.Hour))) - 20*24*time.Hour)
			}
			end := start.Add(time.Duration(rng.Int64N(int64(chatSpan))))
			if end.After(later) {
				continue
			}
			lp.chats = append(lp.chats, lagChat{id: fmt.Sprint(i), customer: "LATE-1", start: start, end: end})
		}
		lp.at = first
		seen, err := resolver{lp: lp, now: first}.resolve(ctx, "1234", subject, []model.Channel{model.ChannelChat}, false)
		if err != nil {
			t.Fatal(err)
		}
		lp.at = later
		full, err := resolver{lp: lp, now: later}.resolve(ctx, "1234", subject, []model.Channel{model.ChannelChat}, false)
		if err != nil {
			t.Fatal(err)
		}
		lp.calls = nil
		late, err := resolver{lp: lp, now: later, late: lateSweep{swept: 1, from: from}}.resolve(ctx, "1234", subject, []model.Channel{model.ChannelChat}, false)
		if err != nil {
			t.Fatal(err)
		}
		got := foundIDs(late)
		for _, id := range foundIDs(full) {
			if !slices.Contains(foundIDs(seen), id) {
				missed++
			}
			if !slices.Contains(foundIDs(seen), id) && !slices.Contains(got, id) {
				t.Fatalf("run %d: chat %s, missed by the first search and found by a full one later, is not found by the narrowed one (%v)",
					run, id, lp.calls)
			}
		}
		if want := (later.Sub(from) + windowAlign + chatWindow - 1) / chatWindow; len(lp.calls) > int(want) {
			t.Fatalf("run %d: the narrowed search made %d calls over %v, want at most %d", run, len(lp.calls), later.Sub(from), want)
		}
	}
	if missed < 300 {
		t.Errorf("only %d chats were missed by a first search: the test shows little", missed)
	}
}

// TestFinalResolverSearches: the final sweep searches the subject's chats only in the late
// windows, an alias (which may have joined after the first search) over the whole retention,
// and a keyword two identifiers share once, as far back as the alias needs: the first search
// matched its hits against the subject's kind only.
func TestFinalResolverSearches(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := created.Add(25 * 24 * time.Hour)
	full := 0
	for range windows(now, chatWindow) {
		full++
	}
	for _, tc := range []struct {
		name string
		ids  []model.Subject
		want map[string]int
	}{
		{"subject and an alias", []model.Subject{
			{Kind: model.SubjectCustomerID, Value: "SUBJ-1"},
			{Kind: model.SubjectEmail, Value: "jane@example.com"},
			{Kind: model.SubjectConsumerID, Value: "c-1"}, // not in chat attributes
		}, map[string]int{"SUBJ-1": 1, "jane@example.com": full}},
		{"an alias sharing the subject's phrase", []model.Subject{
			{Kind: model.SubjectCustomerID, Value: "SUBJ-1"},
			{Kind: model.SubjectEmail, Value: " SUBJ-1 "}, // the subject's phrase once trimmed
		}, map[string]int{"SUBJ-1": full}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lp := &lagLP{lag: 2 * time.Hour, at: now}
			p := New(Config{SearchLag: 2 * time.Hour})
			p.lp = lp
			r := &model.Record{Erasure: model.Erasure{CreateTime: created, ReceivedTime: created}}
			if _, err := p.finalResolver(r, nil, now).resolve(context.Background(), "1234", tc.ids, []model.Channel{model.ChannelChat}, false); err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, c := range lp.calls {
				count[c[:len(c)-len("@2006-01-02T15:04:05Z")]]++
			}
			if fmt.Sprint(count) != fmt.Sprint(tc.want) {
				t.Errorf("searches per keyword %v, want %v", count, tc.want)
			}
		})
	}
}

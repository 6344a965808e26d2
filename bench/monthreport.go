package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/pipeline"
)

// writeMonthReport writes one run of the month scenario: the definitions, a table per demand
// level, and the goals with PASS or BELOW for the FlushPack rows.
func writeMonthReport(w io.Writer, mc MonthConfig, run int, rs []monthResult, took time.Duration) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("Month — one account, a month of arrivals from %s, quota %d requests/month; run %d of %d, %s",
		monthStart.Format("2006-01-02"), mc.Quota, run, mc.Runs, took.Round(time.Second))
	p("clock ×%.0f shared by erasured (Now, pipeline timer) and the simulator (a day takes %s); simulator searches %.0f/s per service, latency %s; erasured: production defaults (batch_max_wait 6h, poll_interval 1h, reserve 10%%), %d workers",
		mc.Speed, time.Duration(float64(24*time.Hour)/mc.Speed).Round(time.Millisecond), mc.SearchRate, mc.Latency, mc.Workers)
	p("arrivals: %.0f%% Poisson over the 30 days, %.0f%% in %d bursts (all at one minute); 1–%d records each (chats or conversations, even odds), 1 in %d asks for its consumer profile",
		100*(1-burstShare), 100*burstShare, burstDays, maxRecords, profileOdds)
	p("capacity: the quota carries %d requests a month, the at-risk reserve included; demand = the month's arrivals' deadline ideal / quota", mc.Quota)
	p("deadline ideal = per kind, the fewest requests that hold every id AND send each by its erasure's latest safe submit time (due − 5 − 20 days − 1 day margin, about 4 days after arrival), none before its search lag has passed; the ids-only ideal (ceil(ids/100) per kind) is printed beside it but cannot be met without missing deadlines: a kind whose ids arrive slowly cannot fill 100 in 4 days")
	p("met = COMPLETED by due_time; a miss's lead = due_time − at_risk_time (Status); at-risk first = no erasure at risk whose records waited in the queue was sent after one of its kind not at risk")
	for _, level := range uniqueLevels(rs) {
		var rows []monthResult
		for _, r := range rs {
			if r.Level == level {
				rows = append(rows, r)
			}
		}
		first := rows[0]
		p("")
		p("demand %.0f%%: %d subjects (%d in bursts), %d records, deadline ideal %d requests = %.2f of the quota (ids-only ideal %d)",
			100*level, first.Subjects, first.Bursty, first.Records, first.Demand, float64(first.Demand)/float64(first.Quota), first.IdsOnly)
		p("  %-16s %9s %8s %-22s %-16s %6s %-12s %-8s %5s %6s %-24s %-14s %8s", "policy", "submitted", "erased", "requests eng/conv/cons",
			"ideal dl/ids-only", "ratio", "ids-only ratio", "by month", "met", "missed", "miss lead min/median", "at-risk first", "real")
		for _, r := range rows {
			p("  %-16s %9d %8d %-22s %-16s %6.2f %-12.2f %-8s %5d %6d %-24s %-14s %7.1fs", policyName(r.Policy), r.Submitted, r.Completed,
				perKind(r.Requests), fmt.Sprintf("%d/%d", r.IdealAll, r.IdsOnlyAll), r.ratio(), r.idsOnlyRatio(), months(r.Months), r.Met, r.Missed, leads(r), atRiskFirst(r), r.Real.Seconds())
		}
		for _, r := range rows {
			p("  %s: ids/request %s (deadline ideal %s, ids-only %s); ids %s; sanity: subjects %d = submitted %d; records %d = sent %d + not sent %d (erasure final %d, still open %d); ids sent twice %d, not a subject's %d, bodies created twice %d; masked %d/%d, others' records masked %d; %d open at the end (clock at day %.1f)%s%s",
				policyName(r.Policy), idsPerRequest(r), perKind(r.Ideal), perKind(r.IdsOnlyIdeal), perKind(r.IDs), r.Subjects, r.Submitted, r.Records,
				r.IDsSent, r.NotSentFinal+r.NotSentOpen, r.NotSentFinal, r.NotSentOpen, r.SentTwice, r.Foreign, r.Duplicates,
				r.Erased, r.Records, r.WronglyErased, r.Unfinished, r.SimEnd.Hours()/24, openStates(r.OpenStates), warnings(r.Warnings))
			if r.Policy == pipeline.FlushPerErasure {
				p("  %s check: %d requests for %d (erasure, kind) pairs sent (one request per subject and kind: equal)",
					policyName(r.Policy), r.Used, r.ErasureKinds)
			}
		}
	}
	p("")
	p("goals (FlushPack rows):")
	var pack []monthResult
	for _, r := range rs {
		if r.Policy == pipeline.FlushPack {
			pack = append(pack, r)
		}
	}
	goal := func(ok bool, text string, detail []string) {
		verdict := "BELOW"
		if ok {
			verdict = "PASS"
		}
		p("  %-5s %s: %s", verdict, text, strings.Join(detail, "; "))
	}
	ok, detail := true, []string(nil)
	for _, r := range pack {
		ok = ok && r.ratio() >= 0.95
		detail = append(detail, fmt.Sprintf("%.0f%% %.2f", 100*r.Level, r.ratio()))
	}
	goal(ok, "ideal/used ≥ 0.95 at every level (the deadline ideal)", detail)
	ok, detail = true, nil
	for _, r := range pack {
		if r.Level <= 1 {
			ok = ok && r.Missed == 0
			detail = append(detail, fmt.Sprintf("%.0f%% %d missed", 100*r.Level, r.Missed))
		}
	}
	goal(ok, "0 missed within capacity", detail)
	ok, detail = true, nil
	for _, r := range pack {
		if r.Level > 1 {
			ok = ok && r.forecastEarly() && r.AtRiskLate == 0
			detail = append(detail, fmt.Sprintf("%.0f%% %d missed, %s, at-risk first %s", 100*r.Level, r.Missed, leads(r), atRiskFirst(r)))
		}
	}
	if len(detail) == 0 {
		p("  -     beyond capacity: no level above 100%% was run")
		return
	}
	goal(ok, "beyond capacity every miss forecast ≥ 7 days ahead, and at-risk work served first", detail)
}

func uniqueLevels(rs []monthResult) []float64 {
	var out []float64
	for _, r := range rs {
		if !slices.Contains(out, r.Level) {
			out = append(out, r.Level)
		}
	}
	return out
}

func perKind(m map[service.TargetKind]int) string {
	var parts []string
	for _, k := range monthKinds {
		parts = append(parts, fmt.Sprint(m[k.kind]))
	}
	return strings.Join(parts, "/")
}

func idsPerRequest(r monthResult) string {
	var parts []string
	for _, k := range monthKinds {
		if n := r.Requests[k.kind]; n > 0 {
			parts = append(parts, fmt.Sprintf("%.1f", float64(r.IDs[k.kind])/float64(n)))
		} else {
			parts = append(parts, "-")
		}
	}
	return strings.Join(parts, "/")
}

func months(ms []int) string {
	var parts []string
	for _, n := range ms {
		parts = append(parts, fmt.Sprint(n))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "+")
}

func leads(r monthResult) string {
	if r.Missed == 0 {
		return "no miss"
	}
	s := "-"
	if len(r.Leads) > 0 {
		s = fmt.Sprintf("%s/%s", days(r.minLead()), days(r.medianLead()))
	}
	if r.NotForecast > 0 {
		s += fmt.Sprintf(", %d not forecast", r.NotForecast)
	}
	return s
}

func days(d time.Duration) string { return fmt.Sprintf("%.1fd", d.Hours()/24) }

func atRiskFirst(r monthResult) string {
	if r.AtRiskWaited == 0 {
		return "none waited"
	}
	if r.AtRiskLate == 0 {
		return fmt.Sprintf("yes (%d)", r.AtRiskWaited)
	}
	return fmt.Sprintf("no: %d of %d", r.AtRiskLate, r.AtRiskWaited)
}

func warnings(w map[string]int) string {
	if len(w) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%d× %q", w[k], k))
	}
	return "; pipeline warnings: " + strings.Join(parts, ", ")
}

func openStates(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

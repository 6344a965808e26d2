package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/erasured/erasured/service"
)

// reportPipeline writes the pipeline scenario's ratios: medians over runs of each run's figure.
func reportPipeline(w io.Writer, rs []PipelineResult) {
	first := rs[0]
	c := first.Config
	withRecords := first.Targets[service.KindEngagement] + first.Targets[service.KindConversation]
	fmt.Fprintf(w, "\nPipeline — %d subjects (%d records: %d engagements, %d conversations, %d consumer profiles), %d runs, medians\n",
		c.Subjects, withRecords+first.Targets[service.KindConsumer], first.Targets[service.KindEngagement],
		first.Targets[service.KindConversation], first.Targets[service.KindConsumer], len(rs))
	fmt.Fprintf(w, "LivePerson simulator: %.0f requests/s per search service (%s), latency %v per search and %v per deletion call, "+
		"clock ×%.0f (cancel window %v, deletion window %v); erasured: flush policy pack, batch_max_wait %s, poll_interval %v, search_lag %v, %d workers, %d searches in flight per service\n",
		c.SearchRate, strings.Join(searchServices, ", "), c.Latency, c.DeletionLatency, c.Speed, c.scale(lpCancelWindow),
		c.scale(lpDeletionWindow), maxWaitName(c.BatchMaxWait), c.PollInterval, c.scale(lpSearchLag).Round(time.Millisecond), c.Workers, c.Concurrency)

	med := func(f func(PipelineResult) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return Median(xs)
	}
	medDur := func(f func(PipelineResult) time.Duration) time.Duration {
		var xs []time.Duration
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return Median(xs)
	}

	states := map[service.State]int{}
	erased, records, wrong, dups, throttled, warnings := 0, 0, 0, 0, 0, map[string]int{}
	for _, r := range rs {
		for s, n := range r.ByState {
			states[s] += n
		}
		erased, records, wrong, dups = erased+r.Erased, records+r.Records, wrong+r.WronglyErased, dups+r.Duplicates
		throttled += r.ClientThrottled
		for m, n := range r.Warnings {
			warnings[m] += n
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  erasures by state (all runs)\t%s\n", stateCounts(states))
	fmt.Fprintf(tw, "  subjects' records erased (all runs)\t%d / %d; other people's records erased: %d\n", erased, records, wrong)
	fmt.Fprintf(tw, "  deletion bodies created twice (all runs)\t%d\n", dups)
	tw.Flush()

	fmt.Fprintln(w, "\n  quota use: LivePerson deletion requests; ideal = ceil(targets / 100) per kind")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  kind\ttargets\tideal\tused\tideal/used\tids/request")
	for _, k := range append(slices.Clone(kinds), service.KindUnspecified) {
		name, targets := k.String(), first.Targets[k]
		if k == service.KindUnspecified {
			name, targets = "all", withRecords+first.Targets[service.KindConsumer]
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%.0f\t%.2f\t%.1f\n", name, targets, first.IdealRequests(k),
			med(func(r PipelineResult) float64 { return float64(r.UsedRequests(k)) }),
			med(func(r PipelineResult) float64 { return r.QuotaRatio(k) }),
			med(func(r PipelineResult) float64 { return r.IDsPerRequest(k) }))
	}
	tw.Flush()
	var sizes []string
	for _, k := range kinds {
		sizes = append(sizes, k.String()+" "+runLengths(first.Requests[k]))
	}
	fmt.Fprintf(w, "  ids per request (run 1): %s\n", strings.Join(sizes, "; "))
	fmt.Fprintf(w, "  batch formed → sent to LivePerson: p50 %v, max %v\n",
		medDur(func(r PipelineResult) time.Duration { return r.SendDelay().P50 }).Round(100*time.Millisecond),
		medDur(func(r PipelineResult) time.Duration { return r.SendDelay().Max }).Round(100*time.Millisecond))
	fmt.Fprintln(w, "  requests of run 1 as ids@formed→sent, seconds after the first Submit:")
	for _, k := range kinds {
		var sent []string
		for i, at := range first.Sent[k] {
			sent = append(sent, fmt.Sprintf("%d@%.1f→%.1f", first.Requests[k][i], first.Formed[k][i].Seconds(), at.Seconds()))
		}
		fmt.Fprintf(w, "    %s: %s\n", k, strings.Join(sent, " "))
	}
	fmt.Fprintf(w, "  LivePerson's quota is 100 requests per account and month: one run used %.0f%% of it\n",
		med(func(r PipelineResult) float64 { return float64(r.UsedRequests(0)) }))

	phase := medDur(func(r PipelineResult) time.Duration { return r.ResolvePhase })
	fmt.Fprintf(w, "\n  search rate during resolution (first Submit → last erasure out of RESOLVING: %v)\n", phase.Round(100*time.Millisecond))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  service\tserved/s\tlimit\tserved/limit\t429s in phase (whole run)\tafter it: served/s, /limit")
	for _, s := range searchServices {
		fmt.Fprintf(tw, "  %s\t%.0f\t%.0f\t%.2f\t%.0f (%.0f)\t%.0f, %.2f\n", s,
			med(func(r PipelineResult) float64 { return r.SearchRate(s) }), c.SearchRate,
			med(func(r PipelineResult) float64 { return r.Utilisation(s) }),
			med(func(r PipelineResult) float64 { return float64(r.Calls.PhaseLimited[s]) }),
			med(func(r PipelineResult) float64 { return float64(r.Calls.Throttled[s]) }),
			med(func(r PipelineResult) float64 { return r.PostRate(s) }),
			med(func(r PipelineResult) float64 { return r.PostRate(s) / c.SearchRate }))
	}
	tw.Flush()
	var perSubject []string
	for _, op := range first.Calls.opNames() {
		perSubject = append(perSubject, fmt.Sprintf("%s %.1f", op,
			med(func(r PipelineResult) float64 { return float64(r.Calls.ByOp[op]) / float64(r.Config.Subjects) })))
	}
	fmt.Fprintf(w, "  LivePerson calls per subject, whole run: %s\n", strings.Join(perSubject, ", "))

	fmt.Fprintln(w, "\n  end to end: first Submit → last erasure final")
	minSearch, minSvc := first.MinSearchTime()
	search, svc := first.SearchTime()
	perSweep := sweepEngHist
	if minSvc == searchServices[1] {
		perSweep = sweepMessaging
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  measured\t%v\t(per erasure: p50 %v, p99 %v; submitting all took %v)\n",
		medDur(func(r PipelineResult) time.Duration { return r.EndToEnd }).Round(100*time.Millisecond),
		medDur(func(r PipelineResult) time.Duration { return r.Latency.P50 }).Round(100*time.Millisecond),
		medDur(func(r PipelineResult) time.Duration { return r.Latency.P99 }).Round(100*time.Millisecond),
		medDur(func(r PipelineResult) time.Duration { return r.SubmitTime }).Round(10*time.Millisecond))
	fmt.Fprintf(tw, "  ideal\t%v\t= one sweep, %d subjects × %d %s searches at %.0f/s (%v) + cancel window %v + deletion window %v + poll_interval %v\n",
		first.Ideal().Round(100*time.Millisecond), c.Subjects, perSweep, minSvc, c.SearchRate, minSearch.Round(100*time.Millisecond),
		c.scale(lpCancelWindow), c.scale(lpDeletionWindow), c.PollInterval)
	fmt.Fprintf(tw, "  ideal/measured\t%.2f\t\n", med(PipelineResult.TimeRatio))
	fmt.Fprintf(tw, "  ideal for the calls made\t%v\t= every served %s call of the run at %.0f/s (%d calls, %v; median run) + the same %v\n",
		medDur(PipelineResult.IdealAsRun).Round(100*time.Millisecond), svc, c.SearchRate,
		int(med(func(r PipelineResult) float64 { return float64(r.Calls.Served[svc]) })), search.Round(100*time.Millisecond), first.FixedTime())
	fmt.Fprintf(tw, "  its ratio\t%.2f\t\n", med(PipelineResult.TimeRatioAsRun))
	tw.Flush()

	if throttled > 0 || len(warnings) > 0 {
		fmt.Fprintf(w, "  429s the client saw on searches (all runs): %d; pipeline warnings (all runs): %d\n", throttled, sum(warnings))
		keys := slices.SortedFunc(maps.Keys(warnings), func(a, b string) int { return cmp.Compare(warnings[b], warnings[a]) })
		for _, k := range keys[:min(len(keys), 5)] {
			fmt.Fprintf(w, "    %d× %s\n", warnings[k], k)
		}
	}
}

// maxWaitName is batch_max_wait as the report shows it.
func maxWaitName(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}

// runLengths writes sizes largest first, repeats counted: "100×12, 77".
func runLengths(xs []int) string {
	s := slices.Sorted(slices.Values(xs))
	slices.Reverse(s)
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%d×%d", s[i], j-i))
		} else {
			parts = append(parts, fmt.Sprint(s[i]))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

func stateCounts(m map[service.State]int) string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(s.String(), "STATE_"), m[s]))
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

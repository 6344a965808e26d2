package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Goals of issue 2.
const (
	GoalRatio     = 0.50                   // Submit throughput as a share of the raw ceiling, at 16 and 64 clients
	GoalLoneSlack = time.Millisecond       // a lone client's p50 may exceed one raw commit by this much
	GoalWatchP99  = 100 * time.Millisecond // commit-to-receive p99 at 1,000 events/s over 10,000 streams
	GoalStreamMem = 50_000                 // bytes per idle stream
	GoalEtcdRatio = 0.50                   // Submit on etcd as a share of a raw etcd Put (issue 12), at 16 and 64 clients
)

// medianPoint is the median over runs of each figure of a point, taken separately.
type medianPoint struct {
	rate      float64
	p50, p99  time.Duration
	perCommit string // "writes, pages" per commit, when known
}

func medianOf(ps []Point) medianPoint {
	var m medianPoint
	var rates, writes, pages []float64
	var p50, p99 []time.Duration
	for _, p := range ps {
		rates = append(rates, p.Rate())
		p50 = append(p50, p.Latency.P50)
		p99 = append(p99, p.Latency.P99)
		if p.Commits > 0 {
			writes = append(writes, float64(p.Writes)/float64(p.Commits))
			pages = append(pages, float64(p.Pages)/float64(p.Commits))
		}
	}
	m.rate, m.p50, m.p99 = Median(rates), Median(p50), Median(p99)
	if len(writes) > 0 {
		m.perCommit = fmt.Sprintf("%.1f writes, %.0f pages", Median(writes), Median(pages))
	}
	return m
}

// ratio is the median over runs of Submit's rate divided by the baseline's rate in the same run.
func ratio(submit, base []Point) float64 {
	var rs []float64
	for i, s := range submit {
		if i < len(base) && base[i].Rate() > 0 {
			rs = append(rs, s.Rate()/base[i].Rate())
		}
	}
	return Median(rs)
}

// Report writes the table of medians, the goals and the command that produced them.
func Report(w io.Writer, cfg Config, r Results, header, command string) {
	fmt.Fprintf(w, "\n%s\n", header)
	var goals []goal
	if len(r.Points[SysSubmit]) > 0 {
		goals = append(goals, reportSubmit(w, cfg, r)...)
	}
	for _, er := range r.Etcd {
		goals = append(goals, reportEtcd(w, cfg, er)...)
	}
	if len(r.Watch) > 0 {
		goals = append(goals, reportWatch(w, cfg, r)...)
	}
	if len(r.Pipeline) > 0 {
		reportPipeline(w, r.Pipeline)
	}
	if len(goals) > 0 {
		fmt.Fprintln(w, "\nGoals (issue 2; on etcd, issue 12)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, g := range goals {
			verdict := cond(g.miss != "", g.miss, "MISS")
			if g.met {
				verdict = "PASS"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", g.name, g.measured, verdict)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\ncommand: %s\n", command)
}

type goal struct {
	name, measured string
	met            bool
	miss           string // the verdict when not met; "" for MISS
}

func reportSubmit(w io.Writer, cfg Config, r Results) []goal {
	fmt.Fprintf(w, "\nSubmit vs its baselines — %d runs, %v per point after %v warm-up, medians\n", cfg.Runs, cfg.Duration, cfg.Warmup)
	fmt.Fprintf(w, "one Submit stores %d B of keys+values in %d buckets: %s\n", r.Bytes.PerSubmit, len(r.Bytes.Buckets), bucketBytes(r.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "clients\tmeasured\tops/s\tp50\tp99\tSubmit/this\tper commit")
	submit := r.Points[SysSubmit]
	for _, c := range cfg.Clients {
		for sys := range numSystems {
			m := medianOf(r.Points[sys][c])
			share := ""
			if sys != SysSubmit {
				share = fmt.Sprintf("%.0f%%", 100*ratio(submit[c], r.Points[sys][c]))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%s\t%s\n", cond(sys == SysSubmit, fmt.Sprint(c), ""), sys, m.rate, ms(m.p50), ms(m.p99), share, m.perCommit)
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "Submit/this is the median of each run's ratio, not the ratio of the medians; per commit: writes and bbolt pages")

	raw := r.Points[SysRaw]
	var goals []goal
	for _, c := range []int{16, 64} {
		if _, ok := submit[c]; ok {
			got := ratio(submit[c], raw[c])
			goals = append(goals, goal{fmt.Sprintf("Submit ≥ %.0f%% of raw (one record) at %d clients", 100*GoalRatio, c),
				fmt.Sprintf("%.0f%%", 100*got), got >= GoalRatio, ""})
		}
	}
	if _, ok := submit[1]; ok {
		s, one := medianOf(submit[1]), medianOf(raw[1])
		limit := one.p50 + GoalLoneSlack
		goals = append(goals, goal{"lone client p50 ≤ one raw commit (p50, 1 writer) + 1 ms",
			fmt.Sprintf("%v ≤ %v", ms(s.p50), ms(limit)), s.p50 <= limit, ""})
	}
	return goals
}

func cond(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func reportWatch(w io.Writer, cfg Config, r Results) []goal {
	wc := cfg.Watch
	first := r.Watch[0]
	fmt.Fprintf(w, "\nWatch fan-out — %d streams by name over %d connections, %d erasures, %d Cancels/s for %v; %d runs, medians\n",
		first.Streams, (first.Streams+wc.StreamsPerConn-1)/wc.StreamsPerConn, first.Erasures, wc.Rate, wc.Duration, len(r.Watch))
	var (
		create, open, p50, p99, worst []time.Duration
		perStream, rates              []float64
		expected, received, dups      int
		refused, other                int
	)
	for _, x := range r.Watch {
		create, open = append(create, x.Create), append(open, x.Open)
		p50, p99, worst = append(p50, x.Latency.P50), append(p99, x.Latency.P99), append(worst, x.Latency.Max)
		perStream, rates = append(perStream, x.PerStream()), append(rates, x.CancelRate)
		expected, received, dups = expected+x.Expected, received+x.Received, dups+x.Duplicates
		refused, other = refused+x.Uncancellable, other+x.Other
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  create erasures (Submit, 16 callers)\t%v\n", Median(create).Round(time.Millisecond))
	fmt.Fprintf(tw, "  open streams until each has its current state\t%v\n", Median(open).Round(time.Millisecond))
	fmt.Fprintf(tw, "  Cancels/s achieved\t%.0f\n", Median(rates))
	fmt.Fprintf(tw, "  Cancel events received / expected (all runs)\t%d / %d, %d duplicates\n", received, expected, dups)
	if refused+other > 0 {
		fmt.Fprintf(tw, "  refused Cancels / other events (all runs)\t%d / %d\n", refused, other)
	}
	fmt.Fprintf(tw, "  latency, receive − event time\tp50 %v  p99 %v  max %v\n", ms(Median(p50)), ms(Median(p99)), ms(Median(worst)))
	fmt.Fprintf(tw, "  memory per idle stream\t%.1f kB (%s)\n", Median(perStream)/1000, r.MemoryKind)
	tw.Flush()

	mp99, mem := Median(p99), Median(perStream)
	return []goal{
		{"Watch commit-to-receive p99 ≤ 100 ms", fmt.Sprintf("%v (%.2f of goal)", ms(mp99), float64(mp99)/float64(GoalWatchP99)), mp99 <= GoalWatchP99, ""},
		{"memory per idle stream ≤ 50 kB", fmt.Sprintf("%.1f kB (%.2f of goal)", mem/1000, mem/GoalStreamMem), mem <= GoalStreamMem, ""},
		{"every event delivered once", fmt.Sprintf("%d / %d, %d duplicates", received, expected, dups), received == expected && dups == 0, ""},
	}
}

func bucketBytes(b SubmitBytes) string {
	var parts []string
	for _, k := range b.bucketNames() {
		parts = append(parts, fmt.Sprintf("%s %d+%d", k, b.Buckets[k].Key, b.Buckets[k].Value))
	}
	return strings.Join(parts, ", ")
}

func reportEtcd(w io.Writer, cfg Config, r EtcdResult) []goal {
	clients := cfg.EtcdClients
	if len(clients) == 0 {
		clients = DefaultEtcdClients
	}
	fmt.Fprintf(w, "\nSubmit on etcd vs a raw etcd Put — one embedded etcd (1 member, fsync on, --max-txn-ops %d), %d runs, %v per point after %v warm-up, medians\n",
		r.MaxTxnOps, cfg.Runs, cfg.Duration, cfg.Warmup)
	fmt.Fprintf(w, "one Submit stores %d B of keys+values on etcd in %d buckets: %s; the raw Put and the floor's Put write that many bytes as one key and value\n",
		r.Bytes.PerSubmit, len(r.Bytes.Buckets), bucketBytes(r.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "clients\tmeasured\tops/s\tp50\tp99\tSubmit/this\tfloor/this\tcalls per")
	submit, floor := r.Points[EtcdSubmit], r.Points[EtcdFloor]
	for _, c := range clients {
		for sys := range numEtcdSystems {
			ps := r.Points[sys][c]
			m := medianOf(points(ps))
			share, floorShare := "", ""
			if sys != EtcdSubmit {
				share = fmt.Sprintf("%.0f%%", 100*ratio(points(submit[c]), points(ps)))
			}
			if sys > EtcdFloor {
				floorShare = fmt.Sprintf("%.0f%%", 100*ratio(points(floor[c]), points(ps)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%s\t%s\t%s\n", cond(sys == EtcdSubmit, fmt.Sprint(c), ""), sys, m.rate, ms(m.p50), ms(m.p99), share, floorShare, etcdPerCommit(ps))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "calls per: completed calls (warm-up included) per etcd transaction of the store, and per WAL fsync of etcd")
	fmt.Fprintln(w, "gRPC floor: a Submit through the same server and interceptors whose handler is one clientv3 Put of Submit's size, on a client of its own")
	for _, c := range clients {
		sf := ratio(points(submit[c]), points(floor[c]))
		fp := ratio(points(floor[c]), points(r.Points[EtcdRaw][c]))
		verdict := "the floor leaves room for the goal"
		switch {
		case fp < GoalEtcdRatio && sf >= etcdNearFloor:
			verdict = fmt.Sprintf("Submit is near the floor and the floor is below %.0f%% of the Put: no service behind this gRPC hop reaches the goal here", 100*GoalEtcdRatio)
		case fp < GoalEtcdRatio:
			verdict = fmt.Sprintf("the floor is below %.0f%% of the Put, and Submit well below the floor", 100*GoalEtcdRatio)
		case sf < etcdNearFloor:
			verdict = "Submit is well below the floor, which leaves room for the goal"
		}
		fmt.Fprintf(w, "at %d clients: Submit/floor %.0f%%, floor/Put %.0f%%: %s\n", c, 100*sf, 100*fp, verdict)
	}

	var goals []goal
	for _, c := range []int{16, 64} {
		if _, ok := submit[c]; ok {
			got := ratio(points(submit[c]), points(r.Points[EtcdRaw][c]))
			name := fmt.Sprintf("Submit on etcd ≥ %.0f%% of a raw etcd Put at %d clients", 100*GoalEtcdRatio, c)
			if r.MaxTxnOps != DefaultEtcdMaxTxnOps {
				name += fmt.Sprintf(" (--max-txn-ops %d)", r.MaxTxnOps)
			}
			goals = append(goals, goal{name, fmt.Sprintf("%.0f%%", 100*got), got >= GoalEtcdRatio, "BELOW"})
		}
	}
	return goals
}

// etcdNearFloor is the share of the gRPC floor above which Submit counts as near it.
const etcdNearFloor = 0.8

// points are the Points of ps.
func points(ps []EtcdPoint) []Point {
	out := make([]Point, len(ps))
	for i, p := range ps {
		out[i] = p.Point
	}
	return out
}

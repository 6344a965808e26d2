package bench

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// These tests check that the harness measures what it claims (counts, sizes, no lost events) on
// tiny loads. They never assert on speed: the machines are shared and timing is noise.

// TestMain doubles as the child server of StartChild, which re-runs the current executable — here
// the test binary — with -serve-child DIR.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "-"+ChildFlag {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := ServeChild(ctx, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestSummarize(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[len(hundred)-1-i] = time.Duration(i+1) * time.Millisecond // reversed: Summarize sorts
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"none", nil, Summary{}},
		{"one", []time.Duration{5}, Summary{N: 1, P50: 5, P99: 5, Max: 5}},
		{"1..100 ms", hundred, Summary{N: 100, P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%s) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLayouts(t *testing.T) {
	if got := OneRecord(1650).Bytes(); got != 1650 {
		t.Errorf("OneRecord(1650).Bytes() = %d, want 1650", got)
	}
	sb := SubmitBytes{PerSubmit: 300, Buckets: map[string]Sizes{
		"events": {8, 100}, "requests": {36, 64}, "subjects": {60, 32},
	}}
	want := Layout{
		{Bucket: "events", Key: 8, Value: 100},
		{Bucket: "requests", Key: 36, Value: 64},
		{Bucket: "subjects", Key: 60, Value: 32},
	}
	got := SubmitLayout(sb)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SubmitLayout mismatch (-want +got):\n%s", diff)
	}
	if got.Bytes() != sb.PerSubmit {
		t.Errorf("SubmitLayout(...).Bytes() = %d, want PerSubmit %d", got.Bytes(), sb.PerSubmit)
	}
}

func TestRunRaw(t *testing.T) {
	for _, layout := range []Layout{OneRecord(200), {{Bucket: "a", Key: 8, Value: 50}, {Bucket: "b", Key: 20, Value: 10, RandomKey: true}}} {
		p, err := RunRaw(testContext(t), t.TempDir(), layout, Load{Concurrency: 4, Duration: 200 * time.Millisecond})
		if err != nil {
			t.Fatalf("RunRaw(%v) = %v", layout, err)
		}
		if p.Ops == 0 || p.Latency.N != p.Ops {
			t.Errorf("RunRaw(%v) = %d ops with %d latencies, want some, one latency each", layout, p.Ops, p.Latency.N)
		}
	}
}

func TestRunStore(t *testing.T) {
	layout := Layout{{Bucket: "events", Key: 8, Value: 60}, {Bucket: "erasures", Key: 36, Value: 100},
		{Bucket: "requests", Key: 36, Value: 40, RandomKey: true}}
	p, err := RunStore(testContext(t), t.TempDir(), layout, Load{Concurrency: 4, Duration: 200 * time.Millisecond})
	if err != nil || p.Ops == 0 {
		t.Fatalf("RunStore = %d ops, %v; want some, no error", p.Ops, err)
	}
	if _, err := RunStore(testContext(t), t.TempDir(), Layout{{Bucket: "nope", Key: 8}}, Load{Concurrency: 1}); err == nil {
		t.Errorf("RunStore(unknown bucket) = nil error, want one")
	}
}

func TestSubmitAndWatchInProcess(t *testing.T) {
	ctx := testContext(t)
	p, err := StartInProcess(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	}()

	sb, err := MeasureSubmitBytes(ctx, p, 20)
	if err != nil {
		t.Fatalf("MeasureSubmitBytes = %v", err)
	}
	for _, b := range []string{"erasures", "events", "schedule"} {
		if sb.Buckets[b].Key+sb.Buckets[b].Value == 0 {
			t.Errorf("MeasureSubmitBytes = %+v, want bytes in %s", sb, b)
		}
	}
	for _, b := range []string{"requests", "subjects", "keys"} { // the Submit index lives in memory, the data key in the record
		if s, ok := sb.Buckets[b]; ok {
			t.Errorf("MeasureSubmitBytes = %+v, want nothing in %s, got %+v", sb, b, s)
		}
	}
	if sb.Erasures != 20 || sb.PerSubmit != SubmitLayout(sb).Bytes() {
		t.Errorf("MeasureSubmitBytes = %+v, want 20 erasures, buckets adding up to PerSubmit", sb)
	}

	pt, err := RunSubmit(ctx, p, Load{Concurrency: 2, Duration: 200 * time.Millisecond})
	if err != nil || pt.Ops == 0 {
		t.Fatalf("RunSubmit = %d ops, %v; want some, no error", pt.Ops, err)
	}
	if pt, err := RunStatusMiss(ctx, p, Load{Concurrency: 2, Duration: 200 * time.Millisecond}); err != nil || pt.Ops == 0 {
		t.Fatalf("RunStatusMiss = %d ops, %v; want some, no error", pt.Ops, err)
	}

	// 20 streams over 10 erasures, two connections; 50 Cancels/s for 200ms cancels all 10.
	cfg := WatchConfig{Streams: 20, Erasures: 10, StreamsPerConn: 10, Rate: 50, Duration: 200 * time.Millisecond}
	w, err := RunWatch(ctx, p, cfg)
	if err != nil {
		t.Fatalf("RunWatch = %v", err)
	}
	if w.Cancels != 10 || w.Expected != 20 || w.Received != 20 || w.Duplicates != 0 || w.Latency.N != 20 {
		t.Errorf("RunWatch = %d cancels, %d/%d events, %d duplicates, %d latencies; want 10, 20/20, 0, 20",
			w.Cancels, w.Received, w.Expected, w.Duplicates, w.Latency.N)
	}
}

func TestChild(t *testing.T) {
	ctx := testContext(t)
	s, err := StartChild(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A whole run, small: the child's streams, its memory read from /proc, its clean exit.
	w, err := RunWatch(ctx, s, WatchConfig{Streams: 10, StreamsPerConn: 5, Rate: 100, Duration: 100 * time.Millisecond})
	if err != nil || w.Received != 10 || w.MemBefore == 0 || w.MemAfter == 0 {
		t.Errorf("RunWatch(child) = %d/%d events, memory %d → %d, %v; want 10/10, both readings, no error",
			w.Received, w.Expected, w.MemBefore, w.MemAfter, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v, want a clean exit on SIGTERM", err)
	}
}

func TestErasured(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/erasured")
	}
	// The build has no deadline of its own: on a cold module cache on a busy machine it may take
	// minutes, which says nothing about erasured (go test's own -timeout still bounds it).
	bin, err := BuildErasured(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	s, err := StartErasured(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mem, err := s.Memory()
	if err != nil || mem == 0 {
		t.Errorf("Memory() = %d, %v; want the process's RssAnon", mem, err)
	}
	names, err := RunSubmitCount(ctx, s, 3)
	if err != nil || len(names) != 3 || names[2] == "" {
		t.Errorf("RunSubmitCount(3) = %q, %v; want three names", names, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v, want a clean exit on SIGTERM", err)
	}
}

// TestPipeline runs the pipeline scenario on a few subjects with a fast clock and no real
// latency, and checks what the report counts: every erasure completed, every id of the
// subjects' records in exactly one LivePerson request, nobody else's record touched.
func TestPipeline(t *testing.T) {
	cfg := PipelineConfig{Subjects: 30, Background: 50, SearchRate: 2000, Latency: time.Millisecond,
		DeletionLatency: time.Millisecond, Speed: 500_000, BatchMaxWait: 300 * time.Millisecond,
		PollInterval: 100 * time.Millisecond, Timeout: time.Minute}
	r, err := RunPipeline(testContext(t), t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ByState; got[service.StateCompleted] != cfg.Subjects || len(got) != 1 {
		t.Errorf("erasures by state = %v, want %d COMPLETED", got, cfg.Subjects)
	}
	if r.Erased != r.Records || r.Records == 0 || r.WronglyErased != 0 || r.Duplicates != 0 {
		t.Errorf("erased %d of %d records, %d of others, %d duplicate bodies; want all, 0, 0", r.Erased, r.Records, r.WronglyErased, r.Duplicates)
	}
	for _, k := range kinds {
		ids := 0
		for _, n := range r.Requests[k] {
			ids += n
		}
		if ids != r.Targets[k] {
			t.Errorf("%s: %d ids in LivePerson requests, want the %d targets", k, ids, r.Targets[k])
		}
		if r.UsedRequests(k) < r.IdealRequests(k) {
			t.Errorf("%s: %d requests used, fewer than the ideal %d", k, r.UsedRequests(k), r.IdealRequests(k))
		}
	}
	if q := r.QuotaRatio(0); !(q > 0 && q <= 1) {
		t.Errorf("QuotaRatio = %v, want in (0, 1]", q)
	}
	if eh := r.Calls.ByOp[lpsim.ServiceEngHist+" keyword search"]; eh < cfg.Subjects*sweepEngHist {
		t.Errorf("%d keyword searches, want at least one sweep of %d per subject", eh, sweepEngHist)
	}
	if r.ResolvePhase <= 0 || r.ResolvePhase > r.EndToEnd || r.Latency.N != cfg.Subjects {
		t.Errorf("resolution %v, end to end %v, %d latencies; want 0 < resolution ≤ end to end, one per subject", r.ResolvePhase, r.EndToEnd, r.Latency.N)
	}
	if u := r.Utilisation(lpsim.ServiceEngHist); !(u > 0) {
		t.Errorf("Utilisation = %v, want > 0", u)
	}
}

func TestRunLengths(t *testing.T) {
	if got, want := runLengths([]int{77, 100, 100, 3, 100}), "100×3, 77, 3"; got != want {
		t.Errorf("runLengths = %q, want %q", got, want)
	}
}

// TestEtcd runs the etcd scenario on a tiny load against its own embedded etcd and checks that
// the report has its four rows at each client count, at both --max-txn-ops settings, the floor's
// ratios and the goal at 16 clients.
func TestEtcd(t *testing.T) {
	cfg := Config{Runs: 1, EtcdClients: []int{2, 16}, EtcdMaxTxnOps: []int{128, 1024}, Duration: 150 * time.Millisecond, SampleSubmits: 10,
		SkipSubmit: true, SkipWatch: true, SkipPipeline: true, Dir: t.TempDir()}
	res, err := Run(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Etcd) != len(cfg.EtcdMaxTxnOps) {
		t.Fatalf("%d etcd results, want one per --max-txn-ops setting (%v)", len(res.Etcd), cfg.EtcdMaxTxnOps)
	}
	for i, er := range res.Etcd {
		if er.MaxTxnOps != cfg.EtcdMaxTxnOps[i] {
			t.Errorf("etcd result %d has --max-txn-ops %d, want %d", i, er.MaxTxnOps, cfg.EtcdMaxTxnOps[i])
		}
		for _, b := range []string{"erasures", "events", "submit_index"} {
			if er.Bytes.Buckets[b].Key+er.Bytes.Buckets[b].Value == 0 {
				t.Errorf("Bytes = %+v, want bytes in %s", er.Bytes, b)
			}
		}
		for sys := range numEtcdSystems {
			for _, c := range cfg.EtcdClients {
				if ps := er.Points[sys][c]; len(ps) != 1 || ps[0].Ops == 0 || ps[0].Calls < ps[0].Ops || ps[0].Fsyncs == 0 {
					t.Errorf("%s at %d clients = %+v, want one point with operations and etcd fsyncs", sys, c, ps)
				}
			}
		}
		// The floor's calls are its Puts: every completed Submit it answered must have put one.
		if ps := er.Points[EtcdFloor][16]; len(ps) == 1 && ps[0].Calls < ps[0].Ops {
			t.Errorf("floor at 16 clients: %d Puts for %d calls", ps[0].Calls, ps[0].Ops)
		}
	}
	var out strings.Builder
	Report(&out, cfg, res, "header", "command")
	for _, want := range []string{EtcdSubmit.String(), EtcdFloor.String(), EtcdStore.String(), EtcdRaw.String(), "per txn",
		"raw etcd Put at 16 clients", "--max-txn-ops 1024", "Submit/floor"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

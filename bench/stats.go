// Package bench measures erasured against baselines taken in the same run: Submit throughput and
// latency against a raw bbolt group commit writing records of the same size, and Watch fan-out
// (commit-to-receive latency, memory per idle stream). The numbers are ratios and medians, never
// assertions: the machines running it are shared and noisy. bench/cmd/erasured-bench drives it.
package bench

import (
	"slices"
	"time"
)

// Summary describes a set of latencies.
type Summary struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize computes the percentiles of d (nearest rank). It sorts d in place.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	slices.Sort(d)
	return Summary{N: len(d), P50: rank(d, 0.50), P99: rank(d, 0.99), Max: d[len(d)-1]}
}

// rank is the nearest-rank percentile p (0..1] of sorted d.
func rank(d []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(d))+0.999999) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// Median is the median of xs (the mean of the middle two for an even count); 0 for none.
func Median[T ~int64 | ~float64 | ~int](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Point is one closed-loop load measurement: a number of concurrent callers issuing operations back
// to back for a fixed time.
type Point struct {
	Concurrency int
	Ops         int           // operations completed inside the measurement window
	Window      time.Duration // the measurement window, after the warm-up
	Latency     Summary
	// Commits, and the writes and bbolt pages they carried, over the whole run (warm-up
	// included); known only for the raw baselines, which own their bbolt handle.
	Commits, Writes, Pages int
}

// Rate is the completed operations per second.
func (p Point) Rate() float64 {
	if p.Window <= 0 {
		return 0
	}
	return float64(p.Ops) / p.Window.Seconds()
}

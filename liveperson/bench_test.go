package liveperson_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
)

// benchRate runs 16 workers calling Messaging Interactions as fast as the
// client lets them for a few seconds (3 s with a known limit; 6 s when it
// must be learned, so that the learning is not most of the run), against a simulator that allows limit
// requests per second (burst limit/10) and answers 429 beyond. It reports the
// share of the allowed calls that succeeded and the share of requests that
// got a 429.
func benchRate(b *testing.B, known bool) {
	const (
		limit = 200.0
		burst = 20
	)
	l := liveperson.RateLimit{Concurrency: 16}
	dur := 6 * time.Second
	if known {
		l.Rate, dur = limit, 3*time.Second
	}
	var util, ratio float64
	for range b.N {
		sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{lpsim.DefaultAccount(acct, "us")},
			StaticTokens: map[string]string{"tok": "*"}, RateLimits: map[string]float64{lpsim.ServiceMsgHist: limit},
			RateBurst: burst})
		srv := httptest.NewServer(sim.Handler())
		c, err := liveperson.New(
			liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(srv.URL, "http://"), Insecure: true}),
			liveperson.WithAuth(liveperson.StaticBearer{"*": "tok"}), liveperson.WithSource("bench"),
			liveperson.WithHTTPClient(srv.Client()), liveperson.WithRateLimit(liveperson.ServiceMessaging, l))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), dur)
		start := time.Now()
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for ctx.Err() == nil {
					_, _ = c.ConversationsByID(ctx, acct, []string{"c-1"}, nil)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		cancel()
		var ok, throttled, total int
		for _, call := range sim.CallsTo(lpsim.ServiceMsgHist, "") {
			total++
			switch call.Status {
			case 200:
				ok++
			case 429:
				throttled++
			}
		}
		sim.Close()
		srv.Close()
		util = float64(ok) / (limit*elapsed.Seconds() + burst)
		ratio = float64(throttled) / float64(max(total, 1))
	}
	b.ReportMetric(100*util, "util%")
	b.ReportMetric(100*ratio, "429%")
	switch {
	case known && (util < 0.95 || ratio > 0):
		b.Errorf("known limit: utilisation %.1f%%, 429s %.2f%%; want ≥ 95%% and none", 100*util, 100*ratio)
	case !known && (util < 0.90 || ratio > 0.01):
		b.Errorf("learned limit: utilisation %.1f%%, 429s %.2f%%; want ≥ 90%% and ≤ 1%%", 100*util, 100*ratio)
	}
}

func BenchmarkRateKnown(b *testing.B)   { benchRate(b, true) }
func BenchmarkRateLearned(b *testing.B) { benchRate(b, false) }

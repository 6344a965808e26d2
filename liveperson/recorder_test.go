package liveperson_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
)

// recorded is one request a recorder received.
type recorded struct {
	Path  string
	Query url.Values
	Body  string
}

// recorder is an HTTP server that records every request and answers with a
// body chosen per request: a fake LivePerson for checking exactly what the
// client sends and how it reads answers the simulator does not produce.
type recorder struct {
	mu    sync.Mutex
	calls []recorded
	srv   *httptest.Server
}

// newRecorder starts a recorder answering 200 with answer(request) and
// returns it with a client pointed at it.
func newRecorder(t *testing.T, answer func(r recorded) string) (*recorder, *liveperson.Client) {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		call := recorded{Path: r.URL.Path, Query: r.URL.Query(), Body: string(b)}
		rec.mu.Lock()
		rec.calls = append(rec.calls, call)
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer(call))
	}))
	t.Cleanup(rec.srv.Close)
	c, err := liveperson.New(
		liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(rec.srv.URL, "http://"), Insecure: true}),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "test-token"}),
		liveperson.WithSource("erasured-test"),
		liveperson.WithClock(liveperson.NewFakeClock(t0)),
		liveperson.WithRandom(func() float64 { return 0 }),
		liveperson.WithCallTimeout(2*time.Second),
		liveperson.WithHTTPClient(rec.srv.Client()),
		liveperson.WithRateLimit("", liveperson.RateLimit{Rate: 1000, Burst: 100}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return rec, c
}

// Calls returns the requests received so far.
func (r *recorder) Calls() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.calls...)
}

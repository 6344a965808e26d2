package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/erasured/erasured/liveperson/lpsim"
)

// TestLPSimThrottleSearches: with --throttle-searches, `erasured lpsim` answers every search of
// both history services 429 with the Retry-After asked for, and still serves the rest (the
// Domain API); without it, the same search is served.
func TestLPSimThrottleSearches(t *testing.T) {
	search := "/interaction_history/api/account/" + lpsim.DemoAccount + "/interactions/search"
	msgSearch := "/messaging_history/api/account/" + lpsim.DemoAccount + "/conversations/search"
	domain := "/api/account/" + lpsim.DemoAccount + "/service/msgHist/baseURI.json?version=1.0"
	for _, tc := range []struct {
		args      []string
		path      string
		wantCode  int
		wantRetry string
	}{
		{[]string{"--throttle-searches", "30s"}, search, http.StatusTooManyRequests, "30"},
		{[]string{"--throttle-searches", "1500ms"}, msgSearch, http.StatusTooManyRequests, "2"},
		{[]string{"--throttle-searches", "30s"}, domain, http.StatusOK, ""},
		{nil, search, http.StatusOK, ""},
	} {
		addr := startLPSim(t, tc.args)
		method, body := http.MethodPost, `{"start":{"from":1700000000000,"to":1700000600000},"keyword":"x"}`
		if strings.HasPrefix(tc.path, "/api/") {
			method, body = http.MethodGet, ""
		}
		req, err := http.NewRequest(method, "http://"+addr+tc.path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+lpsim.StaticToken(lpsim.DemoAccount))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.wantCode || resp.Header.Get("Retry-After") != tc.wantRetry {
			t.Errorf("lpsim %v: %s = %d Retry-After %q, want %d %q", tc.args, tc.path,
				resp.StatusCode, resp.Header.Get("Retry-After"), tc.wantCode, tc.wantRetry)
		}
	}
	if err := lpsimMain(context.Background(), []string{"--throttle-searches", "-1s"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "must not be negative") {
		t.Errorf("a negative --throttle-searches = %v, want refused", err)
	}
}

// startLPSim runs `erasured lpsim args` in this process until the test ends and returns its
// address.
func startLPSim(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- lpsimMain(ctx, append([]string{"--consumers", "10"}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("lpsim: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "lpsim listening on http://"); ok {
			go io.Copy(io.Discard, pr)
			return a
		}
	}
	t.Fatal("lpsim did not start")
	return ""
}

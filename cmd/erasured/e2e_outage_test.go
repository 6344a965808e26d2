package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// TestE2EOutageShowsAtOnce: with the Domain API failing, the LivePerson client as erasured
// builds it (default retry policy, real waits) retries for minutes inside one call. The outage
// must show before the first retry: a log line names the failing service, the account and the
// attempt while the first backoff runs, and Status says BLOCKED_ON_LIVEPERSON_UNAVAILABLE with
// the coming attempt in the future. Later retries of the same call move the next attempt time
// but write no Watch event and no second warning.
func TestE2EOutageShowsAtOnce(t *testing.T) {
	e := newE2E(t, e2eOptions{consumers: 20})
	e.sim.AddFault(fault(lpsim.ServiceDomain, "", lpsim.Fault{Kind: lpsim.FaultStatus}))
	const (
		first = "LivePerson call failed; retrying within the step"
		again = "LivePerson call failed again; retrying within the step"
	)
	name := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)

	// The line is written before the client's first wait (5 s, at least) ends, so the Domain
	// API has been asked once when it appears.
	e.waitUntil("the first retry logged", func() bool { return e.log.count(first) > 0 })
	if n := len(e.calls(lpsim.ServiceDomain, "")); n != 1 {
		t.Errorf("%d Domain API calls when the outage was first logged, want 1 (within the first backoff)", n)
	}
	line := outageLine(e.log.String(), first)
	for _, want := range []string{"level=WARN", "service=domain", "account=" + e2eAcct, "step=resolve", "attempt=1",
		`reason="LivePerson unavailable"`, "retry_in=5", "next_attempt_time="} {
		if !strings.Contains(line, want) {
			t.Errorf("retry line lacks %s:\n%s", want, line)
		}
	}
	got := e.status(name)
	if got.State != service.StateResolving || got.BlockedOn != service.BlockedLivePersonUnavailable ||
		got.LastError != "LivePerson unavailable" || !got.NextAttemptTime.After(e.clock.Now()) {
		t.Errorf("during the first backoff: %s, blocked_on %s, last_error %q, next attempt %v (now %v); "+
			"want RESOLVING, LIVEPERSON_UNAVAILABLE, %q, a future next attempt",
			got.State, blockedName(got.BlockedOn), got.LastError, got.NextAttemptTime, e.clock.Now(), "LivePerson unavailable")
	}

	// The client's second attempt fails too and it waits again: the erasure is unchanged for
	// watchers, so no event; the warning is not repeated.
	e.waitUntil("the second retry logged", func() bool { return e.log.count(again) > 0 })
	later := e.status(name)
	if later.Revision != got.Revision {
		t.Errorf("a repeated retry wrote an event: revision %d, then %d", got.Revision, later.Revision)
	}
	if later.BlockedOn != service.BlockedLivePersonUnavailable || !later.NextAttemptTime.After(e.clock.Now()) {
		t.Errorf("after the second retry: blocked_on %s, next attempt %v (now %v)",
			blockedName(later.BlockedOn), later.NextAttemptTime, e.clock.Now())
	}
	if n := e.log.count(first); n != 1 {
		t.Errorf("%d warnings for one step's retries, want 1", n)
	}
	if n := e.log.count("pipeline step failed; retrying"); n != 0 {
		t.Errorf("the step was taken for failed (%d lines) while its call still retried", n)
	}

	// A host lookup is one attempt, retried only by the call around it: once the pipeline has
	// stopped nothing more reaches the Domain API.
	asked := len(e.calls(lpsim.ServiceDomain, ""))
	e.stopPipeline()
	if n := len(e.calls(lpsim.ServiceDomain, "")); n != asked || n != 2 {
		t.Errorf("%d Domain API calls after the pipeline stopped, %d before; want 2, one per attempt of the call", n, asked)
	}
}

// outageLine returns the first line of log carrying msg.
func outageLine(log, msg string) string {
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, fmt.Sprintf("msg=%q", msg)) {
			return l
		}
	}
	return ""
}

// TestE2EThrottlingIsNotAnOutage: a 429 is LivePerson pacing the client, which waits and
// retries within the call; the erasure does not show it as an outage and nothing is logged.
func TestE2EThrottlingIsNotAnOutage(t *testing.T) {
	e := newE2E(t, e2eOptions{fast: true, consumers: 20})
	throttle := fault(lpsim.ServiceEngHist, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429, Times: 2})
	e.sim.AddFault(throttle)
	name := e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	runToCompletion(e, name)
	if e.fired(throttle) == 0 {
		t.Fatal("the 429 never fired: the test shows nothing")
	}
	if n := e.log.count("LivePerson call failed; retrying within the step"); n != 0 {
		t.Errorf("%d outage warnings for two 429s, want none", n)
	}
}

package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/region"
	"github.com/erasured/erasured/service"
)

// e2eFaultCase is one simulator fault (or a few) met by one erasure of the demo subject
// DEMO-CUST-1, chat only or messaging only, with the fast client (retry waits recorded, not
// slept).
type e2eFaultCase struct {
	name    string
	chat    bool // a chat-only erasure; else messaging only
	faults  []lpsim.Fault
	drive   func(e *e2eEnv, name string) // default: runToCompletion
	sleeps  []time.Duration              // retry waits the client must have made, in this order
	creates int                          // deletion creates LivePerson must have received (0: 1)
	force   func(*lpsim.Variants)        // readings the case needs, whatever the seed chose
}

// createOnly serves delete_json only in the create answer, as the get and list pages document.
func createOnly(v *lpsim.Variants) { v.DeleteJSON = lpsim.DeleteJSONCreateOnly }

func fault(service, op string, f lpsim.Fault) lpsim.Fault {
	f.Service, f.Op = service, op
	return f
}

// TestE2EFaults: every fault the simulator can inject, where the pipeline meets it. Each erasure
// must end COMPLETED with exactly the subject's records in exactly one LivePerson request (a
// partial answer taken for whole would lose records; a lost create answer resent blindly would
// create a second request), its receipt verifying; the fault must really have fired.
func TestE2EFaults(t *testing.T) {
	const (
		eng      = lpsim.ServiceEngHist
		msg      = lpsim.ServiceMsgHist
		rtbf     = lpsim.ServiceRTBF
		s        = time.Second
		lastChat = 14 // the chat sweep's 14th window (the newest) holds the chat of 3 days ago
		lastConv = 9  // the messaging sweep's 9th call (newest window, CLOSE) holds the conversation of 5 days ago
	)
	cases := []e2eFaultCase{
		// Searches and reads: safe calls, retried by the client under LivePerson's policy.
		{name: "search 429 without Retry-After", chat: true, sleeps: []time.Duration{s, 2 * s},
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429, Times: 2})}},
		{name: "search 429 with Retry-After", sleeps: []time.Duration{7 * s},
			faults: []lpsim.Fault{fault(msg, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429, RetryAfter: "7", Times: 1})}},
		{name: "search 503", chat: true, sleeps: []time.Duration{5 * s, 10 * s, 15 * s},
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 3})}},
		{name: "search latency",
			faults: []lpsim.Fault{fault(msg, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultLatency, Latency: 50 * time.Millisecond, Times: 3})}},
		{name: "search hangs past the call timeout", chat: true, sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultHang, Times: 1})}},
		{name: "search connection reset", sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(msg, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultReset, Times: 1})}},
		{name: "search malformed JSON", chat: true, sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultMalformed, Times: 1})}},
		{name: "search truncated JSON", sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(msg, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultTruncated, Times: 1})}},
		{name: "chat search partialResult", chat: true, sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultPartialResult, Nth: lastChat, Times: 1})}},
		{name: "messaging search partialResult", sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(msg, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultPartialResult, Nth: lastConv, Times: 1})}},
		{name: "chat search partial records", chat: true,
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultPartialRecord, Nth: lastChat, Times: 1})}},
		{name: "messaging search partial records",
			faults: []lpsim.Fault{fault(msg, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultPartialRecord, Nth: lastConv, Times: 1})}},
		{name: "conversations by consumer 502", sleeps: []time.Duration{5 * s, 10 * s},
			faults: []lpsim.Fault{fault(msg, lpsim.OpByConsumer, lpsim.Fault{Kind: lpsim.FaultStatus, Status: 502, Times: 2})}},
		{name: "verification read hangs", sleeps: []time.Duration{5 * s},
			faults: []lpsim.Fault{fault(msg, lpsim.OpByID, lpsim.Fault{Kind: lpsim.FaultHang, Times: 1})}},
		{name: "sentinel token 503", chat: true, sleeps: []time.Duration{5 * s, 10 * s},
			faults: []lpsim.Fault{fault(lpsim.ServiceSentinel, lpsim.OpToken, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 2})}},
		{name: "Domain API 503", chat: true, sleeps: []time.Duration{5 * s, 10 * s},
			faults: []lpsim.Fault{fault(lpsim.ServiceDomain, lpsim.OpBaseURI, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 2})}},
		{name: "search down past the client's retries", chat: true, drive: searchDown,
			sleeps: []time.Duration{5 * s, 10 * s, 15 * s, 30 * s, 60 * s},
			faults: []lpsim.Fault{fault(eng, lpsim.OpSearch, lpsim.Fault{Kind: lpsim.FaultStatus, Status: 500, Times: 6})}},
		{name: "discovered host in the wrong region", chat: true, drive: wrongRegion(eng, "lo."),
			faults: []lpsim.Fault{fault(lpsim.ServiceDomain, "", lpsim.Fault{Kind: lpsim.FaultWrongHost,
				Host: "lo.enghist.liveperson.net", ForService: lpsim.ServiceEngHist})}},

		// Deletion create: never retried blindly. After = created at LivePerson, answer lost.
		{name: "create 503 after creating", chat: true, drive: createLost,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultStatus, After: true, Times: 1})}},
		{name: "create reset after creating", chat: true, drive: createLost,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultReset, After: true, Times: 1})}},
		{name: "create times out after creating", drive: createLost,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultHang, After: true, Times: 1})}},
		{name: "create malformed JSON after creating", drive: createLost,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultMalformed, After: true, Times: 1})}},
		{name: "create 503 after creating, delete_json in the create answer only", chat: true, drive: createLost, force: createOnly,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultStatus, After: true, Times: 1})}},
		{name: "create times out after creating, delete_json in the create answer only", drive: createLost, force: createOnly,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultHang, After: true, Times: 1})}},
		{name: "create truncated JSON", chat: true, drive: createLost,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultTruncated, Times: 1})}},
		{name: "create 503 before creating", chat: true, drive: createLost, creates: 2,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 1})}},
		{name: "create reset before creating", drive: createLost, creates: 2,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultReset, Times: 1})}},
		{name: "create latency", chat: true,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultLatency, Latency: 100 * time.Millisecond, Times: 1})}},
		{name: "create refused once (400)", chat: true, drive: createRejected, creates: 2,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultStatus, Status: 400, Times: 1})}},
		{name: "create answer lost and the list down", chat: true, drive: createLostListDown,
			faults: []lpsim.Fault{
				fault(rtbf, lpsim.OpCreate, lpsim.Fault{Kind: lpsim.FaultStatus, After: true, Times: 1}),
				fault(rtbf, lpsim.OpList, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 6}),
			}},
		{name: "poll down past the client's retries", chat: true, drive: pollDown,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpGet, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 6})}},
		{name: "poll malformed JSON", drive: pollDown,
			faults: []lpsim.Fault{fault(rtbf, lpsim.OpGet, lpsim.Fault{Kind: lpsim.FaultMalformed, Times: 6})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, e2eOptions{fast: true, consumers: 60, force: tc.force})
			for _, f := range tc.faults {
				e.sim.AddFault(f)
			}
			opt, want := messagingOnly, body("conversation", e.convsOf(lpsim.DemoCustomerID, ""))
			if tc.chat {
				opt, want = chatOnly, body("engagement", e.chatsOf(lpsim.DemoCustomerID))
			}
			name := e.submit(customerID(lpsim.DemoCustomerID), opt)
			drive := tc.drive
			if drive == nil {
				drive = runToCompletion
			}
			drive(e, name)

			if got := e.bodies(); !slices.Equal(got, []string{want}) {
				t.Errorf("LivePerson deletion requests = %v, want exactly [%s]", got, want)
			}
			wantCreates := max(tc.creates, 1)
			if n := len(e.calls(lpsim.ServiceRTBF, lpsim.OpCreate)); n != wantCreates {
				t.Errorf("deletion creates received by LivePerson = %d, want %d", n, wantCreates)
			}
			for _, f := range tc.faults {
				if e.fired(f) == 0 {
					t.Errorf("fault %s on %s %s never fired: the test shows nothing", f.Kind, f.Service, f.Op)
				}
			}
			if got := e.lpClock.Sleeps(); !subsequence(got, tc.sleeps) {
				t.Errorf("client retry waits = %v, want %v among them in order", got, tc.sleeps)
			}
			sim := strings.TrimPrefix(e.srv.URL, "http://")
			for h := range e.hosts.Seen() {
				if h != sim {
					t.Errorf("the client called %s (only the simulator %s expected)", h, sim)
				}
			}
		})
	}
}

// fired counts the calls f fired on.
func (e *e2eEnv) fired(f lpsim.Fault) int {
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Fault == f.Kind.String() && (f.Service == "" || c.Service == f.Service) && (f.Op == "" || c.Op == f.Op) {
			n++
		}
	}
	return n
}

// subsequence reports whether want appears in got in order (not necessarily adjacent).
func subsequence(got, want []time.Duration) bool {
	i := 0
	for _, d := range got {
		if i < len(want) && d == want[i] {
			i++
		}
	}
	return i == len(want)
}

// runToCompletion: resolved, batched after batch_max_wait, through LivePerson's timeline.
func runToCompletion(e *e2eEnv, name string) {
	e.t.Helper()
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
}

// searchDown: the search fails past the client's retries; the erasure shows it from the first
// retry within the call on, backs off once the call gives up, then carries on.
func searchDown(e *e2eEnv, name string) {
	e.t.Helper()
	// Blocked on LivePerson already shows during the call's retries; the step's backoff is
	// stored (and logged) once the call gives up, which is what this waits for.
	e.waitLogged("pipeline step failed; retrying", 1)
	got := e.status(name)
	if now := e.clock.Now(); got.State != service.StateResolving || got.BlockedOn != service.BlockedLivePersonUnavailable ||
		got.LastError != "LivePerson unavailable" || !got.NextAttemptTime.Equal(now.Add(5*time.Second)) {
		e.t.Errorf("after the failed search: %s, blocked_on %s, last_error %q, next attempt %v; want RESOLVING, LIVEPERSON_UNAVAILABLE, %q, %v",
			got.State, blockedName(got.BlockedOn), got.LastError, got.NextAttemptTime, "LivePerson unavailable", now.Add(5*time.Second))
	}
	if n := e.log.count("LivePerson call failed; retrying within the step"); n != 1 {
		e.t.Errorf("%d warnings of the search retrying within the step, want 1 (the first retry)", n)
	}
	e.advance(time.Minute)
	runToCompletion(e, name)
}

// wrongRegion: the Domain API names, for the account's svc, a host of another region (its name
// begins with prefix). The host is refused and never called; the erasure is blocked with the
// residency error until discovery answers a host in the region again.
func wrongRegion(svc, prefix string) func(e *e2eEnv, name string) {
	return func(e *e2eEnv, name string) {
		e.t.Helper()
		got := e.waitFor(name, "blocked on LIVEPERSON_UNAVAILABLE", func(x service.Erasure) bool {
			return x.BlockedOn == service.BlockedLivePersonUnavailable
		})
		if want := "refused: LivePerson host outside the account's region"; got.State != service.StateResolving || got.LastError != want {
			e.t.Errorf("with a wrong-region host: %s, last_error %q; want RESOLVING, %q", got.State, got.LastError, want)
		}
		for h := range e.hosts.Seen() {
			if strings.HasPrefix(h, prefix) {
				e.t.Errorf("the client called %s, a host outside the account's region", h)
			}
		}
		if n := len(e.calls(svc, "")); n != 0 {
			e.t.Errorf("%d %s calls reached LivePerson while its host was refused", n, svc)
		}
		reasons := e.residencyViolations()
		if len(reasons) == 0 || slices.ContainsFunc(reasons, func(r string) bool { return r != region.ReasonRegion }) {
			e.t.Errorf("residency guard violations %q, want some, each %q", reasons, region.ReasonRegion)
		}
		if !strings.Contains(e.log.String(), "RESIDENCY GUARD") {
			e.t.Error("the refused host was not logged for alerting")
		}
		// LivePerson's Domain API is right again; the next discovery (after the cache's TTL) is used.
		e.sim.ClearFaults()
		e.advance(time.Hour + time.Minute)
		runToCompletion(e, name)
	}
}

// createLost: the create's outcome is unknown; the batch keeps its intent and is reconciled
// against LivePerson's list before anything is sent again.
func createLost(e *e2eEnv, name string) {
	e.t.Helper()
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitLogged("pipeline step failed; retrying", 1)
	if got := e.status(name); got.State != service.StateScheduled || len(got.LPRequests) != 0 {
		e.t.Errorf("while the create's outcome is unknown: %s with %d LP requests, want SCHEDULED with none",
			got.State, len(got.LPRequests))
	}
	e.advance(time.Minute) // the batch's retry: reconcile, then send only if LivePerson has nothing
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
}

// createRejected: LivePerson refuses the create (400) once; the records go back to the queue
// and the next batch is accepted.
func createRejected(e *e2eEnv, name string) {
	e.t.Helper()
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	got := e.waitFor(name, "the refusal recorded", func(x service.Erasure) bool { return x.LastError != "" })
	if got.State != service.StateScheduled || got.LastError != "LivePerson rejected the request" {
		e.t.Errorf("after a refused create: %s, last_error %q; want SCHEDULED, %q", got.State, got.LastError, "LivePerson rejected the request")
	}
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
}

// createLostListDown: the create's answer is lost and then LivePerson's list fails too: no
// resend until the list answers.
func createLostListDown(e *e2eEnv, name string) {
	e.t.Helper()
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitLogged("pipeline step failed; retrying", 1)
	e.advance(time.Minute)
	e.waitLogged("pipeline step failed; retrying", 2) // the reconciliation could not list
	if n := len(e.calls(lpsim.ServiceRTBF, lpsim.OpCreate)); n != 1 {
		e.t.Errorf("%d creates while the list was down, want 1", n)
	}
	e.advance(time.Minute)
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
}

// pollDown: polling the LivePerson request fails past the client's retries; it is polled again.
func pollDown(e *e2eEnv, name string) {
	e.t.Helper()
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.advance(e2eCancelWindow + time.Hour)
	e.waitLogged("pipeline step failed; retrying", 1)
	if got := e.status(name); got.State != service.StateSubmitted {
		e.t.Errorf("after a failed poll: %s, want SUBMITTED", got.State)
	}
	e.advance(time.Minute)
	e.waitState(name, service.StateDeleting)
	e.advance(e2eDeletionTime)
	e.wantCompleted(name)
}

// cancelSetup submits A (DEMO-CUST-1) and B (DEMO-CUST-2), chat only, and has them sent in one
// shared LivePerson request, which it returns.
func cancelSetup(e *e2eEnv) (a, b string, shared lpsim.Deletion) {
	e.t.Helper()
	a = e.submit(customerID(lpsim.DemoCustomerID), chatOnly)
	b = e.submit(customerID(lpsim.DemoOpenCustomerID), chatOnly)
	e.waitState(a, service.StateScheduled)
	e.waitState(b, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(a, service.StateSubmitted)
	e.waitState(b, service.StateSubmitted)
	ds := e.sim.Deletions(e2eAcct)
	if len(ds) != 1 {
		e.t.Fatalf("%d LivePerson requests, want one shared", len(ds))
	}
	return a, b, ds[0]
}

// TestE2ECancelFaults: cancelling at LivePerson fails; nothing changes here. When LivePerson did
// cancel but its answer was lost, the request's status shows it: the cancel succeeds, B's records
// go back to the queue and B alone is sent again.
func TestE2ECancelFaults(t *testing.T) {
	e := newE2E(t, e2eOptions{fast: true, consumers: 60})
	ctx := context.Background()
	a, b, shared := cancelSetup(e)

	e.sim.AddFault(fault(lpsim.ServiceRTBF, lpsim.OpCancel, lpsim.Fault{Kind: lpsim.FaultStatus, Times: 1}))
	if _, err := e.svc.Cancel(ctx, a, "withdrawn"); service.KindOf(err) != service.KindUnavailable {
		t.Errorf("Cancel with LivePerson failing = %v, want UNAVAILABLE", err)
	}
	if got := e.status(a); got.State != service.StateSubmitted || e.sim.DeletionStatus(shared.ID) != "NOT_STARTED" {
		t.Errorf("after a failed cancel: %s, LivePerson request %s; want SUBMITTED, NOT_STARTED", got.State, e.sim.DeletionStatus(shared.ID))
	}

	e.sim.AddFault(fault(lpsim.ServiceRTBF, lpsim.OpCancel, lpsim.Fault{Kind: lpsim.FaultStatus, After: true, Times: 1}))
	if got, err := e.svc.Cancel(ctx, a, "withdrawn"); err != nil || got.State != service.StateCancelled {
		t.Fatalf("Cancel whose answer is lost = %+v, %v; want CANCELLED (LivePerson did cancel)", got.State, err)
	}
	if st := e.sim.DeletionStatus(shared.ID); st != "CANCELED" {
		t.Fatalf("LivePerson request %d is %s, want CANCELED (the fault loses the answer, not the cancel)", shared.ID, st)
	}
	e.waitState(b, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitFor(b, "B sent again", func(x service.Erasure) bool { return x.State == service.StateSubmitted && len(x.LPRequests) == 2 })
	if bodies := e.bodies(); len(bodies) != 2 || bodies[1] != body("engagement", e.chatsOf(lpsim.DemoOpenCustomerID)) {
		t.Errorf("LivePerson deletion requests = %v, want B's records resent alone", bodies)
	}
	e.deleteAtLivePerson(b)
	e.wantMasked(e.chatsOf(lpsim.DemoCustomerID), nil, false)
}

// TestE2ECancelRetryAfterLostAnswer: LivePerson cancelled the shared request but the answer was
// lost. A failed cancel is checked against the request's status and CANCELED counts as done, so
// Cancel succeeds at once (it used to answer UNAVAILABLE and then fail every retry until the
// next poll, which re-queued the cancelled erasure's records); a retry returns it unchanged.
func TestE2ECancelRetryAfterLostAnswer(t *testing.T) {
	e := newE2E(t, e2eOptions{fast: true, consumers: 60})
	ctx := context.Background()
	a, b, shared := cancelSetup(e)
	e.sim.AddFault(fault(lpsim.ServiceRTBF, lpsim.OpCancel, lpsim.Fault{Kind: lpsim.FaultStatus, After: true, Times: 1}))
	got, err := e.svc.Cancel(ctx, a, "withdrawn")
	if err != nil || got.State != service.StateCancelled {
		t.Fatalf("Cancel whose answer is lost = %+v, %v; want CANCELLED (LivePerson did cancel the request)", got.State, err)
	}
	if st := e.sim.DeletionStatus(shared.ID); st != "CANCELED" {
		t.Fatalf("LivePerson request is %s, want CANCELED", st)
	}
	again, err := e.svc.Cancel(ctx, a, "withdrawn")
	if err != nil || again.Revision != got.Revision {
		t.Fatalf("Cancel retried = rev %d, %v; want the cancelled erasure unchanged (rev %d)", again.Revision, err, got.Revision)
	}
	if got := e.status(b); got.State != service.StateScheduled {
		t.Errorf("B after A's cancel: %s, want SCHEDULED", got.State)
	}
}

package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// Where LivePerson's pages disagree, the simulator serves one of the readings (lpsim.Variants),
// picked from a seed: ERASURED_LPSIM_SEED when set, else one chosen at random once per test
// process. Every test logs the seed and the readings, so that a failure can be replayed with
//
//	ERASURED_LPSIM_SEED=N go test -count=1 -run TestName ./cmd/erasured

// lpsimSeedEnv names the environment variable that fixes the seed.
const lpsimSeedEnv = "ERASURED_LPSIM_SEED"

// lpsimSeed returns the seed of the simulator's readings for this test process.
var lpsimSeed = sync.OnceValues(func() (uint64, error) {
	if v := os.Getenv(lpsimSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return 0, &strconv.NumError{Func: lpsimSeedEnv, Num: v, Err: strconv.ErrSyntax}
		}
		return n, nil
	}
	// Not 0: `erasured lpsim --variants-seed 0` means the default readings.
	return 1 + rand.Uint64N(1<<53), nil
})

// e2eVariants picks the readings from the process's seed, lets force change some of them for
// a test about one reading, and logs what the simulator will serve.
func e2eVariants(t *testing.T, force func(*lpsim.Variants)) lpsim.Variants {
	t.Helper()
	seed, err := lpsimSeed()
	if err != nil {
		t.Fatalf("%s must be a positive integer: %v", lpsimSeedEnv, err)
	}
	v := lpsim.VariantsFromSeed(seed)
	forced := ""
	if force != nil {
		force(&v)
		forced = " (some forced by the test)"
	}
	t.Logf("lpsim seed=%d variants=%s%s", seed, v, forced)
	return v
}

// TestE2EHiddenRecordsEveryShape: Ada Lovelace's records are found only by a client that reads
// every documented form: a chat whose e-mail sits in the flat personalInfo, a conversation
// whose attributes are all unauthenticated (unAuthSdes, served only to v=2), and a conversation
// with no attribute at all, reached through her consumer, which a conversation with her
// customer id in authenticated attributes names. Each is erased, whichever shape the simulator
// serves the attributes in, found by her customer id (customerInfo shapes) or by her e-mail
// (personalInfo shapes). The e-mail is only in the chat and in the unauthenticated attributes,
// which anyone can type: that conversation is erased, but its consumer is not followed, so
// the e-mail alone reaches neither her authenticated nor her bare conversation.
func TestE2EHiddenRecordsEveryShape(t *testing.T) {
	type shape struct {
		subject                    service.Subject
		personalInfo, customerInfo string
	}
	var shapes []shape
	for _, ci := range []string{lpsim.ShapeNested, lpsim.ShapeFlat} {
		shapes = append(shapes, shape{customerID(lpsim.DemoHiddenCustomerID), lpsim.ShapeNested, ci})
	}
	for _, pi := range []string{lpsim.ShapeNested, lpsim.ShapeFlat, lpsim.ShapeDirect, lpsim.ShapeDirectFlat} {
		shapes = append(shapes, shape{email(lpsim.DemoHiddenEmail), pi, lpsim.ShapeNested})
	}
	for _, sh := range shapes {
		byCustomer := sh.subject.Kind == service.SubjectCustomerID
		kind := "email"
		if byCustomer {
			kind = "customerId"
		}
		t.Run(fmt.Sprintf("%s personalInfo=%s customerInfo=%s", kind, sh.personalInfo, sh.customerInfo), func(t *testing.T) {
			e := newE2E(t, e2eOptions{consumers: 60, force: func(v *lpsim.Variants) {
				v.PersonalInfo, v.CustomerInfo = sh.personalInfo, sh.customerInfo
			}})
			chats := e.chatsOf(lpsim.DemoHiddenCustomerID)
			ada := func(keep func(lpsim.Conversation) bool) []string {
				return e.convIDs(func(c lpsim.Conversation) bool { return c.ConsumerID == lpsim.DemoHiddenConsumerID && keep(c) })
			}
			unauth := ada(func(c lpsim.Conversation) bool { return c.Unauthenticated && c.Email != "" })
			authed := ada(func(c lpsim.Conversation) bool { return !c.Unauthenticated && c.CustomerID != "" && c.Email == "" })
			bare := ada(func(c lpsim.Conversation) bool { return c.CustomerID == "" && c.Email == "" })
			flat := e.chatIDs(func(c lpsim.Chat) bool { return c.PersonalInfoShape == lpsim.ShapeFlat })
			if len(chats) != 1 || !slices.Contains(flat, chats[0]) || len(unauth) != 1 || len(authed) != 1 || len(bare) != 1 {
				t.Fatalf("demo data: Ada has chats %v (flat: %v), unauthenticated %v, authenticated %v and bare %v "+
					"conversations; want one flat chat and one conversation of each", chats, flat, unauth, authed, bare)
			}
			convs, untouched := sorted(unauth, authed, bare), []string(nil)
			if !byCustomer {
				convs, untouched = unauth, sorted(authed, bare)
			}
			name := e.submit(sh.subject)
			e.waitState(name, service.StateScheduled)
			want := sorted(planEntries("engagement", "QUEUED", chats...), planEntries("conversation", "QUEUED", convs...))
			if _, records := e.planOf(name); !slices.Equal(records, want) {
				t.Errorf("plan = %v, want %v", records, want)
			}
			e.advance(e2eBatchMaxWait)
			e.waitState(name, service.StateSubmitted)
			if got, want := sorted(e.bodies()), sorted([]string{body("engagement", chats), body("conversation", convs)}); !slices.Equal(got, want) {
				t.Errorf("LivePerson deletion requests = %v, want %v", got, want)
			}
			e.deleteAtLivePerson(name)
			n := len(chats) + len(convs)
			if done := e.status(name); !strings.HasPrefix(done.Receipt.VerificationSummary, fmt.Sprintf("%d of %d re-read records verified", n, n)) {
				t.Errorf("verification summary = %q, want %d of %d re-read records verified", done.Receipt.VerificationSummary, n, n)
			}
			e.wantMasked(chats, convs, true)
			e.wantMasked(nil, untouched, false)
		})
	}
}

// TestE2EPartialMaskingVerifies: LivePerson may mask only what the consumer wrote and the
// attributes, leaving the agent's and the system's lines as they were. Such records are erased:
// the erasure verifies and completes.
func TestE2EPartialMaskingVerifies(t *testing.T) {
	e := newE2E(t, e2eOptions{force: func(v *lpsim.Variants) { v.Masking = lpsim.MaskPartial }})
	chats, convs := e.chatsOf(lpsim.DemoCustomerID), e.convsOf(lpsim.DemoCustomerID, "")
	name := e.submit(customerID(lpsim.DemoCustomerID))
	e.waitState(name, service.StateScheduled)
	e.advance(e2eBatchMaxWait)
	e.waitState(name, service.StateSubmitted)
	e.deleteAtLivePerson(name)
	if done := e.status(name); !strings.HasPrefix(done.Receipt.VerificationSummary, "5 of 5 re-read records verified") {
		t.Errorf("verification summary = %q, want 5 of 5 re-read records verified", done.Receipt.VerificationSummary)
	}
	e.wantMasked(chats, convs, true)
	// The reading really was partial: the system's greeting survived.
	for _, id := range chats {
		if c, _ := e.sim.Chat(id); !slices.ContainsFunc(c.Transcript, func(l lpsim.Line) bool {
			return l.Author == lpsim.AuthorSystem && l.Text != lpsim.DeletedMarker
		}) {
			t.Errorf("chat %s: no system line left unmasked; the test shows nothing", id)
		}
	}
}

// TestE2EUKNamedHosts: a UK account whose Domain API answers LivePerson's own names in the dash
// style (lo-a.msghist.liveperson.net…), every name dialled to the simulator. Every service is
// called under its UK name and the erasure completes; a US name answered for one of its
// services is refused by the residency guard, never called, and alerted on.
func TestE2EUKNamedHosts(t *testing.T) {
	uk := e2eOptions{region: "uk", namedHosts: true, consumers: 60,
		force: func(v *lpsim.Variants) { v.HostStyle = lpsim.HostDash }}
	t.Run("UK names", func(t *testing.T) {
		e := newE2E(t, uk)
		chats, convs := e.chatsOf(lpsim.DemoCustomerID), e.convsOf(lpsim.DemoCustomerID, "")
		name := e.submit(customerID(lpsim.DemoCustomerID))
		runToCompletion(e, name)
		want := map[string]string{}
		for _, svc := range []string{lpsim.ServiceEngHist, lpsim.ServiceMsgHist, lpsim.ServiceSentinel, lpsim.ServiceRTBF} {
			want[svc] = lpsim.NamedHost("uk", svc, lpsim.HostDash)
		}
		called := map[string]bool{}
		for _, c := range e.sim.Calls() {
			if c.Service == lpsim.ServiceDomain {
				continue
			}
			host, _, _ := net.SplitHostPort(c.Host)
			if host != want[c.Service] {
				t.Errorf("%s %s reached LivePerson as %s, want %s", c.Service, c.Op, c.Host, want[c.Service])
			}
			called[host] = true
		}
		for svc, h := range want {
			if !called[h] {
				t.Errorf("%s was never called as %s", svc, h)
			}
		}
		if !strings.HasPrefix(want[lpsim.ServiceMsgHist], "lo-a.") {
			t.Fatalf("the UK messaging host is %s: the test shows nothing of the dash style", want[lpsim.ServiceMsgHist])
		}
		if v := e.residencyViolations(); len(v) != 0 {
			t.Errorf("the residency guard refused hosts of a UK account: %q", v)
		}
		e.wantMasked(chats, convs, true)
	})
	t.Run("a US name refused", func(t *testing.T) {
		e := newE2E(t, uk)
		_, port, _ := net.SplitHostPort(e.srv.Listener.Addr().String())
		us := net.JoinHostPort(lpsim.NamedHost("us", lpsim.ServiceMsgHist, lpsim.HostDash), port)
		e.sim.AddFault(fault(lpsim.ServiceDomain, "", lpsim.Fault{Kind: lpsim.FaultWrongHost, Host: us,
			ForService: lpsim.ServiceMsgHist}))
		name := e.submit(customerID(lpsim.DemoCustomerID), messagingOnly)
		wrongRegion(lpsim.ServiceMsgHist, "va")(e, name)
		if got, want := e.bodies(), []string{body("conversation", e.convsOf(lpsim.DemoCustomerID, ""))}; !slices.Equal(got, want) {
			t.Errorf("LivePerson deletion requests = %v, want %v", got, want)
		}
	})
}

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// finalChecks run after every test, once the pipeline has stopped: no deletion body was
// created twice at LivePerson, no deletion request holds a record that is not the data of a
// subject submitted (exact identifier match, the subject's consumer, or named explicitly), no
// subject identifier reached the log, and the Watch history holds only moves the transition
// table allows.
func (e *e2eEnv) finalChecks() {
	t := e.t
	e.checkHistory()
	if st := e.sim.Stats(); len(st.Duplicates) != 0 {
		t.Errorf("LivePerson deletion bodies created more than once: %v", st.Duplicates)
	}
	for _, d := range e.sim.Deletions(e2eAcct) {
		for _, id := range d.IDs {
			if !e.owned(d.Kind, id) {
				t.Errorf("LivePerson request %d (%s) holds %s %s, which carries no submitted subject's identifier",
					d.ID, d.Body, d.Kind, id)
			}
		}
	}
	logs := e.log.String()
	e.mu.Lock()
	for _, s := range e.subjects {
		if s.Value != "" && strings.Contains(logs, s.Value) {
			t.Errorf("a subject identifier appears in erasured's log")
		}
	}
	e.mu.Unlock()
	if t.Failed() {
		if len(logs) > 20000 {
			logs = "…" + logs[len(logs)-20000:]
		}
		t.Logf("erasured log:\n%s", logs)
	}
}

// owned reports whether a record is the data of one of the submitted subjects, judged on the
// records as loaded (before masking).
func (e *e2eEnv) owned(kind, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.subjects {
		if s.Kind == service.SubjectTargets {
			if (kind == "engagement" && slices.Contains(s.EngagementIDs, id)) ||
				(kind == "conversation" && slices.Contains(s.ConversationIDs, id)) {
				return true
			}
			continue
		}
		consumers := e.consumersOf(s)
		switch kind {
		case "engagement":
			if c, ok := e.chats[id]; ok && carries(s, c.CustomerID, c.Email, c.Phone) {
				return true
			}
		case "conversation":
			if c, ok := e.convs[id]; ok && (carries(s, c.CustomerID, c.Email, c.Phone) || consumers[c.ConsumerID]) {
				return true
			}
		case "consumer":
			if consumers[id] {
				return true
			}
		}
	}
	return false
}

// consumersOf returns the messaging consumers of a subject: itself for a consumer id, else the
// consumers of the conversations carrying its identifier. Caller holds e.mu.
func (e *e2eEnv) consumersOf(s service.Subject) map[string]bool {
	out := map[string]bool{}
	if s.Kind == service.SubjectConsumerID {
		out[s.Value] = true
		return out
	}
	for _, c := range e.convs {
		if carries(s, c.CustomerID, c.Email, c.Phone) {
			out[c.ConsumerID] = true
		}
	}
	return out
}

// carries is the exact match of a subject's identifier against a record's attributes.
func carries(s service.Subject, customerID, email, phone string) bool {
	digits := func(v string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, v)
	}
	switch s.Kind {
	case service.SubjectCustomerID:
		return customerID == s.Value
	case service.SubjectEmail:
		return email != "" && strings.EqualFold(strings.TrimSpace(email), strings.TrimSpace(s.Value))
	case service.SubjectPhone:
		return phone != "" && digits(phone) == digits(s.Value)
	}
	return false
}

// addChat adds a chat to LivePerson after the start, remembering it for the ownership check.
func (e *e2eEnv) addChat(c lpsim.Chat) {
	e.t.Helper()
	if err := e.sim.AddChat(c); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.chats[c.EngagementID] = c
	e.mu.Unlock()
}

// chatIDs returns the sorted ids of the loaded chats that keep says.
func (e *e2eEnv) chatIDs(keep func(lpsim.Chat) bool) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return keysWhere(e.chats, keep)
}

// convIDs returns the sorted ids of the loaded conversations that keep says.
func (e *e2eEnv) convIDs(keep func(lpsim.Conversation) bool) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return keysWhere(e.convs, keep)
}

// keysWhere returns the sorted keys of m whose values keep says.
func keysWhere[V any](m map[string]V, keep func(V) bool) []string {
	var out []string
	for id, v := range m {
		if keep(v) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Submit options.
func chatOnly(r *service.SubmitRequest) { r.Channels = []service.Channel{service.ChannelChat} }
func messagingOnly(r *service.SubmitRequest) {
	r.Channels = []service.Channel{service.ChannelMessaging}
}
func withProfile(r *service.SubmitRequest) { r.EraseConsumerProfile = true }
func manual(r *service.SubmitRequest)      { r.Confirmation = service.ConfirmationManual }

func customerID(v string) service.Subject {
	return service.Subject{Kind: service.SubjectCustomerID, Value: v}
}
func email(v string) service.Subject { return service.Subject{Kind: service.SubjectEmail, Value: v} }

// submit submits an erasure of subject as principal "alice" and returns its name.
func (e *e2eEnv) submit(s service.Subject, opts ...func(*service.SubmitRequest)) string {
	e.t.Helper()
	res := e.submitRequest(s, opts...)
	if res.Deduplicated {
		e.t.Fatalf("Submit was deduplicated into %s", res.Erasure.Name())
	}
	return res.Erasure.Name()
}

// submitRequest submits as principal "alice" and returns what Submit answered; every
// identifier submitted (subject and aliases) is remembered for the ownership check.
func (e *e2eEnv) submitRequest(s service.Subject, opts ...func(*service.SubmitRequest)) service.SubmitResult {
	e.t.Helper()
	e.mu.Lock()
	e.seq++
	req := service.SubmitRequest{RequestID: fmt.Sprintf("00000000-0000-4000-8000-%012d", e.seq), AccountID: e2eAcct,
		Subject: s, ExternalRef: fmt.Sprintf("TICKET-%d", e.seq)}
	e.mu.Unlock()
	for _, o := range opts {
		o(&req)
	}
	e.mu.Lock()
	e.subjects = append(append(e.subjects, s), req.Aliases...)
	e.mu.Unlock()
	res, err := e.svc.Submit(service.WithPrincipal(context.Background(), "alice"), req)
	if err != nil {
		e.t.Fatalf("Submit(%s) = %v", req.RequestID, err)
	}
	return res
}

// withAliases adds further identifiers of the same person to a Submit.
func withAliases(aliases ...service.Subject) func(*service.SubmitRequest) {
	return func(r *service.SubmitRequest) { r.Aliases = append(r.Aliases, aliases...) }
}

// advance moves simulated time (LivePerson's and erasured's) and wakes the pipeline.
func (e *e2eEnv) advance(d time.Duration) {
	e.clock.Advance(d)
	e.pipe.Wake()
}

func (e *e2eEnv) status(name string) service.Erasure {
	e.t.Helper()
	got, err := e.svc.Status(context.Background(), name)
	if err != nil {
		e.t.Fatalf("Status(%s) = %v", name, err)
	}
	return got
}

// waitState waits until the erasure is in state want.
func (e *e2eEnv) waitState(name string, want service.State) service.Erasure {
	e.t.Helper()
	return e.waitFor(name, want.String(), func(x service.Erasure) bool { return x.State == want })
}

// waitFor polls the erasure's status until ok holds; it fails after e2eWait, or at once when the
// erasure reached a final state that does not satisfy ok.
func (e *e2eEnv) waitFor(name, what string, ok func(service.Erasure) bool) service.Erasure {
	e.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		got := e.status(name)
		if ok(got) {
			return got
		}
		if got.State.Final() || time.Now().After(deadline) {
			e.t.Fatalf("%s: waited for %s; it is %s, blocked_on %s, last_error %q, next_attempt %v (now %v)",
				name, what, got.State, blockedName(got.BlockedOn), got.LastError, got.NextAttemptTime, e.clock.Now())
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// waitUntil polls cond (not about one erasure) until it holds or e2eWait passes.
func (e *e2eEnv) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("waited %v for %s", e2eWait, what)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// waitLogged waits until erasured has logged msg at least n times: the pipeline logs a failed
// step after it committed the step's retry, so this is a point where the retry is scheduled.
func (e *e2eEnv) waitLogged(msg string, n int) {
	e.t.Helper()
	e.waitUntil(fmt.Sprintf("%d log lines %q", n, msg), func() bool { return e.log.count(msg) >= n })
}

func blockedName(b service.BlockedOn) string {
	names := map[service.BlockedOn]string{service.BlockedNone: "NONE", service.BlockedQuota: "QUOTA",
		service.BlockedOpenConversations: "OPEN_CONVERSATIONS", service.BlockedSearchLag: "SEARCH_LAG",
		service.BlockedLivePersonUnavailable: "LIVEPERSON_UNAVAILABLE", service.BlockedConfirmation: "CONFIRMATION",
		service.BlockedIdentifierUnsearchable: "IDENTIFIER_UNSEARCHABLE",
		service.BlockedDeletionOutcomeUnknown: "DELETION_OUTCOME_UNKNOWN"}
	if n, ok := names[b]; ok {
		return n
	}
	return fmt.Sprint(int(b))
}

// deleteAtLivePerson takes erasures whose requests LivePerson holds (SUBMITTED) through
// LivePerson's timeline: past the cancel window (DELETING), then past the deletion window
// (DONE, verified, final sweep: COMPLETED).
func (e *e2eEnv) deleteAtLivePerson(names ...string) {
	e.t.Helper()
	e.advance(e2eCancelWindow + time.Hour)
	for _, n := range names {
		e.waitState(n, service.StateDeleting)
	}
	e.advance(e2eDeletionTime)
	for _, n := range names {
		e.wantCompleted(n)
	}
}

// wantCompleted waits for COMPLETED and checks the receipt: it names the erasure and its
// LivePerson requests, and verifies against the service's public key.
func (e *e2eEnv) wantCompleted(name string) service.Erasure {
	e.t.Helper()
	got := e.waitState(name, service.StateCompleted)
	if got.Receipt == nil {
		e.t.Fatalf("%s: COMPLETED without a receipt", name)
	}
	if err := service.VerifyReceipt(*got.Receipt, e.keys.PublicKey()); err != nil {
		e.t.Errorf("VerifyReceipt(%s) = %v, want nil", name, err)
	}
	var ids []int64
	for _, q := range got.LPRequests {
		ids = append(ids, q.ID)
	}
	if r := got.Receipt; r.Erasure != name || r.AccountID != e2eAcct || !slices.Equal(r.LPRequestIDs, ids) {
		e.t.Errorf("%s: receipt names %s/%s with requests %v; want the erasure, its account and requests %v",
			name, r.Erasure, r.AccountID, r.LPRequestIDs, ids)
	}
	if got.BlockedOn != service.BlockedNone || got.LastError != "" {
		e.t.Errorf("%s: COMPLETED but blocked_on %s, last_error %q", name, blockedName(got.BlockedOn), got.LastError)
	}
	return got
}

// bodies returns LivePerson's deletion requests as "kind:[sorted ids]", oldest first.
func (e *e2eEnv) bodies() []string {
	var out []string
	for _, d := range e.sim.Deletions(e2eAcct) {
		out = append(out, body(d.Kind, d.IDs))
	}
	return out
}

func body(kind string, ids []string) string {
	return fmt.Sprintf("%s:%v", kind, slices.Sorted(slices.Values(ids)))
}

// calls returns the simulator's logged calls of a service and operation ("" = any).
func (e *e2eEnv) calls(svc, op string) []lpsim.Call { return e.sim.CallsTo(svc, op) }

// e2eInspectToken lets a test look at LivePerson directly (not erasured's traffic).
const e2eInspectToken = "e2e-inspect"

// fuzzyChatHits runs LivePerson's own keyword search, as erasured does, and returns the ids of
// the chats it answers: what exact filtering has to sort out.
func (e *e2eEnv) fuzzyChatHits(keyword string, from, to time.Time) []string {
	e.t.Helper()
	c, err := liveperson.New(
		liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(e.srv.URL, "http://"), Insecure: true}),
		liveperson.WithAuth(liveperson.StaticBearer{"*": e2eInspectToken}),
		liveperson.WithSource("e2e-inspect"),
		liveperson.WithHTTPClient(e.srv.Client()))
	if err != nil {
		e.t.Fatal(err)
	}
	es, err := c.SearchEngagements(context.Background(), e2eAcct, liveperson.EngagementQuery{From: from, To: to, Keyword: keyword})
	if err != nil {
		e.t.Fatalf("SearchEngagements = %v", err)
	}
	var out []string
	for _, x := range es {
		out = append(out, x.EngagementID)
	}
	return out
}

// wantMasked checks whether LivePerson masked each listed record (chats and conversations):
// its attributes and every line the consumer wrote.
func (e *e2eEnv) wantMasked(chats, convs []string, masked bool) {
	e.t.Helper()
	for _, id := range chats {
		c, ok := e.sim.Chat(id)
		if !ok {
			e.t.Errorf("chat %s is gone", id)
			continue
		}
		if got := isMasked(c.Transcript, c.CustomerID, c.Email); got != masked {
			e.t.Errorf("chat %s masked = %v, want %v", id, got, masked)
		}
	}
	for _, id := range convs {
		c, ok := e.sim.Conversation(id)
		if !ok {
			e.t.Errorf("conversation %s is gone", id)
			continue
		}
		if got := isMasked(c.Transcript, c.CustomerID, c.Email); got != masked {
			e.t.Errorf("conversation %s masked = %v, want %v", id, got, masked)
		}
	}
}

// isMasked: every consumer line and every attribute shows LivePerson's mask (a record without
// attributes is judged on its lines alone).
func isMasked(lines []lpsim.Line, attrs ...string) bool {
	consumer := 0
	for _, l := range lines {
		if l.Author == lpsim.AuthorConsumer {
			consumer++
			if l.Text != lpsim.DeletedMarker {
				return false
			}
		}
	}
	return consumer > 0 && !slices.ContainsFunc(attrs, func(a string) bool { return a != "" && a != lpsim.DeletedMarker })
}

// The demo subjects' records, as Generate lays them out.
func (e *e2eEnv) chatsOf(customer string) []string {
	return e.chatIDs(func(c lpsim.Chat) bool { return c.CustomerID == customer })
}

func (e *e2eEnv) convsOf(customer string, status string) []string {
	return e.convIDs(func(c lpsim.Conversation) bool {
		return c.CustomerID == customer && (status == "" || c.Status == status)
	})
}

// planOf returns the erasure's plan as "kind:id:status" entries, sorted.
func (e *e2eEnv) planOf(name string) (service.Plan, []string) {
	e.t.Helper()
	res, err := e.svc.Resolve(context.Background(), name, nil)
	if err != nil {
		e.t.Fatalf("Resolve(%s) = %v", name, err)
	}
	var out []string
	for _, g := range res.Plan.Groups {
		for _, r := range g.Records {
			out = append(out, g.Kind.String()+":"+r.ID+":"+statusName(r.Status))
		}
	}
	slices.Sort(out)
	return res.Plan, out
}

func statusName(s service.TargetStatus) string {
	return map[service.TargetStatus]string{service.TargetFound: "FOUND", service.TargetDeferredOpen: "DEFERRED_OPEN",
		service.TargetQueued: "QUEUED", service.TargetSubmitted: "SUBMITTED", service.TargetDone: "DONE",
		service.TargetVerified: "VERIFIED", service.TargetNotFound: "NOT_FOUND"}[s]
}

func planEntries(kind, status string, ids ...string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, kind+":"+id+":"+status)
	}
	return out
}

func sorted(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return out
}

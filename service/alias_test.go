package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

func email(v string) Subject    { return Subject{Kind: SubjectEmail, Value: v} }
func phone(v string) Subject    { return Subject{Kind: SubjectPhone, Value: v} }
func consumer(v string) Subject { return Subject{Kind: SubjectConsumerID, Value: v} }

func rid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// TestAliasesSearchedPerIdentifier: resolution searches with every identifier, each in the
// attribute area it belongs to, follows every consumer found or named, and keeps records that
// match any identifier exactly.
func TestAliasesSearchedPerIdentifier(t *testing.T) {
	e := newPipeEnv(t)
	f := e.lp
	f.chats = []ChatRecord{
		{EngagementID: "1", Start: e.ago(40 * 24 * time.Hour), CustomerIDs: []string{"ABC-123"}},
		{EngagementID: "2", Start: e.ago(90 * 24 * time.Hour), Emails: []string{"Jane@Example.com"}},
		{EngagementID: "3", Start: e.ago(20 * 24 * time.Hour), Emails: []string{"jane@example.co"}}, // near miss
	}
	f.convs = []ConversationRecord{
		{ConversationID: "c-1", Start: e.ago(100 * 24 * time.Hour), ConsumerIDs: []string{"k-5"}, Phones: []string{"202 555 0199"}},
		{ConversationID: "c-2", Start: e.ago(300 * 24 * time.Hour), ConsumerIDs: []string{"k-5"}}, // no attribute
		{ConversationID: "c-3", Start: e.ago(10 * 24 * time.Hour), ConsumerIDs: []string{"k-77"}},
		{ConversationID: "c-4", Start: e.ago(15 * 24 * time.Hour), ConsumerIDs: []string{"k-8"}, CustomerIDs: []string{"ABC-1234"}}, // near miss
	}
	req := submitReq(rid(1), "1234", customer("ABC-123"))
	req.Aliases = []Subject{email("jane@example.com"), phone("202 555 0199"), consumer("k-77")}
	name := e.submit(req).Erasure.Name()
	e.settle()

	want := []string{"conversation:c-1:QUEUED", "conversation:c-2:QUEUED", "conversation:c-3:QUEUED",
		"engagement:1:QUEUED", "engagement:2:QUEUED"}
	if got := planEntries(e.plan(name)); !slices.Equal(got, want) {
		t.Errorf("plan = %v, want %v", got, want)
	}
	count := func(calls []string) map[string]int {
		m := map[string]int{}
		for _, c := range calls {
			m[c]++
		}
		return m
	}
	chats := count(f.searchCalls("chat:"))
	if len(chats) != 3 || chats["chat:ABC-123"] != 15 || chats["chat:jane@example.com"] != 15 || chats["chat:202 555 0199"] != 15 {
		t.Errorf("chat searches = %v, want 15 windows for each of the three attribute identifiers", chats)
	}
	sdes := count(f.searchCalls("sde:"))
	if len(sdes) != 3 || sdes["sde:ABC-123|"] != 5 || sdes["sde:|jane@example.com"] != 5 || sdes["sde:|202 555 0199"] != 5 {
		t.Errorf("messaging searches = %v, want customerInfo for the customer id, personalInfo for e-mail and phone, 5 windows each", sdes)
	}
	if got := f.searchCalls("consumer:"); !slices.Equal(got, []string{"consumer:k-5", "consumer:k-77"}) {
		t.Errorf("by-consumer searches = %v, want the consumer found and the consumer id named", got)
	}
}

// TestAliasDedupAndJoin: an open erasure that shares any identifier with a Submit is the same
// subject. A Submit that brings identifiers the erasure lacks adds them.
func TestAliasDedupAndJoin(t *testing.T) {
	e := newEnv(t)
	req := submitReq(rid(1), "1234", email("ann@example.com"))
	req.Aliases = []Subject{phone("+1 202 555 0100")}
	first := e.submit(req)
	if first.Erasure.AliasCount != 1 {
		t.Fatalf("alias_count = %d, want 1", first.Erasure.AliasCount)
	}

	// Its alias names it: deduplicated, nothing new.
	byAlias := e.submit(submitReq(rid(2), "1234", phone("12025550100")))
	if !byAlias.Deduplicated || byAlias.Erasure.ID != first.Erasure.ID || byAlias.Erasure.Revision != first.Erasure.Revision {
		t.Errorf("Submit by the alias = %s dedup=%v rev %d, want %s unchanged", byAlias.Erasure.ID, byAlias.Deduplicated, byAlias.Erasure.Revision, first.Erasure.ID)
	}

	// A new identifier joins it.
	join := submitReq(rid(3), "1234", customer("CUST-9"))
	join.Aliases = []Subject{email("ANN@example.com")}
	joined := e.submit(join)
	if !joined.Deduplicated || joined.Erasure.ID != first.Erasure.ID || joined.Erasure.AliasCount != 2 || joined.Erasure.Revision <= first.Erasure.Revision {
		t.Fatalf("joining Submit = %s dedup=%v aliases %d rev %d, want %s with 2 aliases at a new revision",
			joined.Erasure.ID, joined.Deduplicated, joined.Erasure.AliasCount, joined.Erasure.Revision, first.Erasure.ID)
	}
	ids, err := e.svc.identities(first.Erasure.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Subject{email("ann@example.com"), phone("+1 202 555 0100"), customer("CUST-9")}, ids); diff != "" {
		t.Errorf("identities: want the subject, its alias, then the joined customer id (-want +got):\n%s", diff)
	}
	if again := e.submit(join); again.Erasure.ID != first.Erasure.ID || again.Erasure.AliasCount != 2 {
		t.Errorf("retry of the joining Submit = %s aliases %d", again.Erasure.ID, again.Erasure.AliasCount)
	}

	// The index is rebuilt from the stored aliases.
	e.restart()
	if got := e.submit(submitReq(rid(4), "1234", customer("CUST-9"))); !got.Deduplicated || got.Erasure.ID != first.Erasure.ID {
		t.Errorf("Submit by the joined identifier after restart = %s dedup=%v, want %s", got.Erasure.ID, got.Deduplicated, first.Erasure.ID)
	}
	if got := e.submit(submitReq(rid(5), "5678", customer("CUST-9"))); got.Deduplicated {
		t.Error("an identifier of another account's erasure was deduplicated")
	}

	// Once it ends, none of its identifiers names it any more.
	if _, err := e.svc.Cancel(context.Background(), first.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	for i, s := range []Subject{email("ann@example.com"), phone("+12025550100"), customer("CUST-9")} {
		if got := e.submit(submitReq(rid(10+i), "1234", s)); got.Deduplicated {
			t.Errorf("Submit for %d after the erasure ended was deduplicated onto %s", i, got.Erasure.ID)
		}
	}
}

// TestAliasCap: at most 10 aliases, in one Submit or after joins.
func TestAliasCap(t *testing.T) {
	e := newEnv(t)
	ten := make([]Subject, 10)
	for i := range ten {
		ten[i] = customer(fmt.Sprint("A-", i))
	}
	req := submitReq(rid(1), "1234", email("max@example.com"))
	req.Aliases = ten
	first := e.submit(req)
	if first.Erasure.AliasCount != 10 {
		t.Fatalf("alias_count = %d, want 10", first.Erasure.AliasCount)
	}
	more := submitReq(rid(2), "1234", customer("A-0"))
	more.Aliases = []Subject{phone("+1 202 555 0111")}
	_, err := e.svc.Submit(context.Background(), more)
	var se *Error
	if !asError(err, &se) || se.Kind != KindFailedPrecondition || se.Reason != "TOO_MANY_ALIASES" {
		t.Fatalf("join past the cap = %v, want FAILED_PRECONDITION TOO_MANY_ALIASES", err)
	}
	if got, _ := e.svc.Status(context.Background(), first.Erasure.Name()); got.Revision != first.Erasure.Revision || got.AliasCount != 10 {
		t.Errorf("after a refused join: rev %d aliases %d, want unchanged", got.Revision, got.AliasCount)
	}
	// Bringing nothing new is not a join, whatever the count.
	if got := e.submit(submitReq(rid(3), "1234", customer("A-9"))); !got.Deduplicated {
		t.Error("a Submit with a known identifier was not deduplicated")
	}
}

func TestSubmitAliasValidation(t *testing.T) {
	e := newEnv(t)
	eleven := make([]Subject, 11)
	for i := range eleven {
		eleven[i] = customer(fmt.Sprint("A-", i))
	}
	targets := Subject{Kind: SubjectTargets, ConversationIDs: []string{"c-1"}}
	tests := []struct {
		name    string
		subject Subject
		aliases []Subject
		field   string
	}{
		{"more than 10", customer("X"), eleven, "aliases"},
		{"targets as alias", customer("X"), []Subject{targets}, "aliases[0]"},
		{"aliases with targets", targets, []Subject{customer("X")}, "aliases"},
		{"repeats the subject", email("Bo@Example.com"), []Subject{customer("Y"), email(" bo@example.com")}, "aliases[1]"},
		{"repeats an alias", customer("X"), []Subject{phone("+1 202 555 0100"), phone("12025550100")}, "aliases[1]"},
		{"empty alias", customer("X"), []Subject{{Kind: SubjectEmail}}, "aliases[0]"},
	}
	for i, tt := range tests {
		req := submitReq(rid(i+1), "1234", tt.subject)
		req.Aliases = tt.aliases
		_, err := e.svc.Submit(context.Background(), req)
		var se *Error
		if !asError(err, &se) || se.Kind != KindInvalid || se.Reason != "INVALID_REQUEST" || se.Metadata["field"] != tt.field {
			t.Errorf("%s: Submit = %v, want INVALID_REQUEST on %s", tt.name, err, tt.field)
			continue
		}
		if strings.Contains(se.Message, "example.com") || strings.Contains(se.Message, "555") {
			t.Errorf("%s: error %q echoes an identifier", tt.name, se.Message)
		}
	}
}

// TestAliasPayloadHash: the payload hash covers aliases in any order, and without aliases it is
// what it was before aliases existed.
func TestAliasPayloadHash(t *testing.T) {
	e := newEnv(t)
	req := submitReq(rid(1), "1234", customer("X"))
	req.Aliases = []Subject{email("a@example.com"), phone("+1 202 555 0100")}
	first := e.submit(req)
	reordered := req
	reordered.Aliases = []Subject{req.Aliases[1], req.Aliases[0]}
	if got := e.submit(reordered); got.Erasure.ID != first.Erasure.ID {
		t.Errorf("the same aliases in another order = %s, want %s", got.Erasure.ID, first.Erasure.ID)
	}
	other := req
	other.Aliases = []Subject{email("a@example.com")}
	if _, err := e.svc.Submit(context.Background(), other); KindOf(err) != KindConflict {
		t.Errorf("the same request_id with other aliases = %v, want Conflict", err)
	}

	plain := submitReq(rid(2), "1234", customer("Y"))
	old, err := json.Marshal(struct {
		Account  string
		Subject  Subject
		Channels []Channel
		Profile  bool
		Received int64
		Conf     Confirmation
		Ref      string
	}{plain.AccountID, plain.Subject, nil, false, plain.ReceivedTime.UnixNano(), 0, ""})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.payloadHash(plain)
	if want := e.svc.keys.requestHash(append(old, "|unset"...)); err != nil || got != want {
		t.Errorf("payload hash without aliases = %s, %v; want the hash requests had before aliases", got, err)
	}
}

// TestAliasesSealed: aliases are stored sealed with the subject, never in plaintext, and a
// record sealed before aliases existed still unseals.
func TestAliasesSealed(t *testing.T) {
	e := newEnv(t)
	req := submitReq(rid(1), "1234", customer("CANARY-SUBJ-51"))
	req.Aliases = []Subject{email("canary.alias.51@example.org"), phone("+44 7700 900551")}
	res := e.submit(req)
	join := submitReq(rid(2), "1234", customer("CANARY-SUBJ-51"))
	join.Aliases = []Subject{customer("CANARY-JOIN-51")}
	e.submit(join)

	// A record as sealed before aliases existed: the subject alone.
	old := e.submit(submitReq(rid(3), "1234", customer("OLD-51")))
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		r, err := getRecord(tx, old.Erasure.ID)
		if err != nil {
			return err
		}
		key, err := e.svc.dataKeyOf(tx, r)
		if err != nil {
			return err
		}
		plain, _ := json.Marshal(customer("OLD-51"))
		if r.Sealed, err = seal(key, plain, []byte(r.ID)); err != nil {
			return err
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Put(schema.Erasures, []byte(r.ID), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := e.svc.identities(old.Erasure.ID); err != nil || len(ids) != 1 || ids[0].Value != "OLD-51" {
		t.Errorf("identities of a record sealed before aliases = %+v, %v", ids, err)
	}
	if ids, err := e.svc.identities(res.Erasure.ID); err != nil || len(ids) != 4 {
		t.Errorf("identities = %d, %v; want the subject and three aliases", len(ids), err)
	}

	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{"CANARY-SUBJ-51", "canary.alias.51", "7700 900551", "7700900551", "CANARY-JOIN-51"} {
		if bytes.Contains(raw, []byte(needle)) {
			t.Errorf("database file contains %q in plaintext", needle)
		}
	}
	e.open()
}

// TestPreviewWithAliases: a preview searches every identifier and lists them by fingerprint.
func TestPreviewWithAliases(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.chats = []ChatRecord{
		{EngagementID: "1", Start: e.ago(40 * 24 * time.Hour), CustomerIDs: []string{"P-1"}},
		{EngagementID: "2", Start: e.ago(50 * 24 * time.Hour), Emails: []string{"pat@example.com"}},
	}
	ctx := context.Background()
	plan, err := e.svc.Preview(ctx, "1234", customer("P-1"), []Channel{ChannelChat}, email("pat@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if got := planEntries(plan); !slices.Equal(got, []string{"engagement:1:FOUND", "engagement:2:FOUND"}) {
		t.Errorf("preview plan = %v", got)
	}
	// A preview has no erasure: its fingerprints are its own, neither the root ones nor those
	// of another preview.
	again, err := e.svc.Preview(ctx, "1234", customer("P-1"), []Channel{ChannelChat}, email("pat@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{e.svc.keys.Fingerprint("1234", customer("P-1")), e.svc.keys.Fingerprint("1234", email("pat@example.com"))}
	ids := plan.Identifiers
	if len(ids) != 2 || ids[0].Kind != SubjectCustomerID || ids[1].Kind != SubjectEmail || ids[0].Fingerprint == ids[1].Fingerprint {
		t.Fatalf("preview identifiers = %+v, want the customer id and the e-mail, told apart", ids)
	}
	for i, id := range ids {
		if len(id.Fingerprint) != 64 || slices.Contains(roots, id.Fingerprint) || id.Fingerprint == again.Identifiers[i].Fingerprint {
			t.Errorf("preview identifier %d has fingerprint %s: want one of its own", i, id.Fingerprint)
		}
	}
	if _, err := e.svc.Preview(ctx, "1234", customer("P-1"), nil, customer("P-1")); KindOf(err) != KindInvalid {
		t.Errorf("preview with an alias repeating the subject = %v, want Invalid", err)
	}
}

// TestAliasBridgesTwoErasures: a Submit whose identifiers belong to two open erasures joins the
// first (the one its subject names) and brings it the other's identifier; that identifier then
// names both, and still names the first after the second ends.
func TestAliasBridgesTwoErasures(t *testing.T) {
	e := newEnv(t)
	a := e.submit(submitReq(rid(1), "1234", email("lee@example.com")))
	b := e.submit(submitReq(rid(2), "1234", phone("+1 202 555 0123")))
	bridge := submitReq(rid(3), "1234", email("lee@example.com"))
	bridge.Aliases = []Subject{phone("+1 202 555 0123")}
	if got := e.submit(bridge); got.Erasure.ID != a.Erasure.ID || got.Erasure.AliasCount != 1 {
		t.Fatalf("bridging Submit = %s aliases %d, want %s with the phone added", got.Erasure.ID, got.Erasure.AliasCount, a.Erasure.ID)
	}
	if _, err := e.svc.Cancel(context.Background(), b.Erasure.Name(), "duplicate"); err != nil {
		t.Fatal(err)
	}
	if got := e.submit(submitReq(rid(4), "1234", phone("12025550123"))); !got.Deduplicated || got.Erasure.ID != a.Erasure.ID {
		t.Errorf("Submit by the phone after the other erasure ended = %s dedup=%v, want %s", got.Erasure.ID, got.Deduplicated, a.Erasure.ID)
	}
}

// TestConcurrentJoins: Submits that share one identifier and each bring another, all at once,
// make one erasure holding every identifier.
func TestConcurrentJoins(t *testing.T) {
	e := newEnv(t)
	const n = 8
	res := make([]SubmitResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req := submitReq(rid(i+1), "1234", customer(fmt.Sprint("J-", i)))
			req.Aliases = []Subject{email("shared@example.com")}
			r, err := e.svc.Submit(context.Background(), req)
			if err != nil {
				t.Errorf("Submit #%d: %v", i, err)
			}
			res[i] = r
		})
	}
	wg.Wait()
	created := 0
	for _, r := range res {
		if !r.Deduplicated {
			created++
		}
		if r.Erasure.ID != res[0].Erasure.ID {
			t.Errorf("Submits ended on different erasures: %s and %s", r.Erasure.ID, res[0].Erasure.ID)
		}
	}
	ids, err := e.svc.identities(res[0].Erasure.ID)
	if created != 1 || err != nil || len(ids) != n+1 {
		t.Errorf("%d erasures created, %d identifiers (%v); want 1 erasure with %d", created, len(ids), err, n+1)
	}
	got, _ := e.svc.Status(context.Background(), res[0].Erasure.Name())
	if got.AliasCount != n {
		t.Errorf("alias_count = %d, want %d", got.AliasCount, n)
	}
}

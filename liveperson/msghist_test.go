package liveperson_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/google/go-cmp/cmp"
)

func TestSearchConversations(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	day := 24 * time.Hour
	_ = e.sim.AddConversation(conversation("c-1", "p-1", "ABC-123", "jane.doe@example.com", t0.Add(-10*day)))
	_ = e.sim.AddConversation(conversation("c-2", "p-2", "ABC-1234", "jane.doe@example.org", t0.Add(-9*day)))
	other := conversation("c-3", "p-3", "QQQ-1", "q@example.net", t0.Add(-8*day))
	other.Name, other.Surname = "Quentin", "Quinn" // shares no name: must not match
	_ = e.sim.AddConversation(other)
	open := conversation("c-4", "p-1", "ABC-123", "jane.doe@example.com", t0.Add(-7*day))
	open.Status = "OPEN"
	_ = e.sim.AddConversation(open)

	got, err := e.c.SearchConversations(context.Background(), acct, liveperson.ConversationQuery{
		From: t0.Add(-80 * day), To: t0, CustomerInfo: "ABC-123", PersonalInfo: "jane.doe@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ConversationID+"/"+c.Status+"/"+c.ConsumerIDs()[0]+"/"+c.CustomerIDs[0])
	}
	if diff := cmp.Diff([]string{"c-1/CLOSE/p-1/ABC-123", "c-2/CLOSE/p-2/ABC-1234"}, ids); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
	if got[0].Consumers[0].FirstName != "Jane" || got[0].Emails[0] != "jane.doe@example.com" {
		t.Errorf("decoded = %+v", got[0])
	}
	call := e.sim.CallsTo(lpsim.ServiceMsgHist, lpsim.OpSearch)[0]
	q, _ := url.ParseQuery(call.Query)
	if q.Get("source") != "erasured-test" || q.Get("v") != "2" || q.Get("limit") != "100" || q.Get("offset") != "0" {
		t.Errorf("query = %s", call.Query)
	}
	var body struct {
		Status    []string          `json:"status"`
		SdeSearch map[string]string `json:"sdeSearch"`
		Content   []string          `json:"contentToRetrieve"`
	}
	_ = json.Unmarshal([]byte(call.Body), &body)
	want := map[string]string{"customerInfo": `"ABC-123"`, "personalInfo": `"jane.doe@example.com"`}
	if diff := cmp.Diff(want, body.SdeSearch); diff != "" || body.Status[0] != "CLOSE" ||
		!cmp.Equal(body.Content, liveperson.SearchContent) {
		t.Errorf("body = %s (sdeSearch diff %s)", call.Body, diff)
	}

	openHits, err := e.c.SearchConversations(context.Background(), acct, liveperson.ConversationQuery{
		From: t0.Add(-80 * day), To: t0, CustomerInfo: "ABC-123", Status: []string{"OPEN"}})
	if err != nil || len(openHits) != 1 || openHits[0].ConversationID != "c-4" {
		t.Errorf("open search = %v, %v; want c-4", openHits, err)
	}
}

func TestSearchConversationsWindow(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	_, err := e.c.SearchConversations(context.Background(), acct, liveperson.ConversationQuery{
		From: t0.Add(-90 * 24 * time.Hour), To: t0, CustomerInfo: "x"})
	wantKind(t, err, liveperson.KindInvalid)
	if n := len(e.sim.Calls()); n != 0 {
		t.Errorf("%d calls sent, want 0", n)
	}
}

func TestConversationsByConsumerAndID(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	for i := range 130 {
		start := t0.Add(-time.Duration(400-i) * 24 * time.Hour / 2)
		_ = e.sim.AddConversation(conversation(fmt.Sprintf("c-%03d", i), "p-9", "K-1", "k@example.com", start))
	}
	_ = e.sim.AddConversation(conversation("other", "p-8", "K-2", "x@example.com", t0.Add(-time.Hour)))
	got, err := e.c.ConversationsByConsumer(context.Background(), acct, "p-9", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 130 || got[0].ContentRead || got[0].Masked() {
		t.Errorf("by consumer: %d conversations (first %+v), want 130 read without messages", len(got), got[0])
	}
	calls := e.sim.CallsTo(lpsim.ServiceMsgHist, lpsim.OpByConsumer)
	if len(calls) != 2 {
		t.Fatalf("%d by-consumer calls, want 2 pages", len(calls))
	}
	if q, _ := url.ParseQuery(calls[1].Query); q.Get("offset") != "100" || q.Get("source") == "" {
		t.Errorf("second page query = %s", calls[1].Query)
	}

	ids := []string{"c-000", "c-001", "c-001", "missing"}
	byID, err := e.c.ConversationsByID(context.Background(), acct, ids, []string{"messageRecords", "sdes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byID) != 2 || len(byID[0].Messages) != 1 || !byID[0].ContentRead || !byID[0].Messages[0].Consumer {
		t.Errorf("by id = %+v, want c-000 and c-001 with messages", byID)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	_, err = e.c.ConversationsByID(context.Background(), acct, many, nil)
	wantKind(t, err, liveperson.KindInvalid)
}

func TestConversationsPartialRecord(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	_ = e.sim.AddConversation(conversation("c-1", "p-1", "PR-1", "pr@example.com", t0.Add(-24*time.Hour)))
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceMsgHist, Op: lpsim.OpByConsumer, Kind: lpsim.FaultPartialRecord, Times: 1})
	got, err := e.c.ConversationsByConsumer(context.Background(), acct, "p-1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Partial || len(got[0].CustomerIDs) != 1 {
		t.Errorf("got %+v, want the full record", got)
	}
	if n := len(e.sim.CallsTo(lpsim.ServiceMsgHist, lpsim.OpByID)); n != 1 {
		t.Errorf("%d by-id re-reads, want 1", n)
	}
}

// TestDecodingQuirks runs the client against every documented variant.
func TestDecodingQuirks(t *testing.T) {
	e := newEnv(t, lpsim.Config{Quirks: lpsim.Quirks{ParticipantsKey: "consumerParticipant", SiteIDKey: "siteId",
		GetByIDObject: true, RequestIDAsText: true, DeleteJSONObject: true}})
	_ = e.sim.AddConversation(conversation("c-1", "p-1", "Q-1", "q@example.com", t0.Add(-24*time.Hour)))
	got, err := e.c.ConversationsByID(context.Background(), acct, []string{"c-1"}, nil)
	if err != nil || len(got) != 1 || len(got[0].Consumers) != 1 || got[0].Consumers[0].ID != "p-1" {
		t.Fatalf("by id with consumerParticipant = %+v, %v", got, err)
	}
	r, err := e.c.CreateDeletion(context.Background(), acct, liveperson.KindConversation, []string{"c-1"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.c.GetDeletion(context.Background(), acct, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	kind, ids, err := g.Targets()
	if g.SiteID != acct || g.ID != r.ID || g.Status != liveperson.StatusNotStarted || err != nil ||
		kind != liveperson.KindConversation || len(ids) != 1 {
		t.Errorf("get = %+v (targets %v %v %v)", g, kind, ids, err)
	}
}

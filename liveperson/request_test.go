package liveperson_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/google/go-cmp/cmp"
)

const (
	ehPath = "/interaction_history/api/account/" + acct + "/interactions/search"
	engID  = "207623244295067780" // more digits than a float64 keeps
)

// ehAnswer is an Engagement History page of one chat.
func ehAnswer(id string, partial bool) string {
	return `{"_metadata":{"count":1},"interactionHistoryRecords":[{"info":{"engagementId":"` + id +
		`","isPartial":` + map[bool]string{true: "true", false: "false"}[partial] + `},` +
		`"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"C-1"}}}]},` +
		`"transcript":{"lines":[{"text":"hello","source":"visitor"}]}}]}`
}

// byIDBody is the part of an Engagement History body a by-id read sets.
type byIDBody struct {
	EngagementID json.Number `json:"engagementId"`
	Area         *struct {
		Types []string `json:"types"`
	} `json:"keyword_search_area"`
	Start struct{ From, To int64 } `json:"start"`
}

func decodeByID(t *testing.T, body string) (byIDBody, map[string]json.RawMessage) {
	t.Helper()
	var b byIDBody
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	return b, raw
}

// TestEngagementByIDBody: a by-id read sends the id as a JSON number with all
// its digits and the search area marked required; an id that is not a
// number is refused before anything is sent.
func TestEngagementByIDBody(t *testing.T) {
	rec, c := newRecorder(t, func(recorded) string { return ehAnswer(engID, false) })
	from := t0.Add(-7 * 24 * time.Hour)
	got, err := c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{From: from, To: t0, EngagementID: engID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].EngagementID != engID || !got[0].ContentRead {
		t.Errorf("by id = %+v, want the chat with its transcript", got)
	}
	calls := rec.Calls()
	if len(calls) != 1 || calls[0].Path != ehPath {
		t.Fatalf("calls = %+v, want one search", calls)
	}
	b, raw := decodeByID(t, calls[0].Body)
	if !bytes.Equal(raw["engagementId"], []byte(engID)) {
		t.Errorf("engagementId sent as %s, want the number %s", raw["engagementId"], engID)
	}
	if b.Area == nil || !cmp.Equal(b.Area.Types, liveperson.DefaultKeywordAreas) {
		t.Errorf("keyword_search_area = %s, want the default areas", raw["keyword_search_area"])
	}
	if _, ok := raw["keyword"]; ok {
		t.Errorf("by-id body has a keyword: %s", calls[0].Body)
	}

	for _, id := range []string{"ABC", "12 3", "-1", "0123", "1e5", "１２３"} {
		_, err := c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{From: from, To: t0, EngagementID: id})
		if liveperson.KindOf(err) != liveperson.KindInvalid {
			t.Errorf("engagement id %q: %v, want KindInvalid", id, err)
		}
	}
	if n := len(rec.Calls()); n != 1 {
		t.Errorf("%d calls, want none for invalid ids", n-1)
	}
}

// TestEngagementPartialRecordReread: a record LivePerson marks partial is
// re-read by its id, in the search's window, with the id as a number.
func TestEngagementPartialRecordReread(t *testing.T) {
	rec, c := newRecorder(t, func(r recorded) string {
		return ehAnswer(engID, !strings.Contains(r.Body, "engagementId"))
	})
	from := t0.Add(-24 * time.Hour)
	got, err := c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{From: from, To: t0, Keyword: "C-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Partial || len(got[0].CustomerIDs) != 1 {
		t.Errorf("got %+v, want the full record", got)
	}
	calls := rec.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want the search and one re-read", len(calls))
	}
	b, raw := decodeByID(t, calls[1].Body)
	if b.EngagementID.String() != engID || raw["engagementId"][0] == '"' || b.Area == nil ||
		b.Start.From != from.UnixMilli() || b.Start.To != t0.UnixMilli() {
		t.Errorf("re-read body = %s", calls[1].Body)
	}
}

// TestMessagingRequests: every Messaging Interactions call asks for v=2 (the
// only version returning unauthenticated attributes) and names its content:
// searches the attributes, by-id reads the messages as well.
func TestMessagingRequests(t *testing.T) {
	const answer = `{"_metadata":{"count":0},"conversationHistoryRecords":[]}`
	rec, c := newRecorder(t, func(recorded) string { return answer })
	ctx := context.Background()
	search := []string{"consumerParticipants", "sdes", "unAuthSdes"}
	byID := []string{"consumerParticipants", "sdes", "unAuthSdes", "messageRecords"}
	for _, tc := range []struct {
		name    string
		call    func() error
		path    string
		content []string
	}{
		{"search", func() error {
			_, err := c.SearchConversations(ctx, acct, liveperson.ConversationQuery{From: t0.Add(-time.Hour), To: t0, CustomerInfo: "C-1"})
			return err
		}, "/conversations/search", search},
		{"by consumer", func() error {
			_, err := c.ConversationsByConsumer(ctx, acct, "p-1", nil, nil)
			return err
		}, "/conversations/consumer/search", search},
		{"by id", func() error {
			_, err := c.ConversationsByID(ctx, acct, []string{"c-1"}, nil)
			return err
		}, "/conversations/conversation/search", byID},
	} {
		before := len(rec.Calls())
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		calls := rec.Calls()[before:]
		if len(calls) != 1 || !strings.HasSuffix(calls[0].Path, tc.path) {
			t.Fatalf("%s: calls = %+v", tc.name, calls)
		}
		if q := calls[0].Query; q.Get("v") != "2" || q.Get("source") != "erasured-test" {
			t.Errorf("%s: query = %v, want v=2 and source", tc.name, q)
		}
		var body struct {
			Content []string `json:"contentToRetrieve"`
		}
		_ = json.Unmarshal([]byte(calls[0].Body), &body)
		if diff := cmp.Diff(tc.content, body.Content); diff != "" {
			t.Errorf("%s: contentToRetrieve (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestSearchConversationsDigitsSent: a value LivePerson may not be able to
// search (a phone number, a numeric customer id) is searched all the same;
// reporting it is the caller's.
func TestSearchConversationsDigitsSent(t *testing.T) {
	rec, c := newRecorder(t, func(recorded) string { return `{"conversationHistoryRecords":[]}` })
	for _, q := range []liveperson.ConversationQuery{
		{From: t0.Add(-time.Hour), To: t0, PersonalInfo: "+44 7700 900123"},
		{From: t0.Add(-time.Hour), To: t0, CustomerInfo: "48213377"},
	} {
		if _, err := c.SearchConversations(context.Background(), acct, q); err != nil {
			t.Errorf("search %+v: %v, want it sent", q, err)
		}
	}
	calls := rec.Calls()
	if len(calls) != 2 || !strings.Contains(calls[0].Body, `"personalInfo":"\"+44 7700 900123\""`) ||
		!strings.Contains(calls[1].Body, `"customerInfo":"\"48213377\""`) {
		t.Errorf("calls = %+v, want both searches sent with the quoted value", calls)
	}
}

// TestWindowsAfterRounding: windows that fit the limit only before
// LivePerson's 10-minute rounding are refused before sending.
func TestWindowsAfterRounding(t *testing.T) {
	rec, c := newRecorder(t, func(r recorded) string {
		if strings.HasPrefix(r.Path, "/interaction_history") {
			return `{"interactionHistoryRecords":[]}`
		}
		return `{"conversationHistoryRecords":[]}`
	})
	ctx := context.Background()
	day := 24 * time.Hour
	aligned := t0.Truncate(10 * time.Minute)
	odd := aligned.Add(3 * time.Minute)
	eh := func(from time.Time, d time.Duration) error {
		_, err := c.SearchEngagements(ctx, acct, liveperson.EngagementQuery{From: from, To: from.Add(d), Keyword: "x"})
		return err
	}
	mi := func(from time.Time, d time.Duration) error {
		_, err := c.SearchConversations(ctx, acct, liveperson.ConversationQuery{From: from, To: from.Add(d), CustomerInfo: "x"})
		return err
	}
	if err := eh(aligned.Add(-28*day), 28*day); err != nil {
		t.Errorf("aligned 28-day chat window: %v", err)
	}
	if err := mi(aligned.Add(-89*day), 89*day); err != nil {
		t.Errorf("aligned 89-day messaging window: %v", err)
	}
	sent := len(rec.Calls())
	if err := eh(odd.Add(-28*day), 28*day); liveperson.KindOf(err) != liveperson.KindInvalid {
		t.Errorf("28 days from :03: %v, want KindInvalid", err)
	}
	if err := mi(odd.Add(-89*day), 89*day); liveperson.KindOf(err) != liveperson.KindInvalid {
		t.Errorf("89 days from :03: %v, want KindInvalid", err)
	}
	if sent != 2 || len(rec.Calls()) != sent {
		t.Errorf("%d calls sent, want exactly the 2 aligned searches", len(rec.Calls()))
	}
}

package port

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/service"
	"github.com/google/go-cmp/cmp"
)

const (
	acct = "1234"
	mask = liveperson.DeletedMarker
)

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// fakeLP answers each request path with a fixed body and keeps the bodies
// it was sent.
type fakeLP struct {
	mu     sync.Mutex
	bodies map[string][]string // by path
}

func newPort(t *testing.T, answers map[string]string) (Port, *fakeLP) {
	t.Helper()
	f := &fakeLP{bodies: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies[r.URL.Path] = append(f.bodies[r.URL.Path], r.URL.RawQuery+" "+string(b))
		f.mu.Unlock()
		a, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, a)
	}))
	t.Cleanup(srv.Close)
	c, err := liveperson.New(
		liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(srv.URL, "http://"), Insecure: true}),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "t"}), liveperson.WithSource("erasured-test"),
		liveperson.WithClock(liveperson.NewFakeClock(t0)), liveperson.WithHTTPClient(srv.Client()),
		liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	return New(c), f
}

func (f *fakeLP) sent(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[path]
}

const (
	msgBase = "/messaging_history/api/account/" + acct + "/conversations"
	ehPath  = "/interaction_history/api/account/" + acct + "/interactions/search"
	// maskedSdes has every identifying value masked.
	maskedSdes = `"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"` + mask + `"}}}]}`
)

// conversations is a Messaging Interactions answer: c-1 fully masked, c-2
// with an authenticated e-mail and an unmasked unauthenticated e-mail and
// customer id.
const conversations = `{"_metadata":{"count":2},"conversationHistoryRecords":[` +
	`{"info":{"conversationId":"c-1","status":"CLOSE"},"consumerParticipants":[{"participantId":"p-1"}],` + maskedSdes + `,` +
	`"messageRecords":[{"sentBy":"Consumer","messageData":{"msg":{"text":"` + mask + `"}}},{"sentBy":"Agent","messageData":{"msg":{"text":"Hi"}}}]},` +
	`{"info":{"conversationId":"c-2","status":"CLOSE"},"consumerParticipants":[{"participantId":"p-2"}],` +
	`"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"` + mask + `"}}},` +
	`{"personalInfo":{"personalInfo":{"contacts":[{"personalContact":{"email":"pat@example.com"}}]}}}]},` +
	`"unAuthSdes":{"events":[{"personalInfo":{"personalInfo":{"contacts":[{"personalContact":{"email":"jane@example.com"}}]}}},` +
	`{"customerInfo":{"customerInfo":{"customerId":"JANE-1"}}}]},` +
	`"messageRecords":[]}]}`

// searchAnswer is what a search returns: attributes, no messages.
const searchAnswer = `{"_metadata":{"count":1},"conversationHistoryRecords":[` +
	`{"info":{"conversationId":"c-1","status":"CLOSE"},"consumerParticipants":[{"participantId":"p-1"}],` + maskedSdes + `}]}`

// TestConversationsContent: by-id reads ask for the messages and report
// content read and masking; searches do not read content, so nothing they
// return is masked; unauthenticated attribute values are reported apart from
// the authenticated ones.
func TestConversationsContent(t *testing.T) {
	p, f := newPort(t, map[string]string{
		msgBase + "/conversation/search": conversations,
		msgBase + "/search":              searchAnswer,
	})
	ctx := context.Background()
	byID, err := p.ConversationsByID(ctx, acct, []string{"c-1", "c-2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []service.ConversationRecord{
		{ConversationID: "c-1", ConsumerIDs: []string{"p-1"}, CustomerIDs: []string{mask}, ContentRead: true, Masked: true},
		{ConversationID: "c-2", ConsumerIDs: []string{"p-2"}, CustomerIDs: []string{mask}, Emails: []string{"pat@example.com"},
			UnauthCustomerIDs: []string{"JANE-1"}, UnauthEmails: []string{"jane@example.com"}, ContentRead: true, Masked: false},
	}
	if diff := cmp.Diff(want, byID); diff != "" {
		t.Errorf("by id (-want +got):\n%s", diff)
	}
	if s := f.sent(msgBase + "/conversation/search"); len(s) != 1 || !strings.Contains(s[0], `"messageRecords"`) ||
		!strings.Contains(s[0], "v=2") {
		t.Errorf("by-id request = %q, want messageRecords and v=2", s)
	}

	found, err := p.SearchConversations(ctx, acct, t0.Add(-time.Hour), t0, service.SDESearch{PersonalInfo: "jane@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("search = %+v, want c-1", found)
	}
	for _, r := range found {
		if r.ContentRead || r.Masked {
			t.Errorf("search record %s: ContentRead %v, Masked %v; want neither", r.ConversationID, r.ContentRead, r.Masked)
		}
	}
	if s := f.sent(msgBase + "/search"); len(s) != 1 || strings.Contains(s[0], "messageRecords") || !strings.Contains(s[0], "unAuthSdes") {
		t.Errorf("search request = %q", s)
	}
}

// TestConversationRecordsSplitAttributes: authenticated values are those the
// client's merged attributes hold before the unauthenticated ones, even when a
// value is in both; if the merged list does not end with the unauthenticated
// values, every value they hold counts as unauthenticated.
func TestConversationRecordsSplitAttributes(t *testing.T) {
	conv := func(merged, unauth []string) liveperson.Conversation {
		return liveperson.Conversation{ConversationID: "c-1", Attributes: liveperson.Attributes{Emails: merged},
			Unauth: liveperson.Attributes{Emails: unauth}}
	}
	for _, tc := range []struct {
		name                 string
		merged, unauth, want []string
	}{
		{"both", []string{"a@example.com", "b@example.com"}, []string{"b@example.com"}, []string{"a@example.com"}},
		{"in both", []string{"a@example.com", "a@example.com"}, []string{"a@example.com"}, []string{"a@example.com"}},
		{"authenticated only", []string{"a@example.com"}, nil, []string{"a@example.com"}},
		{"unauthenticated only", []string{"b@example.com"}, []string{"b@example.com"}, nil},
		{"not at the tail", []string{"b@example.com", "a@example.com"}, []string{"b@example.com"}, []string{"a@example.com"}},
	} {
		got := conversationRecords([]liveperson.Conversation{conv(tc.merged, tc.unauth)})[0]
		if !cmp.Equal(got.Emails, tc.want) || !cmp.Equal(got.UnauthEmails, tc.unauth) {
			t.Errorf("%s: authenticated %q unauthenticated %q, want %q and %q", tc.name, got.Emails, got.UnauthEmails, tc.want, tc.unauth)
		}
	}
}

// TestChatByID: the by-id read sends the id as a number and reports the
// transcript read; a visitor line left unmasked keeps the chat unmasked.
func TestChatByID(t *testing.T) {
	const id = "207623244295067780"
	chat := func(visitorText string) string {
		return `{"interactionHistoryRecords":[{"info":{"engagementId":"` + id + `","startTimeL":1773576000000},` + maskedSdes +
			`,"transcript":{"lines":[{"text":"` + visitorText + `","source":"visitor"},{"text":"Welcome","source":"agent"}]}}]}`
	}
	for _, tc := range []struct {
		text   string
		masked bool
	}{{mask, true}, {"I am Jane", false}} {
		p, f := newPort(t, map[string]string{ehPath: chat(tc.text)})
		rec, found, err := p.ChatByID(context.Background(), acct, id, t0.Add(-24*time.Hour), t0)
		if err != nil || !found {
			t.Fatalf("ChatByID = %v, %v", found, err)
		}
		if !rec.ContentRead || rec.Masked != tc.masked || !cmp.Equal(rec.CustomerIDs, []string{mask}) {
			t.Errorf("visitor line %q: record %+v, want content read, masked %v", tc.text, rec, tc.masked)
		}
		s := f.sent(ehPath)
		var body map[string]json.RawMessage
		if len(s) != 1 || json.Unmarshal([]byte(s[0][strings.Index(s[0], " ")+1:]), &body) != nil ||
			string(body["engagementId"]) != id || body["keyword_search_area"] == nil {
			t.Errorf("by-id request = %q", s)
		}
	}
}

// TestDeletionWithoutEcho: a request read without delete_json converts with
// its requester kept and kind and ids unknown.
func TestDeletionWithoutEcho(t *testing.T) {
	p, _ := newPort(t, map[string]string{
		"/api/account/" + acct + "/personal-data-deletion/127223": `[{"request_id":127223,"siteId":"` + acct +
			`","request_time":"2026-03-15T12:00:00.000Z","requested_by":"erasured-app","status":"NOT_STARTED"}]`,
	})
	d, err := p.GetDeletion(context.Background(), acct, 127223)
	if err != nil {
		t.Fatal(err)
	}
	want := service.Deletion{ID: 127223, Status: service.LPNotStarted, Created: t0, RequestedBy: "erasured-app"}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("deletion (-want +got):\n%s", diff)
	}
}

const deletionPath = "/api/account/" + acct + "/personal-data-deletion"

// TestCreateUnreadableID: a create answered with an id that is not a number
// may still have created the request: its outcome is unknown, to be
// reconciled, not a plain failure to retry.
func TestCreateUnreadableID(t *testing.T) {
	for _, answer := range []string{
		`{"request_id":"REQ-1","siteid":"` + acct + `","requested_by":"erasured-app"}`,
		`{"request_id":0,"siteid":"` + acct + `"}`,
	} {
		p, _ := newPort(t, map[string]string{deletionPath: answer})
		_, err := p.CreateDeletion(context.Background(), acct, service.KindConversation, []string{"c-1"})
		if !errors.Is(err, service.ErrOutcomeUnknown) || errors.Is(err, service.ErrUnavailable) {
			t.Errorf("create answered %s: %v, want ErrOutcomeUnknown", answer, err)
		}
		if err != nil && strings.Contains(err.Error(), "REQ-1") {
			t.Errorf("error %q repeats LivePerson's answer", err)
		}
	}
}

// TestListSkipsUnreadable: entries whose id cannot be read are skipped and
// counted; the others still come back, so that a batch can be reconciled.
// TestListRefusesUnreadable: an entry whose request id cannot be read fails the list as
// unavailable, whatever else it holds, so that reconciliation never decides on a list in which
// its own request may be hidden.
func TestListRefusesUnreadable(t *testing.T) {
	for _, bad := range []string{`{"request_id":"jane@example.com","status":"DONE"}`, `{"request_id":null,"status":"IN_PROGRESS"}`,
		`{"request_id":{"odd":1}}`, `"not a request"`} {
		p, _ := newPort(t, map[string]string{deletionPath: `[` +
			`{"request_id":127223,"siteId":"` + acct + `","requested_by":"erasured-app","status":"DONE"},` + bad + `]`})
		got, err := p.ListDeletions(context.Background(), acct, t0.Add(-24*time.Hour), time.Time{})
		if !errors.Is(err, service.ErrUnavailable) || got != nil {
			t.Errorf("list with %s = %v, %v; want ErrUnavailable and nothing", bad, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "jane") {
			t.Errorf("error %q carries the entry's content", err)
		}
	}
	p, _ := newPort(t, map[string]string{deletionPath: `[` +
		`{"request_id":"127224","request_time":{"odd":1},"requested_by":"erasured-app","status":"NOT_STARTED"}]`})
	got, err := p.ListDeletions(context.Background(), acct, t0.Add(-24*time.Hour), time.Time{})
	if want := []service.Deletion{{ID: 127224, Status: service.LPNotStarted, RequestedBy: "erasured-app"}}; err != nil || !cmp.Equal(want, got) {
		t.Errorf("list with an unreadable time = %v, %v; want %v", got, err, want)
	}
}

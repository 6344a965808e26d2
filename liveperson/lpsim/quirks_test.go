package lpsim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestQuirksFieldByField: a field Config.Quirks sets wins, and every field it
// leaves unset keeps the variant's choice; each choice shows on the wire.
func TestQuirksFieldByField(t *testing.T) {
	seeded := Quirks{ParticipantsKey: "consumerParticipant", SiteIDKey: "siteId", GetByIDObject: true,
		RequestIDAsText: true, DeleteJSONObject: true}
	for _, tc := range []struct {
		name       string
		cfg, seed  Quirks
		want       Quirks // after the merge, defaults filled in
		wantString string // a part of Variants.String()
	}{
		{"none", Quirks{}, Quirks{}, Quirks{ParticipantsKey: "consumerParticipants", SiteIDKey: "siteid"}, "getByID=array"},
		{"variant only", Quirks{}, seeded, seeded, "requestIdText=true deleteJSONObject=true"},
		{"config only", seeded, Quirks{}, seeded, "participants=consumerParticipant "},
		{"config spelling wins, variant keeps the rest", Quirks{SiteIDKey: "siteid"}, seeded,
			Quirks{ParticipantsKey: "consumerParticipant", SiteIDKey: "siteid", GetByIDObject: true,
				RequestIDAsText: true, DeleteJSONObject: true}, "siteId=siteid"},
		{"config choice on, variant spellings", Quirks{RequestIDAsText: true},
			Quirks{ParticipantsKey: "consumerParticipant"},
			Quirks{ParticipantsKey: "consumerParticipant", SiteIDKey: "siteid", RequestIDAsText: true}, "requestIdText=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{Quirks: tc.cfg, Variants: Variants{Quirks: tc.seed}})
			if got := h.sim.cfg.Quirks; got != tc.want {
				t.Fatalf("quirks %+v, want %+v", got, tc.want)
			}
			if s := h.sim.cfg.Variants.String(); !strings.Contains(s, tc.wantString) {
				t.Errorf("String() = %q lacks %q", s, tc.wantString)
			}
			checkQuirksWire(t, h, tc.want)
		})
	}
}

// checkQuirksWire reads a deletion create, its get and a conversation and
// checks each spelling q chooses.
func checkQuirksWire(t *testing.T, h *harness, q Quirks) {
	t.Helper()
	st, b := h.do(t, "POST", delPath, "", `{"consumer":["p1"]}`)
	created, ok := decodeJSON(t, b).(map[string]any)
	if st != 201 || !ok {
		t.Fatalf("create: %d %s", st, b)
	}
	var id string
	switch v := created["request_id"].(type) {
	case string:
		id = v
		if !q.RequestIDAsText {
			t.Errorf("request_id %q is text", v)
		}
	case json.Number:
		id = v.String()
		if q.RequestIDAsText {
			t.Errorf("request_id %v is a number", v)
		}
	}
	if _, isObject := created["delete_json"].(map[string]any); isObject != q.DeleteJSONObject {
		t.Errorf("delete_json = %#v, want an object: %v", created["delete_json"], q.DeleteJSONObject)
	}
	if created[q.SiteIDKey] != acct {
		t.Errorf("create answer %v lacks %s", created, q.SiteIDKey)
	}
	_, get := h.do(t, "GET", delPath+"/"+id, "", "")
	if _, isObject := decodeJSON(t, get).(map[string]any); isObject != q.GetByIDObject {
		t.Errorf("get by id = %s, want an object: %v", get, q.GetByIDObject)
	}
	_ = h.sim.AddConversation(Conversation{ID: "q1", Account: acct, ConsumerID: "p1", Start: t0.Add(-3 * day),
		End: t0.Add(-3*day + time.Hour)})
	recs := h.msgRecords(t, byIDPath, "source=t", `{"conversationId":"q1"}`)
	if dig(recs, 0, q.ParticipantsKey, 0, "participantId") != "p1" {
		t.Errorf("conversation %v lacks %s", dig(recs, 0), q.ParticipantsKey)
	}
}

// TestSentByReadings: with sentBy absent, no message record names its author
// but its participantId does: the consumer's is the one consumerParticipants
// lists, the agent's and the system's are others.
func TestSentByReadings(t *testing.T) {
	lines := []Line{{Author: AuthorSystem, Text: "welcome"}, {Author: AuthorConsumer, Text: "I am Ann"},
		{Author: AuthorAgent, Text: "hello"}}
	for _, mode := range []string{SentByPresent, SentByAbsent} {
		h := newHarness(t, Config{Variants: Variants{SentBy: mode}})
		_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Start: t0.Add(-3 * day),
			End: t0.Add(-3*day + time.Hour), Transcript: lines})
		rec := h.msgRecords(t, byIDPath, "source=t", `{"conversationId":"c1"}`)[0]
		consumer := dig(rec, "consumerParticipants", 0, "participantId")
		for i, want := range []string{"System", "Consumer", "Agent"} {
			m, _ := dig(rec, "messageRecords", i).(map[string]any)
			by, has := m["sentBy"]
			if mode == SentByAbsent && has || mode == SentByPresent && by != want {
				t.Errorf("%s: record %d sentBy = %v (present %v)", mode, i, by, has)
			}
			if pid := m["participantId"]; pid == nil || pid == "" || (pid == consumer) != (lines[i].Author == AuthorConsumer) {
				t.Errorf("%s: record %d participantId %v, consumer %v: the author cannot be told", mode, i, pid, consumer)
			}
		}
	}
}

// TestEngSourceReadings: the reading that requires source refuses an
// Engagement History search without it, or with one over 20 characters; the
// other takes both.
func TestEngSourceReadings(t *testing.T) {
	body := "{" + startJSON(t0.Add(-5*day), t0) + "}"
	for _, tc := range []struct {
		query         string
		required, lax int
	}{
		{"limit=100", 400, 200},
		{"limit=100&source=erasured", 200, 200},
		{"limit=100&source=abcdefghijklmnopqrstu", 400, 200},
	} {
		for _, required := range []bool{true, false} {
			h := newHarness(t, Config{Variants: Variants{EngSourceRequired: required}})
			want := tc.lax
			if required {
				want = tc.required
			}
			if st, b := h.do(t, "POST", engPath, tc.query, body); st != want {
				t.Errorf("%s (required %v): %d %s, want %d", tc.query, required, st, b, want)
			}
		}
	}
}

// TestRetentionMonthEnds: the 13 months of retention step back to the last
// day of a shorter month (31 March → 28 or 29 February), so a record of
// early March or late February a clamping backend keeps is kept; mid-month
// the limit is the same day.
func TestRetentionMonthEnds(t *testing.T) {
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	for _, tc := range []struct{ now, limit time.Time }{
		{at(2026, time.March, 31), at(2025, time.February, 28)},
		{at(2025, time.March, 31), at(2024, time.February, 29)},
		{at(2026, time.May, 31), at(2025, time.April, 30)},
		{at(2026, time.January, 31), at(2024, time.December, 31)},
		{at(2026, time.March, 15), at(2025, time.February, 15)},
		{at(2026, time.March, 1), at(2025, time.February, 1)},
	} {
		if got := monthsBack(tc.now, 13); !got.Equal(tc.limit) {
			t.Errorf("13 months before %s: %s, want %s", tc.now.Format(time.DateOnly), got, tc.limit)
		}
		h := newHarness(t, Config{})
		h.clk.Set(tc.now)
		for id, start := range map[string]time.Time{"gone": tc.limit.Add(-time.Hour), "kept": tc.limit.Add(time.Hour),
			"march": tc.limit.AddDate(0, 0, 2)} {
			c := shapedChat(id)
			c.Start, c.End = start, start.Add(10*time.Minute)
			_ = h.sim.AddChat(c)
			_ = h.sim.AddConversation(Conversation{ID: id, Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End})
		}
		eng := h.engRecords(t, "{"+startJSON(tc.limit.Add(-5*day), tc.limit.Add(5*day))+"}")
		msg := h.msgRecords(t, byCons, "source=t", `{"consumer":"p1"}`)
		var got []any
		for _, r := range eng {
			got = append(got, dig(r, "info", "engagementId"))
		}
		for _, r := range msg {
			got = append(got, dig(r, "info", "conversationId"))
		}
		if len(got) != 4 || got[0] != "kept" || got[1] != "march" || got[2] != "kept" || got[3] != "march" {
			t.Errorf("now %s: retained %v, want kept and march in both APIs", tc.now.Format(time.DateOnly), got)
		}
	}
}

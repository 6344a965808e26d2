package lpsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// decodeJSON decodes an answer into plain maps and slices, numbers kept as
// json.Number: the tests read the wire, not the client's types.
func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, s)
	}
	return v
}

// dig follows map keys (string) and slice indexes (int); nil when a step
// does not exist.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// event returns the sdes event of a type ("customerInfo" or "personalInfo").
func event(events any, kind string) any {
	l, _ := events.([]any)
	for _, e := range l {
		if v := dig(e, kind); v != nil {
			return v
		}
	}
	return nil
}

// engRecords runs an Engagement History search and returns its records.
func (h *harness) engRecords(t *testing.T, body string) []any {
	t.Helper()
	st, b := h.do(t, "POST", engPath, "limit=100", body)
	if st != 200 {
		t.Fatalf("engagement search: %d %s", st, b)
	}
	recs, _ := dig(decodeJSON(t, b), "interactionHistoryRecords").([]any)
	return recs
}

// msgRecords posts to a Messaging Interactions method and returns the records.
func (h *harness) msgRecords(t *testing.T, path, query, body string) []any {
	t.Helper()
	st, b := h.do(t, "POST", path, query, body)
	if st != 200 {
		t.Fatalf("messaging %s: %d %s", path, st, b)
	}
	recs, _ := dig(decodeJSON(t, b), "conversationHistoryRecords").([]any)
	return recs
}

const day = 24 * time.Hour

func shapedChat(id string) Chat {
	return Chat{EngagementID: id, Account: acct, VisitorID: "v", Start: t0.Add(-3 * day), End: t0.Add(-3*day + time.Hour),
		Ended: true, CustomerID: "SHAPE-1", Name: "Ann", Surname: "Lee", Email: "ann.lee@example.com", Phone: "+44 1"}
}

// TestAttributeShapes: each personalInfo and customerInfo reading puts the
// attributes exactly where that reading says, and only there, in both APIs;
// a record's own shape wins over the variant.
func TestAttributeShapes(t *testing.T) {
	for _, pi := range []string{ShapeNested, ShapeFlat, ShapeDirect, ShapeDirectFlat} {
		for _, ci := range []string{ShapeNested, ShapeFlat} {
			t.Run(pi+"/"+ci, func(t *testing.T) {
				h := newHarness(t, Config{Variants: Variants{PersonalInfo: pi, CustomerInfo: ci}})
				_ = h.sim.AddChat(shapedChat("1"))
				own := shapedChat("2")
				own.PersonalInfoShape = ShapeFlat
				_ = h.sim.AddChat(own)
				c := shapedChat("")
				_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End,
					CustomerID: c.CustomerID, Name: c.Name, Surname: c.Surname, Email: c.Email, Phone: c.Phone})
				eng := h.engRecords(t, "{"+startJSON(t0.Add(-5*day), t0)+"}")
				msg := h.msgRecords(t, byIDPath, "source=t&v=2", `{"conversationId":"c1"}`)
				if len(eng) != 2 || len(msg) != 1 {
					t.Fatalf("%d chats, %d conversations; want 2 and 1", len(eng), len(msg))
				}
				for name, events := range map[string]any{"chat": dig(eng[0], "sdes", "events"),
					"conversation": dig(msg[0], "sdes", "events")} {
					checkShapes(t, name, events, pi, ci)
				}
				checkShapes(t, "chat with its own flat shape", dig(eng[1], "sdes", "events"), ShapeFlat, ci)
			})
		}
	}
}

func checkShapes(t *testing.T, name string, events any, pi, ci string) {
	t.Helper()
	p, cust := event(events, "personalInfo"), event(events, "customerInfo")
	var email, first any
	switch pi {
	case ShapeNested:
		email, first = dig(p, "personalInfo", "contacts", 0, "personalContact", "email"), dig(p, "personalInfo", "name")
		if dig(p, "contacts") != nil || dig(p, "personalInfo", "email") != nil {
			t.Errorf("%s: nested personalInfo has flat or direct fields too: %v", name, p)
		}
	case ShapeFlat:
		email, first = dig(p, "contacts", 0, "personalContact", "email"), dig(p, "name")
		if dig(p, "personalInfo") != nil {
			t.Errorf("%s: flat personalInfo is nested too: %v", name, p)
		}
	case ShapeDirect:
		email, first = dig(p, "personalInfo", "email"), dig(p, "personalInfo", "name")
		if dig(p, "personalInfo", "contacts") != nil || dig(p, "contacts") != nil {
			t.Errorf("%s: direct personalInfo has contacts: %v", name, p)
		}
	case ShapeDirectFlat:
		email, first = dig(p, "email"), dig(p, "name")
		if dig(p, "personalInfo") != nil || dig(p, "contacts") != nil || dig(p, "phone") != "+44 1" {
			t.Errorf("%s: flat direct personalInfo is nested or has contacts: %v", name, p)
		}
	}
	if email != "ann.lee@example.com" || first != "Ann" {
		t.Errorf("%s: %s personalInfo = %v; e-mail %v, name %v", name, pi, p, email, first)
	}
	id := dig(cust, "customerInfo", "customerId")
	if ci == ShapeFlat {
		id = dig(cust, "customerId")
		if dig(cust, "customerInfo") != nil {
			t.Errorf("%s: flat customerInfo is nested too: %v", name, cust)
		}
	} else if dig(cust, "customerId") != nil {
		t.Errorf("%s: nested customerInfo has a flat customerId too: %v", name, cust)
	}
	if id != "SHAPE-1" {
		t.Errorf("%s: %s customerInfo = %v", name, ci, cust)
	}
}

// TestTranscriptWire: Engagement History always sends the transcript, each
// line saying who wrote it; Messaging Interactions sends messageRecords and
// every other part only when contentToRetrieve names it.
func TestTranscriptWire(t *testing.T) {
	h := newHarness(t, Config{})
	lines := []Line{{Author: AuthorSystem, Text: "welcome"}, {Author: AuthorConsumer, Text: "I am Ann"}, {Author: AuthorAgent, Text: "hello"}}
	c := shapedChat("1")
	c.Transcript = lines
	_ = h.sim.AddChat(c)
	_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End,
		CustomerID: "X-1", Transcript: lines})

	eng := h.engRecords(t, "{"+startJSON(t0.Add(-5*day), t0)+`,"keyword":"\"SHAPE-1\"","keyword_search_area":{"types":["ea.customerInfo"]}}`)
	if len(eng) != 1 {
		t.Fatalf("%d chats, want 1", len(eng))
	}
	for i, want := range []struct{ source, by string }{{"system", "System"}, {"visitor", "Ann"}, {"agent", "Alex"}} {
		l := dig(eng[0], "transcript", "lines", i)
		at := c.Start.Add(time.Duration(i) * time.Minute)
		if dig(l, "text") != lines[i].Text || dig(l, "source") != want.source || dig(l, "by") != want.by ||
			dig(l, "type") != "TEXT_PLAIN" || dig(l, "timeL") != json.Number(fmt.Sprint(at.UnixMilli())) ||
			dig(l, "time") != at.Format("2006-01-02 15:04:05.000-0700") {
			t.Errorf("transcript line %d = %v", i, l)
		}
	}

	all := h.msgRecords(t, byIDPath, "source=t", `{"conversationIds":["c1"]}`)
	for i, want := range []struct{ sentBy, participant string }{{"System", "system"}, {"Consumer", "p1"},
		{"Agent", acct + ".agent-alex"}} {
		m := dig(all[0], "messageRecords", i)
		if dig(m, "type") != "TEXT_PLAIN" || dig(m, "messageData", "msg", "text") != lines[i].Text ||
			dig(m, "sentBy") != want.sentBy || dig(m, "participantId") != want.participant ||
			dig(m, "seq") != json.Number(fmt.Sprint(i)) || dig(m, "time") == nil || dig(m, "timeL") == nil {
			t.Errorf("message record %d = %v", i, m)
		}
	}
	for _, tc := range []struct {
		content string
		want    []string
	}{
		{``, []string{"consumerParticipants", "info", "messageRecords", "sdes"}},
		{`,"contentToRetrieve":["sdes"]`, []string{"info", "sdes"}},
		{`,"contentToRetrieve":["messageRecords"]`, []string{"info", "messageRecords"}},
		{`,"contentToRetrieve":["consumerParticipants","unAuthSdes"]`, []string{"consumerParticipants", "info"}},
	} {
		for _, m := range []struct{ path, body string }{
			{byIDPath, `{"conversationId":"c1"` + tc.content + "}"},
			{byCons, `{"consumer":"p1"` + tc.content + "}"},
			{msgPath, "{" + startJSON(t0.Add(-5*day), t0) + tc.content + "}"},
		} {
			recs := h.msgRecords(t, m.path, "source=t", m.body)
			if len(recs) != 1 || !slices.Equal(keys(recs[0]), tc.want) {
				t.Errorf("%s %s: parts %v, want %v", m.path, m.body, keys(dig(recs, 0)), tc.want)
			}
		}
	}
}

// TestUnauthenticatedAttributes: an unauthenticated conversation's
// attributes are in unAuthSdes, served and searched only for v=2, and named
// separately in contentToRetrieve.
func TestUnauthenticatedAttributes(t *testing.T) {
	h := newHarness(t, Config{})
	_ = h.sim.AddConversation(Conversation{ID: "u1", Account: acct, ConsumerID: "p1", Start: t0.Add(-3 * day),
		End: t0.Add(-3*day + time.Hour), CustomerID: "UNAUTH-7", Email: "u@example.com", Unauthenticated: true})
	for _, tc := range []struct {
		query, content string
		unauth         bool // unAuthSdes present, with the attributes
	}{
		{"source=t&v=2", ``, true},
		{"source=t&v=2", `,"contentToRetrieve":["unAuthSdes"]`, true},
		{"source=t&v=2", `,"contentToRetrieve":["sdes"]`, false},
		{"source=t", ``, false},
		{"source=t", `,"contentToRetrieve":["unAuthSdes","sdes"]`, false},
	} {
		recs := h.msgRecords(t, byIDPath, tc.query, `{"conversationId":"u1"`+tc.content+"}")
		u, hasU := recs[0].(map[string]any)["unAuthSdes"]
		if hasU != tc.unauth || (tc.unauth && dig(event(dig(u, "events"), "customerInfo"), "customerInfo", "customerId") != "UNAUTH-7") {
			t.Errorf("%s %s: unAuthSdes = %v (present %v), want present %v", tc.query, tc.content, u, hasU, tc.unauth)
		}
		if ev, ok := dig(recs[0], "sdes", "events").([]any); ok && len(ev) != 0 {
			t.Errorf("%s %s: sdes hold unauthenticated attributes: %v", tc.query, tc.content, ev)
		}
	}
	for _, tc := range []struct {
		query, search string
		want          int
	}{
		{"source=t&v=2", `{"customerInfo":"\"UNAUTH-7\""}`, 1},
		{"source=t&v=2", `{"personalInfo":"\"u@example.com\""}`, 1},
		{"source=t", `{"customerInfo":"\"UNAUTH-7\""}`, 0},
	} {
		recs := h.msgRecords(t, msgPath, tc.query, "{"+startJSON(t0.Add(-5*day), t0)+`,"sdeSearch":`+tc.search+"}")
		if len(recs) != tc.want {
			t.Errorf("sdeSearch %s with %s: %d, want %d", tc.search, tc.query, len(recs), tc.want)
		}
	}
}

// TestNumericIdentifiers: Engagement History finds a purely numeric
// customer id; Messaging Interactions cannot, but finds the same person's
// e-mail.
func TestNumericIdentifiers(t *testing.T) {
	h := newHarness(t, Config{})
	c := shapedChat("1")
	c.CustomerID = DemoNumericCustomerID
	_ = h.sim.AddChat(c)
	_ = h.sim.AddConversation(Conversation{ID: "n1", Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End,
		CustomerID: DemoNumericCustomerID, Email: DemoNumericEmail})
	if n := len(h.engRecords(t, "{"+startJSON(t0.Add(-5*day), t0)+`,"keyword":"\"`+DemoNumericCustomerID+
		`\"","keyword_search_area":{"types":["ea.customerInfo"]}}`)); n != 1 {
		t.Errorf("engagement keyword search for a numeric id: %d, want 1", n)
	}
	for search, want := range map[string]int{
		`{"customerInfo":"\"` + DemoNumericCustomerID + `\""}`: 0,
		`{"customerInfo":"\"2024\""}`:                          0,
		`{"personalInfo":"\"` + DemoNumericEmail + `\""}`:      1,
	} {
		if n := len(h.msgRecords(t, msgPath, "source=t&v=2", "{"+startJSON(t0.Add(-5*day), t0)+`,"sdeSearch":`+search+"}")); n != want {
			t.Errorf("sdeSearch %s: %d, want %d", search, n, want)
		}
	}
}

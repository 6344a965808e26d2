package lpsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDeleteJSONReadings: in the create-only reading only the 201 of create
// echoes delete_json, and get and list answer the documented fields alone;
// in the echo reading every answer carries it.
func TestDeleteJSONReadings(t *testing.T) {
	documented := []string{"request_id", "request_time", "requested_by", "siteId", "status"}
	for _, tc := range []struct {
		v        Variants
		readKeys []string // keys of a get or list entry
	}{
		{Variants{DeleteJSON: DeleteJSONCreateOnly, Quirks: Quirks{SiteIDKey: "siteId"}}, documented},
		{Variants{DeleteJSON: DeleteJSONEcho, Quirks: Quirks{SiteIDKey: "siteId"}},
			[]string{"cancel_timestamp", "cancelled_by", "delete_json", "is_canceled", "request_id", "request_time",
				"requested_by", "siteId", "status"}},
	} {
		h := newHarness(t, Config{Variants: tc.v})
		st, b := h.do(t, "POST", delPath, "", `{"consumer":["p1"]}`)
		created := decodeJSON(t, b)
		if st != 201 || dig(created, "delete_json") != `{"consumer":["p1"]}` || dig(created, "siteId") != acct {
			t.Fatalf("%s: create = %d %s", tc.v.DeleteJSON, st, b)
		}
		n, _ := dig(created, "request_id").(json.Number)
		id := n.String()
		_, list := h.do(t, "GET", delPath, "", "")
		_, get := h.do(t, "GET", delPath+"/"+id, "", "")
		for name, entry := range map[string]any{"list": dig(decodeJSON(t, list), 0), "get": dig(decodeJSON(t, get), 0)} {
			if got := keys(entry); !slices.Equal(got, tc.readKeys) {
				t.Errorf("%s: %s entry keys = %v, want %v", tc.v.DeleteJSON, name, got, tc.readKeys)
			}
			if dig(entry, "requested_by") != dig(created, "requested_by") || dig(entry, "status") != "NOT_STARTED" {
				t.Errorf("%s: %s entry = %v", tc.v.DeleteJSON, name, entry)
			}
		}
		_, b = h.do(t, "POST", delPath+"/"+id+"/cancel", "", "")
		c := dig(decodeJSON(t, b), 0)
		if _, echoed := c.(map[string]any)["delete_json"]; dig(c, "is_canceled") != true || dig(c, "cancelled_by") == nil ||
			dig(c, "status") != "CANCELED" || echoed != (tc.v.DeleteJSON == DeleteJSONEcho) {
			t.Errorf("%s: cancel answer = %v", tc.v.DeleteJSON, c)
		}
	}
}

// TestRequestedByPerCredential: requested_by names the credential that
// created the request, the same in every answer, so that a client can learn
// its own name from its creates.
func TestRequestedByPerCredential(t *testing.T) {
	h := newHarness(t, Config{Variants: Variants{DeleteJSON: DeleteJSONCreateOnly}})
	form := url.Values{"client_id": {"lpsim-" + acct}, "client_secret": {"lpsim-secret-" + acct}, "grant_type": {"client_credentials"}}
	resp, err := h.srv.Client().Post(h.srv.URL+"/sentinel/api/v2/account/"+acct+"/app/token",
		"application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	jwt, _ := dig(decodeJSON(t, string(raw)), "access_token").(string)
	create := func(auth, body string) any {
		req, _ := http.NewRequest("POST", h.srv.URL+delPath, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return dig(decodeJSON(t, string(b)), "requested_by")
	}
	a1, a2 := create("Bearer "+jwt, `{"consumer":["a"]}`), create("Bearer "+jwt, `{"consumer":["b"]}`)
	s1 := create("Bearer tok", `{"consumer":["c"]}`)
	if a1 != "lpsim-"+acct || a2 != a1 || s1 == a1 || s1 == "" {
		t.Errorf("requested_by: OAuth %v then %v, static token %v", a1, a2, s1)
	}
	_, list := h.do(t, "GET", delPath, "", "")
	var got []any
	for _, e := range decodeJSON(t, list).([]any) {
		got = append(got, dig(e, "requested_by"))
	}
	if !slices.Equal(got, []any{a1, a1, s1}) {
		t.Errorf("list requested_by = %v", got)
	}
}

// TestMaskingReadings: on DONE the full reading masks every line; the
// partial one masks consumer lines and every attribute but leaves system and
// agent lines as they were, in the model and on the wire.
func TestMaskingReadings(t *testing.T) {
	lines := []Line{{Author: AuthorSystem, Text: "welcome"}, {Author: AuthorConsumer, Text: "I am Ann, ann@example.com"}, {Author: AuthorAgent, Text: "hello"}}
	for _, mode := range []string{MaskFull, MaskPartial} {
		h := newHarness(t, Config{Variants: Variants{Masking: mode}})
		c := shapedChat("e1")
		c.Transcript = lines
		_ = h.sim.AddChat(c)
		_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End,
			CustomerID: "C-1", Name: "Ann", Email: "ann@example.com", Transcript: lines})
		for _, body := range []string{`{"engagement":["e1"]}`, `{"conversation":["c1"]}`} {
			if st, b := h.do(t, "POST", delPath, "", body); st != 201 {
				t.Fatalf("create %s: %d %s", body, st, b)
			}
		}
		h.clk.Advance(25 * day)
		want := []string{DeletedMarker, DeletedMarker, DeletedMarker}
		if mode == MaskPartial {
			want = []string{"welcome", DeletedMarker, "hello"}
		}
		chat, _ := h.sim.Chat("e1")
		conv, _ := h.sim.Conversation("c1")
		for name, a := range map[string][]string{
			"chat":         {chat.CustomerID, chat.Name, chat.Surname, chat.Email, chat.Phone},
			"conversation": {conv.CustomerID, conv.Name, conv.Email}} {
			for _, v := range a {
				if v != DeletedMarker {
					t.Errorf("%s: %s attribute %q not masked", mode, name, v)
				}
			}
		}
		eng := h.engRecords(t, "{"+startJSON(t0.Add(-5*day), t0)+"}")
		msg := h.msgRecords(t, byIDPath, "source=t", `{"conversationId":"c1"}`)
		for i, w := range want {
			if chat.Transcript[i].Text != w || conv.Transcript[i].Text != w ||
				dig(eng[0], "transcript", "lines", i, "text") != w || dig(msg[0], "messageRecords", i, "messageData", "msg", "text") != w {
				t.Errorf("%s: line %d = %q / %q / %v / %v, want %q", mode, i, chat.Transcript[i].Text, conv.Transcript[i].Text,
					dig(eng[0], "transcript", "lines", i, "text"), dig(msg[0], "messageRecords", i, "messageData", "msg", "text"), w)
			}
		}
		if by := dig(eng[0], "transcript", "lines", 1, "by"); by != DeletedMarker {
			t.Errorf("%s: the visitor's name stays in the transcript: %v", mode, by)
		}
		if p := event(dig(eng[0], "sdes", "events"), "personalInfo"); dig(p, "personalInfo", "contacts", 0, "personalContact", "email") != DeletedMarker {
			t.Errorf("%s: personalInfo on the wire after DONE = %v", mode, p)
		}
	}
}

// TestSlowCreateFault: a create under FaultSlowCreate is received (it takes its quota unit at
// once) but listed, and answered, only once the simulator's clock has passed the delay; with
// After its connection is dropped at once and the request still appears only then.
func TestSlowCreateFault(t *testing.T) {
	for _, dropped := range []bool{false, true} {
		h := newHarness(t, Config{})
		h.sim.AddFault(Fault{Service: ServiceRTBF, Op: OpCreate, Kind: FaultSlowCreate, Latency: 6 * time.Second, After: dropped})
		type answer struct {
			status int
			err    error
		}
		done := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest("POST", h.srv.URL+delPath, strings.NewReader(`{"consumer":["p1"]}`))
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				done <- answer{err: err}
				return
			}
			resp.Body.Close()
			done <- answer{status: resp.StatusCode}
		}()
		for len(h.sim.Deletions(acct)) == 0 { // received: the handler has run
			time.Sleep(time.Millisecond)
		}
		d := h.sim.Deletions(acct)[0]
		if !d.Recorded.Equal(t0.Add(6 * time.Second)) {
			t.Errorf("dropped=%v: recorded at %v, want %v", dropped, d.Recorded, t0.Add(6*time.Second))
		}
		listed := func() int {
			_, b := h.do(t, "GET", delPath, "", "")
			return len(decodeJSON(t, b).([]any))
		}
		h.clk.Advance(5 * time.Second)
		if n := listed(); n != 0 {
			t.Errorf("dropped=%v: 5 s after receipt the list shows %d requests, want none", dropped, n)
		}
		if st, _ := h.do(t, "GET", delPath+"/"+strconv.FormatInt(d.ID, 10), "", ""); st != http.StatusNotFound {
			t.Errorf("dropped=%v: get before the request is recorded = %d, want 404", dropped, st)
		}
		if !dropped {
			select {
			case a := <-done:
				t.Errorf("create answered %d, %v before it was recorded", a.status, a.err)
			default:
			}
		}
		if dropped {
			if a := <-done; a.err == nil {
				t.Errorf("dropped=%v: the create was answered %d, want its connection dropped", dropped, a.status)
			}
		}
		h.clk.Advance(time.Second)
		if !dropped {
			if a := <-done; a.err != nil || a.status != http.StatusCreated {
				t.Errorf("create answer once recorded = %d, %v; want 201", a.status, a.err)
			}
		}
		if n := listed(); n != 1 {
			t.Errorf("dropped=%v: once recorded the list shows %d requests, want 1", dropped, n)
		}
	}
}

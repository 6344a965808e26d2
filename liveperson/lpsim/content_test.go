package lpsim

import (
	"strings"
	"testing"
)

// hasKey reports whether key names a value anywhere inside v.
func hasKey(v any, key string) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			if k == key || hasKey(c, key) {
				return true
			}
		}
	case []any:
		for _, c := range t {
			if hasKey(c, key) {
				return true
			}
		}
	}
	return false
}

// TestRichContentAndFiles: a consumer's rich content carries her e-mail with
// no text field, a hosted file its relativePath and its caption only when it
// has one; on DONE each message's whole content is replaced by the mask
// text, and in the partial reading an agent's file stays.
func TestRichContentAndFiles(t *testing.T) {
	const email, path = "ann.lee@example.com", "/v1/AUTH_async-images/1234/c1/id-card.jpg"
	lines := []Line{
		{Author: AuthorSystem, Text: "welcome"},
		{Author: AuthorConsumer, Kind: KindRich, Text: email},
		{Author: AuthorConsumer, Kind: KindFile, Path: path, Text: "my ID, Ann Lee"},
		{Author: AuthorConsumer, Kind: KindFile, Path: path},
		{Author: AuthorAgent, Kind: KindFile, Path: "/v1/AUTH_async-images/1234/c1/form.pdf"},
	}
	for _, mode := range []string{MaskFull, MaskPartial} {
		h := newHarness(t, Config{Variants: Variants{Masking: mode}})
		c := shapedChat("")
		_ = h.sim.AddConversation(Conversation{ID: "c1", Account: acct, ConsumerID: "p1", Start: c.Start, End: c.End,
			CustomerID: "C-1", Email: email, Transcript: lines})
		recs := h.msgRecords(t, byIDPath, "source=t", `{"conversationId":"c1","contentToRetrieve":["messageRecords"]}`)
		msgs := dig(recs, 0, "messageRecords")
		rich := dig(msgs, 1)
		if dig(rich, "type") != "RICH_CONTENT" || hasKey(dig(rich, "messageData"), "text") ||
			dig(rich, "messageData", "richContent", "content", "elements", 0, "title") != email {
			t.Errorf("%s: rich content record = %v", mode, rich)
		}
		for i, caption := range map[int]any{2: "my ID, Ann Lee", 3: nil} {
			f := dig(msgs, i)
			if dig(f, "type") != "HOSTED_FILE" || dig(f, "messageData", "file", "relativePath") != path ||
				dig(f, "messageData", "file", "caption") != caption || dig(f, "messageData", "msg") != nil {
				t.Errorf("%s: file record %d = %v", mode, i, f)
			}
		}

		if st, b := h.do(t, "POST", delPath, "", `{"conversation":["c1"]}`); st != 201 {
			t.Fatalf("create: %d %s", st, b)
		}
		h.clk.Advance(25 * day)
		conv, _ := h.sim.Conversation("c1")
		st, b := h.do(t, "POST", byIDPath, "source=t", `{"conversationId":"c1","contentToRetrieve":["messageRecords"]}`)
		if st != 200 || strings.Contains(b, email) || strings.Contains(b, "my ID") || strings.Contains(b, "id-card") {
			t.Errorf("%s: the consumer's content survives DONE: %d %s", mode, st, b)
		}
		msgs = dig(decodeJSON(t, b), "conversationHistoryRecords", 0, "messageRecords")
		for i := 1; i <= 3; i++ {
			m := dig(msgs, i)
			if conv.Transcript[i] != (Line{Author: AuthorConsumer, Text: DeletedMarker}) || dig(m, "type") != "TEXT_PLAIN" ||
				dig(m, "messageData", "msg", "text") != DeletedMarker || len(keys(dig(m, "messageData"))) != 1 {
				t.Errorf("%s: consumer message %d after DONE = %+v, on the wire %v", mode, i, conv.Transcript[i], m)
			}
		}
		agent := dig(msgs, 4)
		if kept := dig(agent, "type") == "HOSTED_FILE"; kept != (mode == MaskPartial) {
			t.Errorf("%s: agent file after DONE = %v", mode, agent)
		}
	}
}

// TestGenerateContentKinds: the random data holds consumer messages in rich
// content and in hosted files, with and without caption; the first demo
// subject keeps her record counts, one conversation holding her e-mail in
// rich content and the other a file without caption.
func TestGenerateContentKinds(t *testing.T) {
	d := Generate(5, GenOptions{Now: t0, Consumers: 300, Demo: true})
	var rich, captioned, bare int
	for _, c := range d.Conversations {
		for _, l := range c.Transcript {
			switch {
			case l.Kind == KindRich && l.Author == AuthorConsumer && l.Text == c.Email:
				rich++
			case l.Kind == KindFile && l.Path != "" && l.Text != "":
				captioned++
			case l.Kind == KindFile && l.Path != "":
				bare++
			}
		}
	}
	if rich < 10 || captioned < 5 || bare < 5 {
		t.Errorf("random data: %d rich, %d captioned and %d bare files", rich, captioned, bare)
	}

	var chats, convs, demoRich, demoFile int
	for _, c := range d.Chats {
		if c.CustomerID == DemoCustomerID {
			chats++
		}
	}
	for _, c := range d.Conversations {
		if c.CustomerID != DemoCustomerID {
			continue
		}
		convs++
		for _, l := range c.Transcript {
			if l.Author == AuthorConsumer && l.Kind == KindRich && l.Text == DemoEmail {
				demoRich++
			}
			if l.Author == AuthorConsumer && l.Kind == KindFile && l.Text == "" && l.Path != "" {
				demoFile++
			}
		}
	}
	if chats != 3 || convs != 2 || demoRich != 1 || demoFile != 1 {
		t.Errorf("%s: %d chats, %d conversations, %d rich and %d file messages; want 3, 2, 1, 1",
			DemoCustomerID, chats, convs, demoRich, demoFile)
	}

}

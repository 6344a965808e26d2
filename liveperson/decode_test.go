package liveperson

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const mask = DeletedMarker

// ehBody wraps one Engagement History record's fields after info.
func ehBody(fields string) []byte {
	return []byte(`{"_metadata":{"count":1},"interactionHistoryRecords":[{"info":{"engagementId":"1"}` + fields + `}]}`)
}

// mhBody wraps one Messaging Interactions record's fields after info.
func mhBody(fields string) []byte {
	return []byte(`{"conversationHistoryRecords":[{"info":{"conversationId":"c-1","status":"CLOSE"}` + fields + `}]}`)
}

// TestDecodeAttributeShapes: personalInfo flat, nested and with direct
// fields, contacts wrapped or not, customerInfo flat or nested, and
// unauthenticated attributes all reach the record's attributes.
func TestDecodeAttributeShapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields string
		want   Attributes
	}{
		{"flat personalInfo",
			`,"sdes":{"events":[{"personalInfo":{"name":"Jane","surname":"Doe","contacts":[{"personalContact":{"email":"jane@example.com","phone":"+44 1"}}]}}]}`,
			Attributes{Emails: []string{"jane@example.com"}, Phones: []string{"+44 1"}, Names: []string{"Jane", "Doe"}}},
		{"nested personalInfo",
			`,"sdes":{"events":[{"personalInfo":{"serverTimeStamp":"1","personalInfo":{"name":"Jane","contacts":[{"personalContact":{"email":"jane@example.com"}}]}}}]}`,
			Attributes{Emails: []string{"jane@example.com"}, Names: []string{"Jane"}}},
		{"direct email and phone, outer level",
			`,"sdes":{"events":[{"personalInfo":{"email":"jane@example.com","phone":"+44 2"}}]}`,
			Attributes{Emails: []string{"jane@example.com"}, Phones: []string{"+44 2"}}},
		{"direct email, nested level",
			`,"sdes":{"events":[{"personalInfo":{"personalInfo":{"email":"jane@example.com"}}}]}`,
			Attributes{Emails: []string{"jane@example.com"}}},
		{"contacts without personalContact",
			`,"sdes":{"events":[{"personalInfo":{"personalInfo":{"contacts":[{"email":"jane@example.com","phone":"+44 3"}]}}}]}`,
			Attributes{Emails: []string{"jane@example.com"}, Phones: []string{"+44 3"}}},
		{"flat customerInfo",
			`,"sdes":{"events":[{"customerInfo":{"customerId":"C-1"}}]}`,
			Attributes{CustomerIDs: []string{"C-1"}}},
		{"nested customerInfo, numeric id",
			`,"sdes":{"events":[{"customerInfo":{"serverTimeStamp":"1","customerInfo":{"customerId":138766}}}]}`,
			Attributes{CustomerIDs: []string{"138766"}}},
		{"unAuthSdes only",
			`,"unAuthSdes":{"events":[{"personalInfo":{"personalInfo":{"contacts":[{"personalContact":{"email":"jane@example.com"}}]}}},{"customerInfo":{"customerInfo":{"customerId":"U-1"}}}]}`,
			Attributes{CustomerIDs: []string{"U-1"}, Emails: []string{"jane@example.com"}}},
		{"sdes and unAuthSdes",
			`,"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"A-1"}}}]},"unAuthSdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"U-1"}}}]}`,
			Attributes{CustomerIDs: []string{"A-1", "U-1"}}},
	} {
		es, _, err := decodeEngagements(ehBody(tc.fields))
		if err != nil || len(es) != 1 {
			t.Fatalf("%s: engagement %v, %v", tc.name, es, err)
		}
		if diff := cmp.Diff(tc.want, es[0].Attributes); diff != "" {
			t.Errorf("%s: engagement attributes (-want +got):\n%s", tc.name, diff)
		}
		cs, _, err := decodeConversations(mhBody(tc.fields), true)
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: conversation %v, %v", tc.name, cs, err)
		}
		if diff := cmp.Diff(tc.want, cs[0].Attributes); diff != "" {
			t.Errorf("%s: conversation attributes (-want +got):\n%s", tc.name, diff)
		}
	}
	cs, _, _ := decodeConversations(mhBody(`,"sdes":{"events":[{"customerInfo":{"customerId":"A-1"}}]},"unAuthSdes":{"events":[{"customerInfo":{"customerId":"U-1"}}]}`), true)
	if diff := cmp.Diff(Attributes{CustomerIDs: []string{"U-1"}}, cs[0].Unauth); diff != "" {
		t.Errorf("unauthenticated attributes kept apart (-want +got):\n%s", diff)
	}
}

// maskedAttrs is sdes with every identifying value masked.
const maskedAttrs = `,"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"` + mask + `"}}},` +
	`{"personalInfo":{"personalInfo":{"name":"` + mask + `","contacts":[{"personalContact":{"email":"` + mask + `"}}]}}}]}`

// TestEngagementMasked: a chat is masked only when its transcript was read
// and every visitor line and attribute shows the mask; agent and system
// lines may stay.
func TestEngagementMasked(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fields       string
		read, masked bool
	}{
		{"visitor lines masked, agent and system kept",
			maskedAttrs + `,"transcript":{"lines":[{"text":"` + mask + `","source":"visitor","by":"Jane"},` +
				`{"text":"How can I help?","source":"agent","by":"Bob"},{"text":"Chat ended","source":"system","by":"info"},` +
				`{"text":"` + mask + `","source":"VISITOR"}]}`, true, true},
		{"a visitor line unmasked",
			maskedAttrs + `,"transcript":{"lines":[{"text":"` + mask + `","source":"visitor"},{"text":"my card is 4111","source":"visitor"}]}`,
			true, false},
		{"a line without source unmasked",
			maskedAttrs + `,"transcript":{"lines":[{"text":"who wrote me?"}]}`, true, false},
		{"text outside lines unmasked",
			maskedAttrs + `,"transcript":{"lines":[],"notes":[{"text":"jane@example.com"}]}`, true, false},
		{"visitor line without text (a file link)",
			maskedAttrs + `,"transcript":{"lines":[{"source":"visitor","type":"FILE","url":"https://files.example/jane.pdf"}]}`,
			true, false},
		{"visitor line with empty text",
			maskedAttrs + `,"transcript":{"lines":[{"source":"visitor","text":""}]}`, true, false},
		{"html visitor line unmasked",
			maskedAttrs + `,"transcript":{"lines":[{"source":"visitor","textType":"html","text":"<a href=\"mailto:jane@example.com\">mail</a>"}]}`,
			true, false},
		{"html visitor line masked",
			maskedAttrs + `,"transcript":{"lines":[{"source":"visitor","textType":"html","text":"<p>` + mask + `</p>"}]}`,
			true, true},
		{"agent line without text kept",
			maskedAttrs + `,"transcript":{"lines":[{"source":"agent","type":"FILE","url":"https://files.example/form.pdf"}]}`,
			true, true},
		{"empty transcript, attributes masked", maskedAttrs + `,"transcript":{"lines":[]}`, true, true},
		{"no transcript, attributes masked", maskedAttrs, false, false},
		{"null transcript, attributes masked", maskedAttrs + `,"transcript":null`, false, false},
		{"an attribute unmasked",
			`,"sdes":{"events":[{"personalInfo":{"email":"jane@example.com"}}]},"transcript":{"lines":[]}`, true, false},
		{"an unauthenticated attribute unmasked",
			maskedAttrs + `,"unAuthSdes":{"events":[{"personalInfo":{"personalInfo":{"surname":"Doe"}}}]},"transcript":{"lines":[]}`,
			true, false},
	} {
		es, _, err := decodeEngagements(ehBody(tc.fields))
		if err != nil || len(es) != 1 {
			t.Fatalf("%s: %v, %v", tc.name, es, err)
		}
		if got := es[0]; got.ContentRead != tc.read || got.Masked() != tc.masked {
			t.Errorf("%s: ContentRead, Masked() = %v, %v; want %v, %v", tc.name, got.ContentRead, got.Masked(), tc.read, tc.masked)
		}
	}
}

// TestConversationMasked: a conversation is masked only when its messages
// were read and every consumer message and attribute shows the mask.
func TestConversationMasked(t *testing.T) {
	const consumers = `,"consumerParticipants":[{"participantId":"p-1"}]`
	msg := func(author, text string) string {
		return `{` + author + `"type":"TEXT_PLAIN","messageData":{"msg":{"text":"` + text + `"}}}`
	}
	for _, tc := range []struct {
		name         string
		fields       string
		read, masked bool
	}{
		{"consumer masked, agent kept",
			consumers + maskedAttrs + `,"messageRecords":[` + msg(`"sentBy":"Consumer","participantId":"p-1",`, mask) + `,` +
				msg(`"sentBy":"Agent","participantId":"a-1",`, "Hello Jane") + `]`, true, true},
		{"sentBy Consumer unmasked",
			consumers + maskedAttrs + `,"messageRecords":[` + msg(`"sentBy":"Consumer",`, "I am Jane") + `]`, true, false},
		{"sentBy lower case unmasked",
			consumers + maskedAttrs + `,"messageRecords":[` + msg(`"sentBy":"consumer",`, "I am Jane") + `]`, true, false},
		{"no sentBy, a consumer participant, unmasked",
			consumers + maskedAttrs + `,"messageRecords":[` + msg(`"participantId":"p-1",`, "I am Jane") + `]`, true, false},
		{"no sentBy, another participant, unmasked",
			consumers + maskedAttrs + `,"messageRecords":[` + msg(`"participantId":"a-1",`, "Hello") + `]`, true, true},
		{"no sentBy, no participant id, unmasked",
			consumers + maskedAttrs + `,"messageRecords":[` + msg(``, "who?") + `]`, true, false},
		{"no sentBy, consumers not read, unmasked",
			maskedAttrs + `,"messageRecords":[` + msg(`"participantId":"a-1",`, "who?") + `]`, true, false},
		{"rich content unmasked",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","messageData":{"richContent":{"content":{"elements":[{"type":"text","text":"jane@example.com"}]}}}}]`,
			true, false},
		{"file caption unmasked",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","messageData":{"file":{"relativePath":"/x","caption":"my passport"}}}]`,
			true, false},
		{"rich content without text keys, unmasked",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","type":"RICH_CONTENT","messageData":{"richContent":{"content":{"type":"vertical","elements":[{"type":"button","title":"jane@example.com"}]}}}}]`,
			true, false},
		{"rich content sent as a JSON string, unmasked",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","type":"RICH_CONTENT","messageData":{"richContent":{"content":"{\"type\":\"vertical\",\"elements\":[{\"type\":\"text\",\"text\":\"jane@example.com\"}]}"}}}]`,
			true, false},
		{"rich content JSON string, one text masked and one not",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","messageData":{"richContent":{"content":"[{\"text\":\"` + mask + `\"},{\"text\":\"jane@example.com\"}]"}}}]`,
			true, false},
		{"rich content replaced by the mask",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","type":"RICH_CONTENT","messageData":{"richContent":{"content":"` + mask + `"}}}]`,
			true, true},
		{"hosted file link, no caption",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","type":"HOSTED_FILE","messageData":{"file":{"relativePath":"/files/jane-passport.pdf","fileType":"PDF"}}}]`,
			true, false},
		{"hosted file masked",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","type":"HOSTED_FILE","messageData":{"file":{"relativePath":"` + mask + `","caption":"` + mask + `"}}}]`,
			true, true},
		{"consumer record without any content",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","type":"TEXT_PLAIN"}]`, true, false},
		{"mask outside messageData does not count",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Consumer","note":"` + mask + `","messageData":{"file":{"relativePath":"/jane.pdf"}}}]`,
			true, false},
		{"agent rich content kept",
			consumers + maskedAttrs + `,"messageRecords":[{"sentBy":"Agent","messageData":{"richContent":{"content":{"title":"Hello Jane"}}}}]`,
			true, true},
		{"empty messageRecords", consumers + maskedAttrs + `,"messageRecords":[]`, true, true},
		{"no messageRecords, attributes masked", consumers + maskedAttrs, false, false},
		{"an unauthenticated attribute unmasked",
			consumers + maskedAttrs + `,"unAuthSdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"U-1"}}}]},"messageRecords":[]`,
			true, false},
	} {
		cs, _, err := decodeConversations(mhBody(tc.fields), true)
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: %v, %v", tc.name, cs, err)
		}
		if got := cs[0]; got.ContentRead != tc.read || got.Masked() != tc.masked {
			t.Errorf("%s: ContentRead, Masked() = %v, %v; want %v, %v", tc.name, got.ContentRead, got.Masked(), tc.read, tc.masked)
		}
	}
}

// TestTranscriptLinesKeepAuthor: lines come in order with who wrote them.
func TestTranscriptLinesKeepAuthor(t *testing.T) {
	es, _, err := decodeEngagements(ehBody(`,"transcript":{"lines":[{"text":"hi","source":"visitor"},` +
		`{"text":"hello","source":"agent"},"bare",{"text":"bye","source":"system"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{[]string{"hi"}, true, false}, {[]string{"hello"}, false, false}, {[]string{"bare"}, true, false},
		{[]string{"bye"}, false, false}}
	if diff := cmp.Diff(want, es[0].Transcript); diff != "" {
		t.Errorf("transcript (-want +got):\n%s", diff)
	}
}

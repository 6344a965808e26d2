package liveperson

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Seeds are the contract's examples plus each tolerated variant.
var (
	engSeeds = []string{
		`{"_metadata":{"count":1,"shardsStatusResult":{"partialResult":false}},"interactionHistoryRecords":[{"info":{"engagementId":"207623244295067780","accountId":"20762324","visitorId":"v1","startTimeL":1700000000000,"endTimeL":1700000600000,"isPartial":false,"ended":true},"sdes":{"events":[{"customerInfo":{"serverTimeStamp":"1","customerInfo":{"customerId":"138766AC"}}},{"personalInfo":{"personalInfo":{"name":"Jane","contacts":[{"personalContact":{"email":"a@b.c","phone":"1"}}]}}}]},"transcript":{"lines":[{"text":"hi"}]}}]}`,
		`{"_metadata":{"count":0,"shardsStatusResult":{"partialResult":true}},"interactionHistoryRecords":[]}`,
		`{"interactionHistoryRecords":[{"info":{"engagementId":207623244295067780,"startTimeL":"1700000000000"},"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":12345}}}]}}]}`,
		`{"interactionHistoryRecords":[{"info":{}}]}`, `[]`, `null`, `{"_metadata":{"count":"x"}}`,
		`{"interactionHistoryRecords":[{"info":{"engagementId":"1"},"sdes":{"events":[{"personalInfo":{"name":"J","surname":"D","email":"a@b.c","contacts":[{"email":"d@e.f","phone":"2"}]}},{"customerInfo":{"customerId":"C1"}}]},"transcript":{"lines":[{"text":"*** LP deleted data ***","source":"visitor"},{"text":"hello","source":"agent"},{"text":"bye","source":"system"}]}}]}`,
		`{"interactionHistoryRecords":[{"info":{"engagementId":"1"},"unAuthSdes":{"events":[{"personalInfo":{"personalInfo":{"phone":"3","personalInfo":{"email":"x@y.z"}}}}]},"transcript":null}]}`,
		`{"interactionHistoryRecords":[{"info":{"engagementId":"1"},"transcript":{"lines":["bare",{"text":["a","b"]},{"source":7,"text":"x"}],"summary":{"text":"s"}}}]}`,
		`{"interactionHistoryRecords":[{"info":{"engagementId":"1"},"transcript":"plain"}]}`,
		`{"interactionHistoryRecords":[{"info":{"engagementId":"1"},"transcript":{"lines":[{"source":"visitor","textType":"html","text":"<p>*** LP deleted data ***</p>"},{"source":"visitor","url":"/f"}]}}]}`,
	}
	convSeeds = []string{
		`{"_metadata":{"count":1},"conversationHistoryRecords":[{"info":{"conversationId":"c1","status":"CLOSE","startTimeL":1,"endTimeL":2,"isPartial":false},"consumerParticipants":[{"participantId":"p1","firstName":"J"}],"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"X"}},"sdeType":"CUSTOMER_INFO"}]},"messageRecords":[{"messageData":{"msg":{"text":"hello"}}}]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"consumerParticipant":[{"participantId":"p1"}]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"consumerParticipant":{"participantId":"p1"}}]}`,
		`{"_metadata":{"shardsStatusResult":{"partialResult":true}}}`, `{"conversationHistoryRecords":[{}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"consumerParticipants":[{"participantId":"p1"}],"unAuthSdes":{"events":[{"customerInfo":{"customerId":"U1"}}]},"messageRecords":[{"sentBy":"Consumer","messageData":{"msg":{"text":"*** LP deleted data ***"}}},{"participantId":"a1","messageData":{"richContent":{"elements":[{"type":"text","text":"t"}]}}},{"participantId":"p1","messageData":{"file":{"caption":"c"}}}]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"messageRecords":[]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"messageRecords":[{"sentBy":"Consumer","type":"RICH_CONTENT","messageData":{"richContent":{"content":"{\"elements\":[{\"text\":\"*** LP deleted data ***\"}]}"}}},{"sentBy":"Consumer","type":"HOSTED_FILE","messageData":{"file":{"relativePath":"/f"}}}]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"messageRecords":{"text":"odd"}}]}`,
	}
	delSeeds = []string{
		`{"request_id":127223,"siteid":"20762324","request_time":"2018-01-04T14:07:32.000Z","requested_by":"Mike","cancelled_by":null,"delete_json":"{\"engagement\":[\"207623244295067780\"]}","cancel_timestamp":null,"is_canceled":false}`,
		`[{"request_id":"127223","siteId":"20762324","request_time":1515075052000,"status":"DONE","delete_json":{"consumer":["p"]}}]`,
		`[]`, `[{"is_canceled":true,"cancel_timestamp":"2018-01-04 14:07:32"}]`, `{"request_id":{"x":1}}`,
		`[{"request_id":127223,"siteId":"20762324","request_time":"2018-01-04T14:07:32.000Z","requested_by":"Mike","status":"IN_PROGRESS"}]`,
		`{"request_id":1,"delete_json":null}`, `{"request_id":1,"delete_json":""}`,
		`[{"request_id":1,"request_time":{"x":1},"delete_json":7},"s",5,null,{"request_id":[2]}]`,
	}
	domainSeeds = []string{
		`{"service":"rtbf","account":"1234","baseURI":"va.data-mng.liveperson.net"}`,
		`{"baseURIs":[{"account":"1234","baseURI":"va.msghist.liveperson.net","service":"msgHist"}]}`,
		`{"baseURI":5}`, `{}`, `{"baseURIs":[]}`, `{"service":"msgHist","baseURI":"h"}`,
		`{"service":"rtbf","baseURI":"h","baseURIs":[{"service":"rtbf","baseURI":"g"}]}`,
	}
)

func FuzzDecodeEngagements(f *testing.F) {
	for _, s := range engSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, count, err := decodeEngagements(b)
		if err == nil && count < len(recs) {
			t.Fatalf("count %d < %d records", count, len(recs))
		}
		for _, r := range recs {
			if r.EngagementID == "" {
				t.Fatal("record without id accepted")
			}
			checkMasked(t, r.Masked(), r.ContentRead, r.Transcript, r.Attributes, r.Unauth)
		}
	})
}

func FuzzDecodeConversations(f *testing.F) {
	for _, s := range convSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		unasked, _, _ := decodeConversations(b, false)
		for _, r := range unasked {
			if r.ContentRead || r.Masked() {
				t.Fatal("content read without messages asked for")
			}
		}
		recs, count, err := decodeConversations(b, true)
		if err == nil && count < len(recs) {
			t.Fatalf("count %d < %d records", count, len(recs))
		}
		for _, r := range recs {
			if r.ConversationID == "" {
				t.Fatal("record without id accepted")
			}
			_ = r.ConsumerIDs()
			checkMasked(t, r.Masked(), r.ContentRead, r.Messages, r.Attributes, r.Unauth)
		}
	})
}

func FuzzDecodeDeletions(f *testing.F) {
	for _, s := range delSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := decodeDeletions(b)
		if err != nil {
			return
		}
		for _, r := range rs {
			if _, _, err := r.Targets(); !r.Echoed() && !errors.Is(err, ErrNotEchoed) {
				t.Fatalf("no echo, Targets error %v", err)
			}
		}
	})
}

// checkMasked holds for every decoded record: Masked only with content read,
// every consumer line and every attribute masked, unauthenticated attributes
// among the record's attributes.
func checkMasked(t *testing.T, masked, read bool, lines []Line, all, unauth Attributes) {
	t.Helper()
	if masked && !read {
		t.Fatal("masked without content read")
	}
	for _, l := range lines {
		if masked && l.Consumer && !l.Masked {
			t.Fatalf("masked with an unmasked consumer line")
		}
		if l.Masked && !allDeleted(l.Texts) {
			t.Fatalf("line masked with unmasked text")
		}
	}
	for _, v := range unauth.CustomerIDs {
		if !slices.Contains(all.CustomerIDs, v) {
			t.Fatal("unauthenticated customer id missing from the attributes")
		}
	}
	if masked && !all.masked() {
		t.Fatal("masked with an unmasked attribute")
	}
}

func FuzzDecodeDomain(f *testing.F) {
	for _, s := range domainSeeds {
		f.Add([]byte(s), "rtbf")
		f.Add([]byte(s), "msgHist")
	}
	f.Fuzz(func(t *testing.T, b []byte, service string) {
		if h, err := decodeBaseURI(b, service); err == nil {
			if h == "" {
				t.Fatal("empty baseURI accepted")
			}
			var r struct {
				Service  *string `json:"service"`
				BaseURIs []struct {
					Service *string `json:"service"`
				} `json:"baseURIs"`
			}
			// An answer naming only other services is never taken.
			if json.Unmarshal(b, &r) == nil && r.Service != nil && *r.Service != service {
				named := false
				for _, e := range r.BaseURIs {
					named = named || e.Service != nil && *e.Service == service
				}
				if !named {
					t.Fatalf("host of another service accepted for %q", service)
				}
			}
		}
		if m, err := decodeBaseURIs(b); err == nil {
			for svc, h := range m {
				if svc == "" || h == "" {
					t.Fatal("empty entry accepted")
				}
			}
		}
	})
}

func FuzzTokenLifetime(f *testing.F) {
	for _, s := range []string{`{"iat":1000,"exp":4600}`, `{"exp":1e300}`, `{"exp":-1e300,"iat":1e300}`, `{"exp":"x"}`, `[]`} {
		f.Add("e30." + b64(s) + ".sig")
	}
	f.Fuzz(func(t *testing.T, jwt string) {
		_ = tokenLifetime(jwt, time.Unix(1000, 0))
	})
}

package liveperson

import (
	"encoding/base64"
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
	}
	convSeeds = []string{
		`{"_metadata":{"count":1},"conversationHistoryRecords":[{"info":{"conversationId":"c1","status":"CLOSE","startTimeL":1,"endTimeL":2,"isPartial":false},"consumerParticipants":[{"participantId":"p1","firstName":"J"}],"sdes":{"events":[{"customerInfo":{"customerInfo":{"customerId":"X"}},"sdeType":"CUSTOMER_INFO"}]},"messageRecords":[{"messageData":{"msg":{"text":"hello"}}}]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"consumerParticipant":[{"participantId":"p1"}]}]}`,
		`{"conversationHistoryRecords":[{"info":{"conversationId":"c1"},"consumerParticipant":{"participantId":"p1"}}]}`,
		`{"_metadata":{"shardsStatusResult":{"partialResult":true}}}`, `{"conversationHistoryRecords":[{}]}`,
	}
	delSeeds = []string{
		`{"request_id":127223,"siteid":"20762324","request_time":"2018-01-04T14:07:32.000Z","requested_by":"Mike","cancelled_by":null,"delete_json":"{\"engagement\":[\"207623244295067780\"]}","cancel_timestamp":null,"is_canceled":false}`,
		`[{"request_id":"127223","siteId":"20762324","request_time":1515075052000,"status":"DONE","delete_json":{"consumer":["p"]}}]`,
		`[]`, `[{"is_canceled":true,"cancel_timestamp":"2018-01-04 14:07:32"}]`, `{"request_id":{"x":1}}`,
	}
	domainSeeds = []string{
		`{"service":"rtbf","account":"1234","baseURI":"va.data-mng.liveperson.net"}`,
		`{"baseURIs":[{"account":"1234","baseURI":"va.msghist.liveperson.net","service":"msgHist"}]}`,
		`{"baseURI":5}`, `{}`,
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
			_ = r.Masked()
		}
	})
}

func FuzzDecodeConversations(f *testing.F) {
	for _, s := range convSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, count, err := decodeConversations(b)
		if err == nil && count < len(recs) {
			t.Fatalf("count %d < %d records", count, len(recs))
		}
		for _, r := range recs {
			if r.ConversationID == "" {
				t.Fatal("record without id accepted")
			}
			_ = r.ConsumerIDs()
			_ = r.Masked()
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
			_, _, _ = r.Targets()
		}
	})
}

func FuzzDecodeDomain(f *testing.F) {
	for _, s := range domainSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeBaseURI(b); err == nil && h == "" {
			t.Fatal("empty baseURI accepted")
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

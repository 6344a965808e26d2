package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSubmitRefusesBadInput: each request is refused as invalid, naming the field at fault and
// never the value, and nothing is stored.
func TestSubmitRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	base := func(mod func(*SubmitRequest)) SubmitRequest {
		r := submitReq("", "1234", customer("CANARY-7731"))
		mod(&r)
		return r
	}
	tests := []struct {
		name  string
		req   SubmitRequest
		field string
	}{
		{"received in year 1", base(func(r *SubmitRequest) { r.ReceivedTime, r.ReceivedTimeSet = time.Time{}, true }), "received_time"},
		{"received in 1969", base(func(r *SubmitRequest) { r.ReceivedTime = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }), "received_time"},
		{"received the day before the GDPR applied", base(func(r *SubmitRequest) { r.ReceivedTime = time.Date(2018, 5, 24, 23, 59, 59, 0, time.UTC) }), "received_time"},
		{"received six minutes ahead", base(func(r *SubmitRequest) { r.ReceivedTime = now.Add(6 * time.Minute) }), "received_time"},
		{"whitespace customer id", base(func(r *SubmitRequest) { r.Subject = customer(" \t ") }), "subject.customer_id"},
		{"customer id of a zero-width space", base(func(r *SubmitRequest) { r.Subject = customer("\u200b") }), "subject.customer_id"},
		{"customer id with DEL", base(func(r *SubmitRequest) { r.Subject = customer("ABC\x7f123") }), "subject.customer_id"},
		{"customer id with NEL", base(func(r *SubmitRequest) { r.Subject = customer("ABC\u0085123") }), "subject.customer_id"},
		{"customer id with a line separator", base(func(r *SubmitRequest) { r.Subject = customer("ABC\u2028123") }), "subject.customer_id"},
		{"customer id with a tab", base(func(r *SubmitRequest) { r.Subject = customer("ABC\t123") }), "subject.customer_id"},
		{"customer id with a trailing space", base(func(r *SubmitRequest) { r.Subject = customer("ABC-123 ") }), "subject.customer_id"},
		{"customer id not UTF-8", base(func(r *SubmitRequest) { r.Subject = customer("ABC\xff") }), "subject.customer_id"},
		{"phone without digits", base(func(r *SubmitRequest) { r.Subject = Subject{Kind: SubjectPhone, Value: "(-) ."} }), "subject.phone"},
		{"blank e-mail", base(func(r *SubmitRequest) { r.Subject = Subject{Kind: SubjectEmail, Value: "  "} }), "subject.email"},
		{"whitespace alias", base(func(r *SubmitRequest) { r.Aliases = []Subject{customer("\u3000")} }), "aliases[0]"},
		{"alias with a line separator", base(func(r *SubmitRequest) {
			r.Aliases = []Subject{{Kind: SubjectEmail, Value: "a@example.com"}, customer("X\u2028Y")}
		}), "aliases[1]"},
		{"external_ref is the customer id", base(func(r *SubmitRequest) { r.ExternalRef = "CANARY-7731" }), "external_ref"},
		{"external_ref holds the customer id", base(func(r *SubmitRequest) { r.ExternalRef = "TICKET/CANARY-7731/2" }), "external_ref"},
		{"external_ref is the e-mail in capitals", base(func(r *SubmitRequest) {
			r.Subject = Subject{Kind: SubjectEmail, Value: "jane.canary@example.com"}
			r.ExternalRef = "JANE.CANARY@EXAMPLE.COM"
		}), "external_ref"},
		{"external_ref holds an alias e-mail", base(func(r *SubmitRequest) {
			r.Aliases = []Subject{{Kind: SubjectEmail, Value: "Jane.Canary@example.com"}}
			r.ExternalRef = "re: jane.canary@example.com"
		}), "external_ref"},
		{"external_ref is the phone written otherwise", base(func(r *SubmitRequest) {
			r.Aliases = []Subject{{Kind: SubjectPhone, Value: "+44 20 7946 0958"}}
			r.ExternalRef = "442079460958"
		}), "external_ref"},
		{"external_ref holds the phone", base(func(r *SubmitRequest) {
			r.Subject = Subject{Kind: SubjectPhone, Value: "020 7946 0958"}
			r.ExternalRef = "call-back 020-7946-0958 ticket"
		}), "external_ref"},
		{"external_ref is a short customer id", base(func(r *SubmitRequest) { r.Subject, r.ExternalRef = customer("C-42"), "C-42" }), "external_ref"},
	}
	for i, tt := range tests {
		// A request id of its own: on code that accepts one of them, the others still say why.
		tt.req.RequestID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		_, err := e.svc.Submit(context.Background(), tt.req)
		var se *Error
		if !asError(err, &se) || se.Kind != KindInvalid || se.Metadata["field"] != tt.field {
			t.Errorf("%s: Submit = %v, want Invalid naming %s", tt.name, err, tt.field)
			continue
		}
		for _, v := range append([]Subject{tt.req.Subject}, tt.req.Aliases...) {
			if v.Value != "" && strings.Contains(se.Message, strings.TrimSpace(v.Value)) && strings.TrimSpace(v.Value) != "" {
				t.Errorf("%s: the error %q holds the identifier", tt.name, se.Message)
			}
		}
	}
	if got, err := e.svc.List(context.Background(), ListRequest{}); err != nil || len(got.Erasures) != 0 {
		t.Errorf("List after refused Submits = %d erasures, %v; want none", len(got.Erasures), err)
	}
}

// TestSubmitAcceptsGoodEdges: the bounds themselves, and an external_ref that merely shares a
// short identifier's characters, are accepted.
func TestSubmitAcceptsGoodEdges(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	tests := []struct {
		name string
		mod  func(*SubmitRequest)
	}{
		{"received when the GDPR began", func(r *SubmitRequest) { r.ReceivedTime = gdprStart }},
		{"received five minutes ahead", func(r *SubmitRequest) { r.ReceivedTime = now.Add(clockSkew) }},
		{"short id inside the ref", func(r *SubmitRequest) { r.Subject, r.ExternalRef = customer("C-42"), "TICKET-C-4217" }},
		{"unrelated ref", func(r *SubmitRequest) { r.ExternalRef = "ZD-100200" }},
		{"customer id with inner spaces", func(r *SubmitRequest) { r.Subject = customer("ACME 0042 X") }},
	}
	for i, tt := range tests {
		r := submitReq("00000000-0000-4000-8000-00000000000"+string(rune('1'+i)), "1234", customer("GOOD-EDGE-"+string(rune('A'+i))))
		tt.mod(&r)
		if _, err := e.svc.Submit(context.Background(), r); err != nil {
			t.Errorf("%s: Submit = %v, want accepted", tt.name, err)
		}
	}
}

// TestSubmitExplicitReceivedTime: a received_time given is kept as given, never read as "now".
func TestSubmitExplicitReceivedTime(t *testing.T) {
	e := newEnv(t)
	at := e.clock.Now().Add(-48 * time.Hour)
	r := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("RT-1"))
	r.ReceivedTime, r.ReceivedTimeSet = at, true
	if got := e.submit(r).Erasure; !got.ReceivedTime.Equal(at) {
		t.Errorf("received_time = %v, want %v", got.ReceivedTime, at)
	}
	unset := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("RT-2"))).Erasure
	if !unset.ReceivedTime.Equal(e.clock.Now()) {
		t.Errorf("received_time unset = %v, want now %v", unset.ReceivedTime, e.clock.Now())
	}
}

// TestPreviewRefusesBlankIdentifier: a whitespace-only identifier never reaches LivePerson.
func TestPreviewRefusesBlankIdentifier(t *testing.T) {
	e := newPipeEnv(t)
	for _, tt := range []struct {
		subj    Subject
		aliases []Subject
	}{
		{customer("   "), nil},
		{customer("A-1"), []Subject{customer("\u2028")}},
	} {
		if _, err := e.svc.Preview(context.Background(), "1234", tt.subj, nil, tt.aliases...); KindOf(err) != KindInvalid {
			t.Errorf("Preview(%q, %q) = %v, want Invalid", tt.subj.Value, tt.aliases, err)
		}
	}
	if calls := e.lp.searchCalls(""); len(calls) != 0 {
		t.Errorf("LivePerson was searched for refused identifiers: %q", calls)
	}
}

package liveperson_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/erasured/erasured/liveperson"
)

// TestDomainBaseURIForms: the single-service call accepts the older one-entry
// answer and the newer list answer, taking the entry of the service asked
// for, and refuses an answer that holds no host for it.
func TestDomainBaseURIForms(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
	}{
		{"one entry", `{"service":"rtbf","account":"1234","baseURI":"va.data-mng.liveperson.net"}`, "va.data-mng.liveperson.net"},
		{"one entry without service", `{"account":"1234","baseURI":"va.data-mng.liveperson.net"}`, "va.data-mng.liveperson.net"},
		{"list", `{"baseURIs":[{"account":"1234","baseURI":"va-a.msghist.liveperson.net","service":"msgHist"},` +
			`{"account":"1234","baseURI":"va.data-mng.liveperson.net","service":"rtbf"}]}`, "va.data-mng.liveperson.net"},
		{"list without the service", `{"baseURIs":[{"account":"1234","baseURI":"va-a.msghist.liveperson.net","service":"msgHist"}]}`, ""},
		{"empty list", `{"baseURIs":[]}`, ""},
		{"one entry of another service", `{"service":"msgHist","account":"1234","baseURI":"va-a.msghist.liveperson.net"}`, ""},
		{"service names are case-sensitive", `{"baseURIs":[{"baseURI":"va.data-mng.liveperson.net","service":"RTBF"}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path + "?" + r.URL.RawQuery
				_, _ = io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			d, err := liveperson.NewDomainAPI(srv.URL, liveperson.WithClock(liveperson.NewFakeClock(t0)),
				liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 1}))
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.BaseURI(context.Background(), acct, liveperson.ServiceDeletion)
			if path != "/api/account/1234/service/rtbf/baseURI.json?version=1.0" {
				t.Errorf("asked %s", path)
			}
			if tc.want == "" {
				if err == nil {
					t.Errorf("BaseURI = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("BaseURI = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

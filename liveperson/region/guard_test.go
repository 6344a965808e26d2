package region

import "testing"

func TestAllowed(t *testing.T) {
	prod := &Router{patterns: DefaultPatterns()}
	test := &Router{patterns: DefaultPatterns(), testMode: true}
	for _, tc := range []struct {
		r          *Router
		reg, host  string
		wantAccept bool
	}{
		{prod, US, "va.data-mng.liveperson.net", true},
		{prod, US, "VA.msghist.liveperson.net", true},
		{prod, US, "lo.data-mng.liveperson.net", false},
		{prod, UK, "lo.sentinel.liveperson.net:443", true},
		{prod, APAC, "sy.enghist.liveperson.net", true},
		{prod, APAC, "va.enghist.liveperson.net", false},
		{prod, US, "127.0.0.1:8080", false},
		{test, US, "127.0.0.1:8080", true},
		{test, UK, "localhost:9", true},
		{test, UK, "[::1]:9", true},
		{test, UK, "va.data-mng.liveperson.net", false},
		{prod, US, "va.x.net/evil", false},
		{prod, US, "user@va.x.net", false},
		{prod, US, "https://va.x.net", false},
		{prod, US, "", false},
		{prod, "", "va.x.net", false},
	} {
		if got := tc.r.allowed(tc.reg, tc.host); got != tc.wantAccept {
			t.Errorf("allowed(%s, %q, test=%v) = %v, want %v", tc.reg, tc.host, tc.r.testMode, got, tc.wantAccept)
		}
	}
}

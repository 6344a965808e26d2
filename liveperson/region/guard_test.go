package region

import (
	"errors"
	"testing"
)

func TestAllowed(t *testing.T) {
	prod := &Router{patterns: DefaultPatterns()}
	test := &Router{patterns: DefaultPatterns(), testMode: true}
	for _, tc := range []struct {
		r          *Router
		reg, host  string
		wantAccept bool
	}{
		// Both of LivePerson's naming styles, for every region.
		{prod, US, "va.data-mng.liveperson.net", true},
		{prod, US, "va.sentinel.liveperson.net", true},
		{prod, US, "va-a.msghist.liveperson.net", true},
		{prod, US, "va-a.enghist.liveperson.net", true},
		{prod, US, "va-a.agentmng.liveperson.net", true},
		{prod, US, "VA.msghist.liveperson.net", true},
		{prod, UK, "lo.sentinel.liveperson.net:443", true},
		{prod, UK, "lo-a.msghist.liveperson.net", true},
		{prod, APAC, "sy.enghist.liveperson.net", true},
		{prod, APAC, "sy-a.enghist.liveperson.net", true},
		// Another region's hosts, or outside LivePerson's domain.
		{prod, US, "lo.data-mng.liveperson.net", false},
		{prod, US, "lo-a.msghist.liveperson.net", false},
		{prod, APAC, "va.enghist.liveperson.net", false},
		{prod, US, "va.liveperson.net.evil.example", false},
		{prod, US, "va-a.evil.example", false},
		{prod, US, "va.x.net", false},
		{prod, US, "127.0.0.1:8080", false},
		// Test mode: loopback passes, names are still checked.
		{test, US, "127.0.0.1:8080", true},
		{test, UK, "localhost:9", true},
		{test, UK, "[::1]:9", true},
		{test, UK, "va.data-mng.liveperson.net", false},
		{test, UK, "va-a.msghist.liveperson.net:8080", false},
		{test, UK, "lo-a.msghist.liveperson.net:8080", true},
		// Not a bare host.
		{prod, US, "va.x.liveperson.net/evil", false},
		{prod, US, "user@va.x.liveperson.net", false},
		{prod, US, "https://va.x.liveperson.net", false},
		{prod, US, "", false},
		{prod, "", "va.x.liveperson.net", false},
	} {
		if got := tc.r.allowed(tc.reg, tc.host); got != tc.wantAccept {
			t.Errorf("allowed(%s, %q, test=%v) = %v, want %v", tc.reg, tc.host, tc.r.testMode, got, tc.wantAccept)
		}
	}
}

// TestConfiguredPatternsReplaceDefaults: a region given in Config.Patterns
// uses only those patterns; the other regions keep their defaults.
func TestConfiguredPatternsReplaceDefaults(t *testing.T) {
	r, err := New(Config{DomainAPIURL: "https://api.liveperson.net", Accounts: map[string]string{"1": UK, "2": US},
		Patterns: map[string][]string{UK: {"eu-*.lp.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reg, host string
		want      bool
	}{
		{UK, "eu-1.lp.example", true},
		{UK, "lo.data-mng.liveperson.net", false}, // a default no longer there
		{US, "va.data-mng.liveperson.net", true},  // another region's defaults kept
		{US, "eu-1.lp.example", false},
	} {
		if got := r.allowed(tc.reg, tc.host); got != tc.want {
			t.Errorf("allowed(%s, %q) = %v, want %v", tc.reg, tc.host, got, tc.want)
		}
	}
	// The static rtbf host is not used where the configured patterns refuse it.
	if _, err := r.fallback(serviceKey{"1", "rtbf"}, UK, errTest); err != errTest {
		t.Errorf("static fallback outside the UK patterns = %v, want the discovery error", err)
	}
}

var errTest = errors.New("discovery failed")

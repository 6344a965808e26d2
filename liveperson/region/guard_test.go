package region

import (
	"errors"
	"testing"
)

func TestRefusal(t *testing.T) {
	prod := &Router{patterns: DefaultPatterns()}
	test := &Router{patterns: DefaultPatterns(), testMode: true}
	named := &Router{patterns: DefaultPatterns(), testMode: true, namedHosts: true}
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
		// Test mode: loopback passes; names are called only when the test
		// allows them, and then held to the patterns.
		{test, US, "127.0.0.1:8080", true},
		{test, UK, "localhost:9", true},
		{test, UK, "[::1]:9", true},
		{test, UK, "lo.data-mng.liveperson.net", false},
		{test, UK, "lo-a.msghist.liveperson.net:8080", false},
		{named, UK, "127.0.0.1:8080", true},
		{named, UK, "va.data-mng.liveperson.net", false},
		{named, UK, "va-a.msghist.liveperson.net:8080", false},
		{named, UK, "lo-a.msghist.liveperson.net:8080", true},
		// Not a bare host.
		{prod, US, "va.x.liveperson.net/evil", false},
		{prod, US, "user@va.x.liveperson.net", false},
		{prod, US, "https://va.x.liveperson.net", false},
		{prod, US, "", false},
		{prod, "", "va.x.liveperson.net", false},
	} {
		why := tc.r.refusal(tc.reg, tc.host)
		if (why == "") != tc.wantAccept {
			t.Errorf("refusal(%s, %q, test=%v, named=%v) = %q, want accepted %v", tc.reg, tc.host,
				tc.r.testMode, tc.r.namedHosts, why, tc.wantAccept)
		}
		// A name refused in test mode without named hosts says so.
		wantWhy := ReasonRegion
		if name, ok := hostName(tc.host); tc.r == test && ok && !isLoopback(name) {
			wantWhy = ReasonTestMode
		}
		if why != "" && why != wantWhy {
			t.Errorf("refusal(%s, %q, test=%v, named=%v) = %q, want %q", tc.reg, tc.host,
				tc.r.testMode, tc.r.namedHosts, why, wantWhy)
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
		if got := r.refusal(tc.reg, tc.host) == ""; got != tc.want {
			t.Errorf("accepted(%s, %q) = %v, want %v", tc.reg, tc.host, got, tc.want)
		}
	}
	// The static rtbf host is not used where the configured patterns refuse it.
	if _, err := r.fallback(serviceKey{"1", "rtbf"}, UK, errTest); err != errTest {
		t.Errorf("static fallback outside the UK patterns = %v, want the discovery error", err)
	}
}

// TestStaticFallbackNotInTestMode: the static rtbf host serves an account whose
// discovery never succeeded in production, never in loopback test mode, where
// it would be called over plain http.
func TestStaticFallbackNotInTestMode(t *testing.T) {
	for _, tc := range []struct {
		url, want string
		err       error
	}{
		{"https://api.liveperson.net", "lo.data-mng.liveperson.net", nil},
		{"http://127.0.0.1:1", "", errTest},
	} {
		r, err := New(Config{DomainAPIURL: tc.url, Accounts: map[string]string{"1": UK}})
		if err != nil {
			t.Fatal(err)
		}
		if h, err := r.fallback(serviceKey{"1", "rtbf"}, UK, errTest); h != tc.want || err != tc.err {
			t.Errorf("%s: static fallback = %q, %v; want %q, %v", tc.url, h, err, tc.want, tc.err)
		}
	}
}

// TestCheckPattern: a pattern must end in a literal domain of two labels or
// more, so that no pattern lets every host, or a whole top-level domain,
// through the guard; the defaults pass.
func TestCheckPattern(t *testing.T) {
	for _, pats := range DefaultPatterns() {
		for _, p := range pats {
			if err := CheckPattern(p); err != nil {
				t.Errorf("default pattern: %v", err)
			}
		}
	}
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"*.liveperson.net", true},
		{"va-*.liveperson.net", true},
		{"va.[a-z]*.liveperson.net", true},
		{"eu-1.lp.example", true},
		{"liveperson.net", true},
		{"", false},
		{"*", false},
		{"*.com", false},
		{"va.*", false},
		{"va.*.*", false},
		{"va.*liveperson.net", false},
		{"va.liveperson.ne?", false},
		{"va.liveperson.n[e]t", false},
		{`va.liveperson\.net`, false},
		{"va.liveperson.net.", false},
		{"localhost", false},
		{"va.[x", false},
	} {
		if err := CheckPattern(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckPattern(%q) = %v, want ok %v", tc.p, err, tc.ok)
		}
	}
	if _, err := New(Config{Patterns: map[string][]string{UK: {"lo.*"}}}); err == nil {
		t.Error("New accepted the pattern lo.*")
	}
}

var errTest = errors.New("discovery failed")

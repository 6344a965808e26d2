package liveperson

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"99999999999999999999", 24 * time.Hour, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute, true},
		{"Sun Mar  1 12:00:10 2026", 10 * time.Second, true},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},
		{"Sun, 01 Mar 2027 11:00:00 GMT", 24 * time.Hour, true},
		{"soon", 0, false},
	} {
		got, ok := ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "5", "120", "Sun, 01 Mar 2026 12:00:30 GMT", "Sunday, 01-Mar-26 12:01:00 GMT",
		"Sun Mar  1 12:00:10 2026", "99999999999999999999999", "-1", "1e3", "\x00"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

func TestRetryPolicyWaits(t *testing.T) {
	p := RetryPolicy{Jitter: -1}.withDefaults()
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, p.serverErrorWait(n, 0, nil))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 2 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("serverErrorWait (-want +got):\n%s", diff)
	}
	if got := p.rateLimitWait(1, 0, nil); got != time.Second {
		t.Errorf("rateLimitWait(1, 0) = %v, want 1s", got)
	}
	if got := p.rateLimitWait(3, 0, nil); got != 4*time.Second {
		t.Errorf("rateLimitWait(3, 0) = %v, want 4s", got)
	}
	if got := p.rateLimitWait(1, 9*time.Second, nil); got != 9*time.Second {
		t.Errorf("rateLimitWait(1, 9s) = %v, want 9s", got)
	}
	j := RetryPolicy{}.withDefaults()
	if got := j.serverErrorWait(1, 0, func() float64 { return 1 }); got != 6*time.Second {
		t.Errorf("serverErrorWait with full jitter = %v, want 6s", got)
	}
}

func TestErrorsCarryNoBody(t *testing.T) {
	e := &Error{Kind: KindTerminal, Service: ServiceDeletion, Op: opCreate, Status: 400, Reason: "request refused"}
	if got, want := e.Error(), "liveperson rtbf deletion.create: terminal (HTTP 400): request refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := errors.Join(errors.New("context"), e)
	if KindOf(wrapped) != KindTerminal || IsRetryable(wrapped) {
		t.Errorf("KindOf(wrapped) = %v", KindOf(wrapped))
	}
	if got := oauthProblem([]byte("oauth_problem=signature_invalid&x=SECRET")); got != "oauth_problem=signature_invalid" {
		t.Errorf("oauthProblem = %q", got)
	}
	if got := oauthProblem([]byte("jane.doe@example.com")); strings.Contains(got, "jane") {
		t.Errorf("oauthProblem leaked body: %q", got)
	}
}

// TestCheckWindowRounded: LivePerson rounds from down and to up to 10
// minutes, and the limit holds for the rounded window.
func TestCheckWindowRounded(t *testing.T) {
	aligned := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name     string
		from, to time.Time
		limit    time.Duration
		ok       bool
	}{
		{"28 days aligned", aligned, aligned.Add(28 * day), MaxEngagementWindow, true},
		{"28 days from 10:03", aligned.Add(3 * time.Minute), aligned.Add(28*day + 3*time.Minute), MaxEngagementWindow, false},
		{"28 days less a ms from 10:03", aligned.Add(3 * time.Minute), aligned.Add(28 * day), MaxEngagementWindow, true},
		{"to a ms past a boundary", aligned, aligned.Add(28*day + time.Millisecond), MaxEngagementWindow, false},
		{"29 days", aligned, aligned.Add(29 * day), MaxEngagementWindow, false},
		{"89 days aligned", aligned, aligned.Add(89 * day), MaxConversationWindow, true},
		{"89 days from 10:03", aligned.Add(3 * time.Minute), aligned.Add(89*day + 3*time.Minute), MaxConversationWindow, false},
		{"90 days", aligned, aligned.Add(90 * day), MaxConversationWindow, false},
		{"before 1970", time.Unix(-3*60-1, 0), time.Unix(-3*60-1, 0).Add(28 * day), MaxEngagementWindow, false},
	} {
		err := checkWindow(ServiceEngagements, opEngSearch, tc.from, tc.to, tc.limit)
		if (err == nil) != tc.ok {
			t.Errorf("%s: checkWindow = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && KindOf(err) != KindInvalid {
			t.Errorf("%s: kind %v, want invalid", tc.name, KindOf(err))
		}
	}
}

func TestPossiblyUnsearchable(t *testing.T) {
	for in, want := range map[string]bool{
		"12345678":             true,
		"+44 7700 900123":      true,
		"0044-7700":            true,
		"(020) 7946 0958":      true,
		"jane1984@example.com": false,
		"CUST-12345":           false,
		"ABC-123":              false,
		"123":                  false,
		"12-34-56":             false,
		"":                     false,
		"١٢٣٤٥":                true, // digits of any script: reporting is the safe side
	} {
		if got := PossiblyUnsearchable(in); got != want {
			t.Errorf("PossiblyUnsearchable(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTokenLifetime(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		payload string
		want    time.Duration
	}{
		{`{"iat":1000,"exp":4600}`, time.Hour},
		{`{"iat":5000,"exp":5600}`, 10 * time.Minute}, // our clock is behind: lifetime still counts
		{`{"exp":1600}`, 10 * time.Minute},
		{`{"sub":"x"}`, 0},
	} {
		jwt := "e30." + b64(tc.payload) + ".sig"
		if got := tokenLifetime(jwt, now); got != tc.want {
			t.Errorf("tokenLifetime(%s) = %v, want %v", tc.payload, got, tc.want)
		}
	}
	if got := tokenLifetime("not-a-jwt", now); got != 0 {
		t.Errorf("tokenLifetime(opaque) = %v, want 0", got)
	}
}

// TestOAuth1HeaderRFC5849 checks the full header for RFC 5849 §1.2's example.
func TestOAuth1HeaderRFC5849(t *testing.T) {
	k := OAuth1Keys{ConsumerKey: "dpf43f3p2l4k3l03", ConsumerSecret: "kd94hf93k423kf44",
		Token: "nnch734d00sl2jdk", TokenSecret: "pfkkdhi9sl3r4s00"}
	u, _ := url.Parse("http://photos.example.net/photos?file=vacation.jpg&size=original")
	h := oauth1Header("GET", u, k, "137131202", "chapoH", false)
	if !strings.Contains(h, `oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D"`) {
		t.Errorf("header %q lacks the RFC 5849 signature", h)
	}
}

package lpsim

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
)

const (
	singlePath = "/api/account/" + acct + "/service/rtbf/baseURI.json"
	listPath   = "/api/account/" + acct + "/service/baseURI.json"
)

// TestDiscoveryReadings: the single form answers the object or the list
// shape as the reading says; the list form is gone in the single-only
// reading.
func TestDiscoveryReadings(t *testing.T) {
	for _, tc := range []struct {
		v          Variants
		listStatus int
	}{
		{Variants{}, 200},
		{Variants{Discovery: DiscoverySingleOnly}, 404},
		{Variants{Discovery: DiscoverySingleOnly, DiscoveryAnswer: AnswerList}, 404},
		{Variants{DiscoveryAnswer: AnswerList}, 200},
	} {
		h := newHarness(t, Config{Variants: tc.v, Host: "sim.test:1"})
		st, b := h.do(t, "GET", singlePath, "version=1.0", "")
		single := decodeJSON(t, b)
		entry := single
		if tc.v.DiscoveryAnswer == AnswerList {
			if l, _ := dig(single, "baseURIs").([]any); len(l) != 1 || dig(single, "baseURI") != nil {
				t.Errorf("%v: single form = %s, want a list of one", tc.v, b)
			}
			entry = dig(single, "baseURIs", 0)
		}
		if st != 200 || dig(entry, "baseURI") != "sim.test:1" || dig(entry, "service") != "rtbf" || dig(entry, "account") != acct {
			t.Errorf("%v: single form = %d %s", tc.v, st, b)
		}
		if st, b := h.do(t, "GET", listPath, "version=1.0", ""); st != tc.listStatus ||
			(st == 200 && len(dig(decodeJSON(t, b), "baseURIs").([]any)) != len(KnownServices)) {
			t.Errorf("%v: list form = %d %s, want %d", tc.v, st, b, tc.listStatus)
		}
	}
}

// TestNamedHosts: with named hosts the Domain API answers LivePerson's names
// for the account's region in the variant's style, and a request reaching
// another region's or another service's name is refused.
func TestNamedHosts(t *testing.T) {
	accounts := []Account{DefaultAccount(acct, "us"), DefaultAccount("5678", "uk"), DefaultAccount("9012", "apac")}
	for _, tc := range []struct {
		style, account, service, want string
	}{
		{HostDot, acct, ServiceMsgHist, "va.msghist.liveperson.net:8443"},
		{HostDot, "5678", ServiceEngHist, "lo.enghist.liveperson.net:8443"},
		{HostDot, "9012", ServiceRTBF, "sy.data-mng.liveperson.net:8443"},
		{HostDash, acct, ServiceMsgHist, "va-a.msghist.liveperson.net:8443"},
		{HostDash, "5678", ServiceEngHist, "lo-a.enghist.liveperson.net:8443"},
		{HostDash, "9012", ServiceSentinel, "sy-a.sentinel.liveperson.net:8443"},
		{HostDash, "5678", ServiceRTBF, "lo.data-mng.liveperson.net:8443"},
	} {
		h := newHarness(t, Config{Accounts: accounts, NamedHosts: true, HostPort: "8443", Host: "ignored:1",
			Variants: Variants{HostStyle: tc.style}})
		_, b := h.do(t, "GET", "/api/account/"+tc.account+"/service/"+tc.service+"/baseURI.json", "version=1.0", "")
		if got := dig(decodeJSON(t, b), "baseURI"); got != tc.want {
			t.Errorf("%s %s %s: baseURI %v, want %s", tc.style, tc.account, tc.service, got, tc.want)
		}
		_, b = h.do(t, "GET", "/api/account/"+tc.account+"/service/baseURI.json", "version=1.0", "")
		if !strings.Contains(b, `"baseURI":"`+tc.want+`","service":"`+tc.service+`"`) {
			t.Errorf("%s %s: list form %s lacks %s", tc.style, tc.account, b, tc.want)
		}
	}

	// Without named hosts: Config.Host, else the request's own host.
	h := newHarness(t, Config{Host: "127.0.0.1:9"})
	if _, b := h.do(t, "GET", singlePath, "version=1.0", ""); dig(decodeJSON(t, b), "baseURI") != "127.0.0.1:9" {
		t.Errorf("Config.Host: %s", b)
	}
	h = newHarness(t, Config{})
	if _, b := h.do(t, "GET", singlePath, "version=1.0", ""); dig(decodeJSON(t, b), "baseURI") != strings.TrimPrefix(h.srv.URL, "http://") {
		t.Errorf("request host: %s", b)
	}

	// A client that dials every name to the simulator.
	h = newHarness(t, Config{Accounts: accounts, NamedHosts: true, Variants: Variants{HostStyle: HostDash},
		StaticTokens: map[string]string{"any": "*"}})
	addr := h.srv.Listener.Addr().String()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for _, tc := range []struct {
		host, path, body string
		want             int
	}{
		{"va-a.msghist.liveperson.net", byIDPath, `{"conversationId":"x"}`, 200},
		{"lo-a.msghist.liveperson.net", byIDPath, `{"conversationId":"x"}`, 404}, // another region
		{"va.data-mng.liveperson.net", byIDPath, `{"conversationId":"x"}`, 404},  // another service
		{"va-a.enghist.liveperson.net", byIDPath, `{"conversationId":"x"}`, 404}, // another service
		{"lo.data-mng.liveperson.net", "/api/account/5678/personal-data-deletion", ``, 200},
		{"va.data-mng.liveperson.net", "/api/account/5678/personal-data-deletion", ``, 404},
	} {
		method := "POST"
		if tc.body == "" {
			method = "GET"
		}
		req, _ := http.NewRequest(method, "http://"+tc.host+tc.path+"?source=t", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer any")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s%s: %d %s, want %d", tc.host, tc.path, resp.StatusCode, b, tc.want)
		}
	}
	var hosts []string
	for _, c := range h.sim.Calls() {
		hosts = append(hosts, c.Host)
	}
	if !slices.Contains(hosts, "lo-a.msghist.liveperson.net") {
		t.Errorf("call log hosts = %v, want the refused name logged", hosts)
	}
}

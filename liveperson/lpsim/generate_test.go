package lpsim

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	a := Generate(42, GenOptions{Now: t0, Demo: true})
	b := Generate(42, GenOptions{Now: t0, Demo: true})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different datasets")
	}
	if c := Generate(43, GenOptions{Now: t0}); reflect.DeepEqual(a.Chats[10], c.Chats[10]) {
		t.Error("different seeds, same records")
	}
	if len(a.Consumers) < 2000 || len(a.Chats) < 2000 || len(a.Conversations) < 2000 {
		t.Errorf("dataset: %d consumers, %d chats, %d conversations; want thousands",
			len(a.Consumers), len(a.Chats), len(a.Conversations))
	}
	var open, numeric, old, demo, demoOpen int
	surnames := map[string]int{}
	ids := map[string]bool{}
	for _, c := range a.Conversations {
		if c.Status == "OPEN" {
			open++
		}
		if c.CustomerID == DemoOpenCustomerID && c.Status == "OPEN" {
			demoOpen++
		}
	}
	for _, c := range a.Chats {
		surnames[c.Surname]++
		ids[c.CustomerID] = true
		if strings.Trim(c.CustomerID, "0123456789") == "" {
			numeric++
		}
		if c.Start.Before(t0.Add(-395 * 24 * time.Hour)) {
			old++
		}
		if c.CustomerID == DemoCustomerID {
			demo++
			if !c.Ended || c.End.After(t0.Add(-2*time.Hour)) || c.Email != DemoEmail {
				t.Errorf("demo chat not closed and searchable: %+v", c)
			}
		}
	}
	nearMiss := 0
	for id := range ids {
		if len(id) > 1 && ids[id[:len(id)-1]] {
			nearMiss++
		}
	}
	if open == 0 || numeric == 0 || old == 0 || nearMiss == 0 || surnames["Doe"] < 10 || demo != 3 || demoOpen != 1 {
		t.Errorf("open=%d numeric=%d beyondRetention=%d nearMiss=%d Doe=%d demoChats=%d demoOpen=%d",
			open, numeric, old, nearMiss, surnames["Doe"], demo, demoOpen)
	}
	s := New(Config{Clock: NewManualClock(t0)})
	if err := s.Load(a); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateReadings: the random and the demo data hold the records only a
// client that reads every documented shape finds: flat personalInfo,
// unauthenticated attributes, and conversations with no attribute at all,
// whose consumer carries attributes elsewhere; the unauthenticated share
// follows the option.
func TestGenerateReadings(t *testing.T) {
	count := func(d Dataset) (flat, unauth, bare, bareReachable int) {
		withAttrs := map[string]bool{}
		for _, c := range d.Conversations {
			if c.CustomerID != "" || c.Email != "" {
				withAttrs[c.ConsumerID] = true
			}
		}
		for _, c := range d.Chats {
			if c.PersonalInfoShape == ShapeFlat {
				flat++
			}
		}
		for _, c := range d.Conversations {
			if c.Unauthenticated {
				unauth++
			}
			if c.CustomerID == "" && c.Name == "" && c.Email == "" && c.Phone == "" {
				bare++
				if withAttrs[c.ConsumerID] {
					bareReachable++
				}
			}
		}
		return
	}
	d := Generate(5, GenOptions{Now: t0, Consumers: 1000})
	flat, unauth, bare, reachable := count(d)
	if flat == 0 || bare == 0 || reachable != bare || unauth == 0 || unauth > len(d.Conversations)/10 {
		t.Errorf("share 0: %d flat chats, %d of %d conversations unauthenticated, %d bare (%d reachable by consumer)",
			flat, unauth, len(d.Conversations), bare, reachable)
	}
	d = Generate(5, GenOptions{Now: t0, Consumers: 1000, Unauthenticated: 0.3})
	_, many, _, _ := count(d)
	if share := float64(many) / float64(len(d.Conversations)); share < 0.25 || share > 0.4 {
		t.Errorf("share 0.3: %d of %d conversations unauthenticated", many, len(d.Conversations))
	}

	demo := Generate(5, GenOptions{Now: t0, Consumers: 1, Demo: true})
	var hiddenChat, hiddenUnauth, hiddenBare, numChats, numConvs int
	for _, c := range demo.Chats {
		switch c.CustomerID {
		case DemoHiddenCustomerID:
			if c.PersonalInfoShape == ShapeFlat && c.Email == DemoHiddenEmail {
				hiddenChat++
			}
		case DemoNumericCustomerID:
			numChats++
		}
	}
	for _, c := range demo.Conversations {
		switch {
		case c.ConsumerID == DemoHiddenConsumerID && c.Unauthenticated && c.CustomerID == DemoHiddenCustomerID:
			hiddenUnauth++
		case c.ConsumerID == DemoHiddenConsumerID && c.CustomerID == "" && c.Email == "":
			hiddenBare++
		case c.CustomerID == DemoNumericCustomerID && c.Email == DemoNumericEmail && c.Status == "CLOSE":
			numConvs++
		}
	}
	if hiddenChat != 1 || hiddenUnauth != 1 || hiddenBare != 1 || numChats == 0 || numConvs == 0 {
		t.Errorf("demo: hidden chat %d, unauthenticated %d, bare %d; numeric chats %d, conversations %d",
			hiddenChat, hiddenUnauth, hiddenBare, numChats, numConvs)
	}
	for _, c := range demo.Chats {
		authors := map[string]bool{}
		for _, l := range c.Transcript {
			authors[l.Author] = true
		}
		if len(authors) != 3 {
			t.Fatalf("chat %s transcript authors %v, want consumer, agent and system", c.EngagementID, authors)
		}
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	variants := VariantsFromSeed(3)
	variants.Discovery = DiscoverySingleOnly
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeOptions{Listen: "127.0.0.1:0", Seed: 1, Speed: 1000, Consumers: 50,
			Accounts: []Account{DefaultAccount("1234", "us"), DefaultAccount("5678", "uk")}, Variants: variants}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "lpsim listening on http://127.0.0.1:") {
		t.Fatalf("first line %q", sc.Text())
	}
	base := strings.TrimPrefix(sc.Text(), "lpsim listening on ")
	var line string
	for sc.Scan() {
		if line = sc.Text(); !strings.HasPrefix(line, "lpsim account ") {
			break
		}
	}
	if got, want := line, "lpsim variants: "+variants.String(); got != want {
		t.Errorf("variants line %q, want %q", got, want)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	resp, err := http.Get(base + "/api/account/5678/service/rtbf/baseURI.json?version=1.0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), strings.TrimPrefix(base, "http://")) {
		t.Errorf("domain API: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/api/account/5678/service/baseURI.json?version=1.0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("list form in the single-only reading: %d, want 404", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

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

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeOptions{Listen: "127.0.0.1:0", Seed: 1, Speed: 1000, Consumers: 50,
			Accounts: []Account{DefaultAccount("1234", "us"), DefaultAccount("5678", "uk")}}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "lpsim listening on http://127.0.0.1:") {
		t.Fatalf("first line %q", sc.Text())
	}
	base := strings.TrimPrefix(sc.Text(), "lpsim listening on ")
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
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

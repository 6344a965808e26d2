package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
)

// TestLivePersonAuthPerAccount: one account on OAuth 2.0 client credentials, one on legacy
// OAuth 1.0 app keys (with a start-up warning); both reach the simulator, which checks the
// credentials, and the secrets never appear in the log.
func TestLivePersonAuthPerAccount(t *testing.T) {
	a2, a1 := lpsim.DefaultAccount("1111", "us"), lpsim.DefaultAccount("2222", "us")
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{a2, a1}})
	defer sim.Close()
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()

	dir := t.TempDir()
	file := func(name, v string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(v+"\n"), 0o600)
		return p
	}
	cfg := defaultConfig()
	cfg.LivePerson.DomainAPIURL = ts.URL
	cfg.Accounts = []Account{{ID: a2.ID, Region: "us"}, {ID: a1.ID, Region: "us"}}
	cfg.Accounts[0].Auth.OAuth2.ClientID = a2.ClientID
	cfg.Accounts[0].Auth.OAuth2.ClientSecretFile = file("s2", a2.ClientSecret)
	cfg.Accounts[1].Auth.OAuth1 = &struct {
		ConsumerKey        string `yaml:"consumer_key"`
		ConsumerSecretFile string `yaml:"consumer_secret_file"`
		Token              string `yaml:"token"`
		TokenSecretFile    string `yaml:"token_secret_file"`
	}{ConsumerKey: a1.OAuth1.ConsumerKey, ConsumerSecretFile: file("cs", a1.OAuth1.ConsumerSecret),
		Token: a1.OAuth1.Token, TokenSecretFile: file("ts", a1.OAuth1.TokenSecret)}

	var logs bytes.Buffer
	c, err := newLivePerson(&cfg, slog.New(slog.NewJSONHandler(&logs, nil)), func(liveperson.Observation) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, acct := range []string{a2.ID, a1.ID} {
		q := liveperson.ConversationQuery{From: time.Now().Add(-24 * time.Hour), To: time.Now(), CustomerInfo: "X"}
		if _, err := c.SearchConversations(ctx, acct, q); err != nil {
			t.Errorf("account %s: %v", acct, err)
		}
	}
	if !strings.Contains(logs.String(), "OAuth 1.0") {
		t.Errorf("no start-up warning about OAuth 1.0; logs: %s", logs.String())
	}
	for _, secret := range []string{a2.ClientSecret, a1.OAuth1.ConsumerSecret, a1.OAuth1.TokenSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret appears in the log")
		}
	}
}

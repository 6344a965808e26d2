package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/region"
	"github.com/erasured/erasured/service"
)

// sandboxSpeed is how much faster the sandbox's simulated LivePerson runs than real time:
// LivePerson's 5-day cancel window and 20-day deletion take about 45 seconds.
const sandboxSpeed = 50000

// startSandboxLivePerson serves an in-process LivePerson simulator with the demo data on a
// loopback port, and points cfg at it (loopback test mode: plain http, loopback hosts allowed).
// It returns a function that stops it.
func startSandboxLivePerson(cfg *Config, log *slog.Logger) (func(), error) {
	clock := lpsim.ScaledClock(sandboxSpeed)
	acct := lpsim.DefaultAccount(lpsim.DemoAccount, "us")
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}, Clock: clock, Seed: 1,
		TokenTTL: time.Duration(float64(time.Hour) * sandboxSpeed)})
	if err := sim.Load(lpsim.Generate(1, lpsim.GenOptions{Now: clock.Now(), Accounts: []string{acct.ID}, Consumers: 500, Demo: true})); err != nil {
		sim.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sim.Close()
		return nil, err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)

	cfg.LivePerson.DomainAPIURL = "http://" + lis.Addr().String()
	cfg.Accounts = []Account{{ID: acct.ID, Region: "us", MonthlyQuota: 100}}
	cfg.Accounts[0].Auth.OAuth2.ClientID = acct.ClientID
	cfg.sandboxSecret = acct.ClientSecret
	// Our timings follow the simulator's clock, in real time.
	scale := func(d time.Duration) Duration { return Duration{time.Duration(float64(d) / sandboxSpeed)} }
	cfg.LivePerson.CancelWindow = scale(120 * time.Hour)
	cfg.LivePerson.DeletionWindow = scale(480 * time.Hour)
	cfg.Pipeline.SearchLag = scale(2 * time.Hour)
	cfg.Pipeline.BatchMaxWait = Duration{2 * time.Second}
	cfg.Pipeline.PollInterval = Duration{2 * time.Second}
	log.Warn("sandbox: in-process LivePerson simulator with demo data (account "+acct.ID+
		"; subjects DEMO-CUST-1, jane.doe@example.com, DEMO-CUST-2 with an open conversation); its clock runs 50,000× fast",
		"liveperson", cfg.LivePerson.DomainAPIURL)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		sim.Close()
	}, nil
}

// newLivePerson builds the LivePerson client for the configured accounts: the regional router
// (discovery, residency guard), OAuth 2.0 client credentials read from files, the retry policy
// and limits. observe receives every call for metrics.
func newLivePerson(cfg *Config, log *slog.Logger, observe func(liveperson.Observation)) (*liveperson.Client, error) {
	accounts := map[string]string{}
	creds := map[string]liveperson.ClientCredentials{}
	legacy := &liveperson.OAuth1{Keys: map[string]liveperson.OAuth1Keys{}}
	var errs []error
	readSecret := func(account, path string) string {
		raw, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("accounts %s: secret: %w", account, err))
		}
		return strings.TrimSpace(string(raw))
	}
	for _, a := range cfg.Accounts {
		accounts[a.ID] = a.Region
		if o1 := a.Auth.OAuth1; o1 != nil {
			log.Warn("account uses OAuth 1.0 app keys, which LivePerson stopped supporting on 2026-05-31: move it to OAuth 2.0 client credentials",
				"account", a.ID)
			legacy.Keys[a.ID] = liveperson.OAuth1Keys{ConsumerKey: o1.ConsumerKey, Token: o1.Token,
				ConsumerSecret: readSecret(a.ID, o1.ConsumerSecretFile), TokenSecret: readSecret(a.ID, o1.TokenSecretFile)}
			continue
		}
		secret := cfg.sandboxSecret
		if f := a.Auth.OAuth2.ClientSecretFile; f != "" {
			raw, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("accounts %s: client secret: %w", a.ID, err))
				continue
			}
			secret = strings.TrimSpace(string(raw))
		}
		if a.Auth.OAuth2.ClientID == "" || secret == "" {
			errs = append(errs, fmt.Errorf("accounts %s: auth.oauth2.client_id and client_secret_file are required", a.ID))
			continue
		}
		creds[a.ID] = liveperson.ClientCredentials{ClientID: a.Auth.OAuth2.ClientID, ClientSecret: secret}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	router, err := region.New(region.Config{
		DomainAPIURL: cfg.LivePerson.DomainAPIURL,
		Accounts:     accounts,
		OnViolation: func(v region.Violation) {
			log.Error("RESIDENCY GUARD: refused a LivePerson host outside the account's region",
				"account", v.Account, "region", v.Region, "service", v.Service, "host", v.Host)
		},
	})
	if err != nil {
		return nil, err
	}
	if router.TestMode() {
		log.Warn("LivePerson Domain API is plain http on loopback: test mode, loopback hosts are allowed")
	}
	oauth2, err := liveperson.NewOAuth2(liveperson.OAuth2Config{Credentials: creds, Resolver: router})
	if err != nil {
		return nil, err
	}
	auth := accountAuth{oauth2: oauth2, legacy: legacy}
	return liveperson.New(liveperson.WithResolver(router), liveperson.WithAuth(auth),
		liveperson.WithSource(cfg.LivePerson.Source), liveperson.WithObserver(observe))
}

// pipelineConfig turns the configuration into the pipeline's settings.
func pipelineConfig(cfg *Config) service.PipelineConfig {
	quota := map[string]int{}
	for _, a := range cfg.Accounts {
		if a.MonthlyQuota > 0 {
			quota[a.ID] = a.MonthlyQuota
		}
	}
	return service.PipelineConfig{
		SearchLag:    cfg.Pipeline.SearchLag.Duration,
		BatchMaxWait: cfg.Pipeline.BatchMaxWait.Duration,
		PollInterval: cfg.Pipeline.PollInterval.Duration,
		Workers:      cfg.Pipeline.Workers,
		Quota: func(account string) int {
			if q, ok := quota[account]; ok {
				return q
			}
			return 100
		},
	}
}

// accountAuth authenticates each account the way it is configured: OAuth 2.0 client
// credentials, or legacy OAuth 1.0 app keys.
type accountAuth struct {
	oauth2 *liveperson.OAuth2
	legacy *liveperson.OAuth1
}

func (a accountAuth) Authorize(ctx context.Context, account string, req *http.Request) error {
	if _, ok := a.legacy.Keys[account]; ok {
		return a.legacy.Authorize(ctx, account, req)
	}
	return a.oauth2.Authorize(ctx, account, req)
}

// Invalidate drops a rejected OAuth 2.0 token so the next call fetches a new one.
func (a accountAuth) Invalidate(account string, rejected *http.Request) {
	if _, ok := a.legacy.Keys[account]; !ok {
		a.oauth2.Invalidate(account, rejected)
	}
}

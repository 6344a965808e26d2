package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

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
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()

	cfg.LivePerson.DomainAPIURL = "http://" + lis.Addr().String()
	cfg.Accounts = []Account{{ID: acct.ID, Region: "us", MonthlyQuota: 100}}
	cfg.Accounts[0].Auth.OAuth2.ClientID = acct.ClientID
	cfg.sandboxSecret = acct.ClientSecret
	// Our timings follow the simulator's clock, in real time.
	scale := func(d time.Duration) Duration { return Duration{time.Duration(float64(d) / sandboxSpeed)} }
	lpd := service.DefaultConfig() // LivePerson's windows
	cfg.LivePerson.CancelWindow = scale(lpd.CancelWindow)
	cfg.LivePerson.DeletionWindow = scale(lpd.DeletionWindow)
	cfg.Pipeline.SearchLag = scale(service.DefaultPipelineConfig().SearchLag)
	cfg.Pipeline.BatchMaxWait = Duration{2 * time.Second}
	cfg.Pipeline.PollInterval = Duration{2 * time.Second}
	log.Warn("sandbox: in-process LivePerson simulator with demo data (account "+acct.ID+
		"; subjects DEMO-CUST-1, jane.doe@example.com, DEMO-CUST-2 with an open conversation, DEMO-CUST-3 with records only its consumer id or unauthenticated attributes lead to, 20240117 a numeric id messaging cannot search); its clock runs 50,000× fast",
		"liveperson", cfg.LivePerson.DomainAPIURL)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
		sim.Close()
	}, nil
}

// newLivePerson builds the LivePerson client for the configured accounts (see wireLivePerson).
func newLivePerson(cfg *Config, log *slog.Logger, reports lpReports) (*liveperson.Client, error) {
	lp, err := wireLivePerson(cfg, log, reports)
	if err != nil {
		return nil, err
	}
	return lp.client, nil
}

// lpReports receive what the LivePerson client sees, for metrics; nil functions are skipped.
type lpReports struct {
	// call receives every call: service, operation, status, latency.
	call func(liveperson.Observation)
	// authFailed receives every refusal of an account's credentials for a service.
	authFailed func(account, service string)
	// traces, when set, receives a client span of every HTTP call (see tracedTransport): the
	// services', sentinel's and the Domain API's. Nil: not traced.
	traces trace.TracerProvider
}

// httpOptions are the client options that trace its calls, when tracing is on.
func (r lpReports) httpOptions() []liveperson.Option {
	if hc := tracedClient(r.traces); hc != nil {
		return []liveperson.Option{liveperson.WithHTTPClient(hc)}
	}
	return nil
}

func (r lpReports) observe() func(liveperson.Observation) {
	if r.call == nil {
		return func(liveperson.Observation) {}
	}
	return r.call
}

// livePerson is the wired LivePerson client and what the start-up credential check needs.
type livePerson struct {
	client   *liveperson.Client
	auth     *liveperson.PerService
	accounts []string
}

// wireLivePerson builds the LivePerson client for the configured accounts: the regional router
// (discovery, residency guard), each service's credentials (OAuth 2.0 client credentials or
// OAuth 1.0 app keys, secrets from files or the environment), the retry policy and limits.
// reports receive every call and every refused credential, for metrics.
func wireLivePerson(cfg *Config, log *slog.Logger, reports lpReports) (*livePerson, error) {
	creds, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	accounts := map[string]string{}
	clientCreds := map[string]liveperson.ClientCredentials{}
	legacy := &liveperson.OAuth1{Keys: map[string]liveperson.OAuth1Keys{}}
	auth := &liveperson.PerService{Methods: map[string]map[string]string{}}
	var ids []string
	for _, a := range cfg.Accounts {
		accounts[a.ID] = a.Region
		ids = append(ids, a.ID)
		cr := creds[a.ID]
		if cr.oauth2 != nil {
			clientCreds[a.ID] = *cr.oauth2
		}
		if cr.oauth1 != nil {
			legacy.Keys[a.ID] = *cr.oauth1
		}
		auth.Methods[a.ID] = cr.methods
		for _, svc := range authServices {
			if cr.methods[svc] == liveperson.MethodOAuth1 {
				log.Warn("LivePerson service uses OAuth 1.0 app keys, which LivePerson stopped supporting on 2026-05-31: move it to OAuth 2.0 client credentials",
					"account", a.ID, "service", svc)
			}
		}
	}
	router, err := region.New(region.Config{
		DomainAPIURL: cfg.LivePerson.DomainAPIURL,
		Accounts:     accounts,
		Patterns:     cfg.LivePerson.HostPatterns,
		UseListForm:  cfg.LivePerson.DiscoveryListForm,
		Options:      reports.httpOptions(),
		OnViolation: func(v region.Violation) {
			log.Error("RESIDENCY GUARD: refused a LivePerson host",
				"account", v.Account, "region", v.Region, "service", v.Service, "host", v.Host, "reason", v.Reason)
		},
	})
	if err != nil {
		return nil, err
	}
	if router.TestMode() {
		log.Warn("LivePerson Domain API is plain http on loopback: test mode, only loopback hosts are called")
	}
	// A token is fetched for a waiting call, which retries it on LivePerson's schedule: the fetch
	// itself makes one attempt (NewOAuth2's default), so that it never outlasts its callers by long
	// (it is shared, not cancelled) and sentinel is not asked again within the call's own waits.
	// The token exchange is observed as well: a refused client secret shows at sentinel.
	observe := reports.observe()
	oauth2, err := liveperson.NewOAuth2(liveperson.OAuth2Config{Credentials: clientCreds, Resolver: router,
		Options: append([]liveperson.Option{liveperson.WithCallTimeout(10 * time.Second), liveperson.WithObserver(observe)},
			reports.httpOptions()...)})
	if err != nil {
		return nil, err
	}
	auth.Authenticators = map[string]liveperson.Authenticator{liveperson.MethodOAuth2: oauth2, liveperson.MethodOAuth1: legacy}
	// The pipeline's requests are checked against its term of leadership last, just before
	// they go out (sendguard.go).
	refusals := newAuthFailures(tracedTransport(newSendGuard(http.DefaultTransport), reports.traces), log, reports.authFailed)
	client, err := liveperson.New(liveperson.WithResolver(router), liveperson.WithAuth(refusals.authenticator(auth)),
		liveperson.WithHTTPClient(&http.Client{Transport: refusals}),
		liveperson.WithSource(cfg.LivePerson.Source), liveperson.WithObserver(observe))
	if err != nil {
		return nil, err
	}
	return &livePerson{client: client, auth: auth, accounts: ids}, nil
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
		Workers:      cfg.Pipeline.Workers,
		CallTimeout:  liveperson.DefaultCallTimeout, // the client's, as wireLivePerson builds it
		MaxTxnOps:    maxTxnOps(cfg.Store),
		Quota: func(account string) int {
			if q, ok := quota[account]; ok {
				return q
			}
			return service.DefaultMonthlyQuota
		},
	}
}

// credentialCheckTimeout bounds the start-up credential check: room for one retry of a
// transient failure, short enough that an outage at LivePerson is reported soon.
const credentialCheckTimeout = 15 * time.Second

// checkCredentials makes one cheap read per configured account and service erasured calls, all
// at once, and logs one line for each: the method used, and ok or how it failed (unauthorized,
// forbidden, unreachable, residency, refused). Refused credentials are an ERROR, the rest a
// WARN. It never stops erasured: LivePerson may be down for a while, and the pipeline retries.
// No secret and no response body is logged.
func checkCredentials(ctx context.Context, lp *livePerson, log *slog.Logger, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, credentialCheckTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, acct := range lp.accounts {
		for _, svc := range authServices {
			wg.Go(func() {
				attrs := []any{"account", acct, "service", svc, "method", lp.auth.Method(acct, svc)}
				err := probe(ctx, lp.client, acct, svc, now)
				if err == nil {
					log.Info("LivePerson credentials checked", append(attrs, "result", "ok")...)
					return
				}
				failure := checkFailure(err)
				if r := failure[1]; r == "unauthorized" || r == "forbidden" {
					log.Error("LivePerson credential check: the credentials were refused; erasured runs on, and this service's calls fail until they are fixed",
						append(attrs, failure...)...)
					return
				}
				log.Warn("LivePerson credential check failed: erasured runs on, and this service's calls fail until LivePerson is back",
					append(attrs, failure...)...)
			})
		}
	}
	wg.Wait()
}

// probe is the cheapest read of each service that reads no personal data: today's deletion
// requests (erasured's own), and a chat and a conversation by ids no record has, the chat
// within the last whole ten minutes (LivePerson rounds windows to ten minutes). An empty answer
// proves the credentials as well as a full one, and a busy account's records are not paged
// through for nothing. Whatever comes back is dropped unread.
func probe(ctx context.Context, c *liveperson.Client, account, service string, now time.Time) error {
	to := now.Truncate(10 * time.Minute)
	from := to.Add(-10 * time.Minute)
	var err error
	switch service {
	case liveperson.ServiceDeletion:
		_, err = c.ListDeletions(ctx, account, liveperson.DeletionFilter{FromDate: now, ToDate: now})
	case liveperson.ServiceEngagements:
		_, err = c.SearchEngagements(ctx, account, liveperson.EngagementQuery{From: from, To: to,
			EngagementID: probeEngagementID(account)})
	case liveperson.ServiceMessaging:
		_, err = c.ConversationsByID(ctx, account, []string{probeConversationID}, liveperson.SearchContent)
	default:
		err = fmt.Errorf("no credential check for service %s", service)
	}
	return err
}

// probeConversationID is the nil UUID: LivePerson's conversation ids are random UUIDs, never it.
const probeConversationID = "00000000-0000-0000-0000-000000000000"

// probeEngagementID is a chat id the account cannot have: chat ids are the account id followed
// by the chat's session number, which is never a lone 0. An account id that is not a plain
// number (which LivePerson does not issue) gets a fixed id no account's chat has.
func probeEngagementID(account string) string {
	if account == "" || account[0] == '0' || strings.Trim(account, "0123456789") != "" {
		return "1"
	}
	return account + "0"
}

// checkFailure describes a failed check for the log: the kind of failure, the HTTP status, and
// where it happened (e.g. at sentinel, fetching the token). Error texts are not logged: the kind
// says what an operator must do.
func checkFailure(err error) []any {
	var le *liveperson.Error
	if !errors.As(err, &le) {
		return []any{"result", "unreachable"}
	}
	result := "refused"
	switch {
	case le.Kind == liveperson.KindUnauthorized:
		result = "unauthorized"
	case le.Status == http.StatusForbidden:
		result = "forbidden"
	case le.Kind == liveperson.KindResidency:
		result = "residency"
	case le.Kind == liveperson.KindRetryable, le.Kind == liveperson.KindRateLimited:
		result = "unreachable"
	}
	return []any{"result", result, "status", le.Status, "at", le.Service + " " + le.Op}
}

// maxTxnOps is the most operations the store takes in one transaction: etcd's --max-txn-ops on
// a shared store, no bound (0) on bbolt.
func maxTxnOps(s StoreConfig) int {
	if s.shared() {
		return s.Etcd.MaxTxnOps
	}
	return 0
}

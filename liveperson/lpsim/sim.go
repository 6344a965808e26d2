// Package lpsim simulates the LivePerson APIs erasured uses, as LivePerson's
// public documentation describes them, strictly: Domain API, sentinel OAuth
// 2.0 (and OAuth 1.0 verification), Engagement History, Messaging
// Interactions and Personal Data Deletion, with their validation, fuzzy
// search, quota, deletion lifecycle and masking on an injectable clock. Faults
// can be injected per endpoint and every call is logged.
//
// Where the documentation's pages disagree, Variants choose which reading is
// served (VariantsFromSeed picks them all from one seed), so that a client
// handling only one reading fails against some seed.
//
// One handler serves every service; the Domain API answers with the
// simulator's own address, so a client in loopback test mode reaches
// everything on one port. Config.NamedHosts answers LivePerson's host names
// instead, for tests that dial every name to the simulator.
package lpsim

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Account is a simulated LivePerson account with its credentials.
type Account struct {
	ID           string
	Region       string // "us", "uk" or "apac": the prefix of named hosts (Config.NamedHosts)
	ClientID     string // OAuth 2.0 client credentials
	ClientSecret string
	OAuth1       *OAuth1Keys
	MonthlyQuota int // deletion requests per calendar month (UTC); default 100
}

// OAuth1Keys are legacy app keys the simulator verifies signatures with.
type OAuth1Keys struct {
	ConsumerKey, ConsumerSecret, Token, TokenSecret string
}

// Quirks choose between the readings the documentation allows, so tests can
// check that the client tolerates each.
type Quirks struct {
	ParticipantsKey  string // "consumerParticipants" (default) or "consumerParticipant"
	SiteIDKey        string // "siteid" (default) or "siteId"
	GetByIDObject    bool   // get-by-id answers an object instead of an array of one
	RequestIDAsText  bool   // request_id as a JSON string
	DeleteJSONObject bool   // delete_json as an embedded object instead of a string
}

// over returns q with every field q leaves unset taken from base: a
// spelling q names, or a choice q turns on, wins; the rest stay base's. So a
// test can pin one spelling and keep a seed's other choices.
func (q Quirks) over(base Quirks) Quirks {
	if q.ParticipantsKey == "" {
		q.ParticipantsKey = base.ParticipantsKey
	}
	if q.SiteIDKey == "" {
		q.SiteIDKey = base.SiteIDKey
	}
	q.GetByIDObject = q.GetByIDObject || base.GetByIDObject
	q.RequestIDAsText = q.RequestIDAsText || base.RequestIDAsText
	q.DeleteJSONObject = q.DeleteJSONObject || base.DeleteJSONObject
	return q
}

// Config configures New. Zero durations take LivePerson's documented values.
type Config struct {
	Accounts []Account
	// StaticTokens are bearer tokens accepted without sentinel: token →
	// account id ("*" for any account).
	StaticTokens map[string]string
	Clock        Clock // default real time (ScaledClock(1))
	Seed         uint64
	CancelWindow time.Duration // NOT_STARTED period, default 5 days
	DeletionTime time.Duration // IN_PROGRESS → DONE, default 20 days
	SearchLag    time.Duration // attributes searchable after the end, default 2 h
	Retention    time.Duration // default 13 calendar months before now
	TokenTTL     time.Duration // sentinel token lifetime in sim time, default 1 h
	// RateLimits are optional requests per second per service name (e.g.
	// "msgHist"), per account, measured in real time; over the limit → 429.
	RateLimits map[string]float64
	RateBurst  int // bucket size of RateLimits, default a tenth of the rate
	// Host overrides the host:port the Domain API answers (default: the
	// request's Host header, i.e. the simulator itself).
	Host string
	// NamedHosts makes the Domain API answer LivePerson's names instead,
	// "<region prefix>.<service>.liveperson.net" or the dash style of the
	// variant, followed by ":"+HostPort when HostPort is set; a test whose
	// HTTP client dials every name to the simulator then exercises the
	// residency guard with real names. A request that reaches a LivePerson
	// name other than the one answered for its account and service gets 404.
	NamedHosts bool
	HostPort   string
	// Quirks choose spellings field by field: what a field sets (a key
	// spelling, a choice turned on) wins over Variants.Quirks, the other
	// fields keep the variant's choice. To turn a choice off that a seed
	// turned on, set Variants.Quirks.
	Quirks   Quirks
	Variants Variants
}

// Sim is the simulator. Create it with New; it is safe for concurrent use.
type Sim struct {
	cfg     Config
	clock   Clock
	mux     *http.ServeMux
	jwtKey  []byte
	closing chan struct{}
	once    sync.Once

	mu        sync.Mutex
	accounts  map[string]*Account
	chats     map[string]*Chat
	chatOrder []*Chat // sorted by start when chatsSorted
	convs     map[string]*Conversation
	convOrder []*Conversation

	chatsSorted, convsSorted bool
	consumers                map[string]*ConsumerProfile // account/id
	deletions                []*Deletion
	nextReq                  int64
	calls                    []*Call
	faults                   []*faultState
	rng                      *rand.Rand
	limiters                 map[string]*rate.Limiter
	created                  map[string]int // canonical deletion body → times created
}

// New builds a simulator.
func New(cfg Config) *Sim {
	if cfg.Clock == nil {
		cfg.Clock = ScaledClock(1) // real time
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.CancelWindow, 5*24*time.Hour)
	def(&cfg.DeletionTime, 20*24*time.Hour)
	def(&cfg.SearchLag, 2*time.Hour)
	def(&cfg.TokenTTL, time.Hour)
	cfg.Variants.Quirks = cfg.Quirks.over(cfg.Variants.Quirks)
	cfg.Variants = cfg.Variants.withDefaults()
	cfg.Quirks = cfg.Variants.Quirks
	s := &Sim{
		cfg: cfg, clock: cfg.Clock, closing: make(chan struct{}),
		accounts: map[string]*Account{}, chats: map[string]*Chat{}, convs: map[string]*Conversation{},
		consumers: map[string]*ConsumerProfile{}, nextReq: 127223,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)),
		limiters: map[string]*rate.Limiter{}, created: map[string]int{},
	}
	s.jwtKey = make([]byte, 32)
	_, _ = cryptoRead(s.jwtKey)
	for i := range cfg.Accounts {
		a := cfg.Accounts[i]
		if a.MonthlyQuota <= 0 {
			a.MonthlyQuota = 100
		}
		s.accounts[a.ID] = &a
	}
	s.routes()
	return s
}

var cryptoRead = crand.Read

// Close releases requests held by hang faults. The handler stays usable.
func (s *Sim) Close() { s.once.Do(func() { close(s.closing) }) }

// Now is the simulator's current time.
func (s *Sim) Now() time.Time { return s.clock.Now() }

func (s *Sim) routes() {
	m := http.NewServeMux()
	h := func(pattern, service, op string, auth bool, fn http.HandlerFunc) {
		m.Handle(pattern, s.endpoint(service, op, auth, fn))
	}
	h("GET /api/account/{acct}/service/{svc}/baseURI.json", ServiceDomain, OpBaseURI, false, s.baseURI)
	h("GET /api/account/{acct}/service/baseURI.json", ServiceDomain, OpBaseURIs, false, s.baseURIs)
	h("POST /sentinel/api/v2/account/{acct}/app/token", ServiceSentinel, OpToken, false, s.token)
	h("POST /interaction_history/api/account/{acct}/interactions/search", ServiceEngHist, OpSearch, true, s.engSearch)
	h("POST /messaging_history/api/account/{acct}/conversations/search", ServiceMsgHist, OpSearch, true, s.msgSearch)
	h("POST /messaging_history/api/account/{acct}/conversations/consumer/search", ServiceMsgHist, OpByConsumer, true, s.msgByConsumer)
	h("POST /messaging_history/api/account/{acct}/conversations/conversation/search", ServiceMsgHist, OpByID, true, s.msgByID)
	h("POST /api/account/{acct}/personal-data-deletion", ServiceRTBF, OpCreate, true, s.delCreate)
	h("GET /api/account/{acct}/personal-data-deletion", ServiceRTBF, OpList, true, s.delList)
	h("GET /api/account/{acct}/personal-data-deletion/{id}", ServiceRTBF, OpGet, true, s.delGet)
	h("POST /api/account/{acct}/personal-data-deletion/{id}/cancel", ServiceRTBF, OpCancel, true, s.delCancel)
	m.HandleFunc("GET /_lpsim/calls", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, s.Calls()) })
	m.HandleFunc("GET /_lpsim/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, s.Stats()) })
	s.mux = m
}

// Service and operation names used by faults and the call log.
const (
	ServiceDomain   = "domain"
	ServiceSentinel = "sentinel"
	ServiceEngHist  = "engHistDomain"
	ServiceMsgHist  = "msgHist"
	ServiceRTBF     = "rtbf"

	OpBaseURI    = "baseURI"
	OpBaseURIs   = "baseURIs"
	OpToken      = "token"
	OpSearch     = "search"
	OpByConsumer = "consumer"
	OpByID       = "conversation"
	OpCreate     = "create"
	OpList       = "list"
	OpGet        = "get"
	OpCancel     = "cancel"
)

type callKey struct{}

// maxCalls bounds the call log; deletion statistics are kept apart and whole.
const maxCalls = 200_000

// Handler serves every simulated service, plus GET /_lpsim/calls (the call
// log) and GET /_lpsim/stats.
func (s *Sim) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_lpsim/") {
			s.mux.ServeHTTP(w, r) // inspection is not LivePerson traffic: not logged
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		c := &Call{Time: s.clock.Now(), Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery,
			Body: string(body), Auth: authKind(r.Header.Get("Authorization"))}
		// Logged on arrival, so a test sees a call whose answer is still held
		// back (hang faults); the status is filled in when it is known.
		s.mu.Lock()
		if len(s.calls) >= maxCalls {
			// A long sandbox run must not grow without bound: keep the newer half.
			s.calls = append([]*Call(nil), s.calls[maxCalls/2:]...)
		}
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w}
		s.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
		s.mu.Lock()
		c.Status = sw.status
		if sw.hijacked {
			c.Status = StatusReset
		}
		s.mu.Unlock()
	})
}

// endpoint wraps a handler with what every LivePerson endpoint shares:
// injected faults, the optional rate limit, authentication, and applying
// deletions that have become due.
func (s *Sim) endpoint(service, op string, auth bool, fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := s.fault(service, op)
		if c, ok := r.Context().Value(callKey{}).(*Call); ok {
			s.mu.Lock()
			c.Service, c.Op = service, op
			if f != nil {
				c.Fault = f.Kind.String()
			}
			s.mu.Unlock()
		}
		if f != nil {
			if s.injectBefore(w, r, f) {
				return
			}
		}
		if !s.rightHost(r, service) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "account not served by this host"})
			return
		}
		if !s.allow(r.PathValue("acct"), service) {
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "Too Many Requests"})
			return
		}
		if auth {
			var ok bool
			if r, ok = s.authorize(w, r); !ok {
				return
			}
		}
		s.mu.Lock()
		s.advance()
		s.mu.Unlock()
		if f != nil && f.after() {
			s.injectAfter(w, r, f, fn)
			return
		}
		fn(w, r)
	})
}

// allow applies Config.RateLimits per (account, service) in real time.
func (s *Sim) allow(account, service string) bool {
	lim, ok := s.cfg.RateLimits[service]
	if !ok || lim <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := account + "/" + service
	l, ok := s.limiters[k]
	if !ok {
		burst := s.cfg.RateBurst
		if burst <= 0 {
			burst = max(1, int(lim/10))
		}
		l = rate.NewLimiter(rate.Limit(lim), burst)
		s.limiters[k] = l
	}
	return l.Allow()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

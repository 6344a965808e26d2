package liveperson_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const acct = "1234"

// t0 is the simulator's start time in tests.
var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// env is a simulator on an httptest server and a client pointed at it.
type env struct {
	sim    *lpsim.Sim
	simClk *lpsim.ManualClock
	clk    *liveperson.FakeClock
	srv    *httptest.Server
	c      *liveperson.Client
}

func newEnv(t *testing.T, cfg lpsim.Config, opts ...liveperson.Option) *env {
	t.Helper()
	e := &env{simClk: lpsim.NewManualClock(t0), clk: liveperson.NewFakeClock(t0)}
	if cfg.Accounts == nil {
		cfg.Accounts = []lpsim.Account{lpsim.DefaultAccount(acct, "us")}
	}
	if cfg.StaticTokens == nil {
		cfg.StaticTokens = map[string]string{"test-token": "*"}
	}
	cfg.Clock = e.simClk
	e.sim = lpsim.New(cfg)
	e.srv = httptest.NewServer(e.sim.Handler())
	t.Cleanup(func() {
		e.sim.Close()
		e.srv.CloseClientConnections()
		e.srv.Close()
	})
	all := append([]liveperson.Option{
		liveperson.WithResolver(e.resolver()),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "test-token"}),
		liveperson.WithSource("erasured-test"),
		liveperson.WithClock(e.clk),
		liveperson.WithRandom(func() float64 { return 0 }),
		liveperson.WithCallTimeout(2 * time.Second),
		liveperson.WithHTTPClient(e.srv.Client()),
		// A generous limit: the limiter's spacing is tested on its own.
		liveperson.WithRateLimit("", liveperson.RateLimit{Rate: 1000, Burst: 100}),
	}, opts...)
	c, err := liveperson.New(all...)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

func (e *env) resolver() liveperson.FixedHost {
	return liveperson.FixedHost{Addr: strings.TrimPrefix(e.srv.URL, "http://"), Insecure: true}
}

// advance moves both clocks: LivePerson's and ours.
func (e *env) advance(d time.Duration) {
	e.simClk.Advance(d)
	e.clk.Advance(d)
}

func wantKind(t *testing.T, err error, k liveperson.Kind) {
	t.Helper()
	if got := liveperson.KindOf(err); got != k {
		t.Fatalf("error kind = %v (%v), want %v", got, err, k)
	}
}

func chat(id, customerID, email string, start time.Time) lpsim.Chat {
	return lpsim.Chat{EngagementID: id, Account: acct, VisitorID: "v-" + id, Start: start,
		End: start.Add(10 * time.Minute), Ended: true, CustomerID: customerID, Name: "Jane", Surname: "Doe",
		Email: email, Phone: "+44 7700 900001", Lines: []string{"hello " + customerID}}
}

func conversation(id, consumer, customerID, email string, start time.Time) lpsim.Conversation {
	return lpsim.Conversation{ID: id, Account: acct, ConsumerID: consumer, Status: "CLOSE", Start: start,
		End: start.Add(20 * time.Minute), CustomerID: customerID, Name: "Jane", Surname: "Doe", Email: email,
		Messages: []string{"hi, I am " + customerID}}
}

package lpsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultAccount returns an account with the simulator's well-known test
// credentials: client id "lpsim-<id>", secret "lpsim-secret-<id>", OAuth 1.0
// keys "lpsim-ck-<id>" / "lpsim-cs-<id>" / "lpsim-tk-<id>" / "lpsim-ts-<id>".
func DefaultAccount(id, region string) Account {
	return Account{ID: id, Region: region, ClientID: "lpsim-" + id, ClientSecret: "lpsim-secret-" + id,
		OAuth1: &OAuth1Keys{ConsumerKey: "lpsim-ck-" + id, ConsumerSecret: "lpsim-cs-" + id,
			Token: "lpsim-tk-" + id, TokenSecret: "lpsim-ts-" + id}}
}

// StaticToken is the bearer token Main accepts for an account.
func StaticToken(id string) string { return "lpsim-token-" + id }

// ServeOptions configure a standalone simulator (Serve).
type ServeOptions struct {
	Listen    string    // address to listen on
	Seed      uint64    // seed of the generated data and of probabilistic faults
	Speed     float64   // how many times faster than real time the clock runs; > 0
	Accounts  []Account // at least one; DefaultAccount gives the well-known test credentials
	Consumers int       // generated consumers per account
	Demo      bool      // add the documented demo subjects to the first account
	// LoseCreateAnswers is the share of deletion creates whose answer is lost (503) after
	// LivePerson created the request.
	LoseCreateAnswers float64
	// SlowCreates, when > 0, is how long (real time) LivePerson takes to record each deletion
	// create: its answer comes then, and list and get show the request only from then. With
	// LoseCreateAnswers, the lost answers' connections are dropped at once instead.
	SlowCreates time.Duration
	// Variants choose the documented readings served (VariantsFromSeed picks
	// them from a seed); their UnauthShare also shapes the generated data.
	Variants Variants
	// Faults are injected from the start, in order, after those the options above add.
	Faults []Fault
}

// Serve runs the simulator as a standalone server until ctx ends. It prints
// "lpsim listening on http://ADDR", each account's test credentials and the
// readings it serves.
func Serve(ctx context.Context, opts ServeOptions, stdout io.Writer) error {
	if opts.Speed <= 0 {
		return errors.New("lpsim: the speed must be positive")
	}
	if len(opts.Accounts) == 0 {
		return errors.New("lpsim: no account")
	}
	var ids []string
	tokens := map[string]string{}
	for _, a := range opts.Accounts {
		ids = append(ids, a.ID)
		tokens[StaticToken(a.ID)] = a.ID
	}
	clock := ScaledClock(opts.Speed)
	// Tokens live an hour of real time whatever the speed, so a fast clock
	// does not make every call refresh its token.
	sim := New(Config{Accounts: opts.Accounts, StaticTokens: tokens, Clock: clock, Seed: opts.Seed,
		TokenTTL: time.Duration(float64(time.Hour) * max(1, opts.Speed)), Variants: opts.Variants})
	defer sim.Close()
	if opts.SlowCreates > 0 {
		// Faults take simulator time, which runs Speed times faster.
		slow := Fault{Service: ServiceRTBF, Op: OpCreate, Kind: FaultSlowCreate,
			Latency: time.Duration(float64(opts.SlowCreates) * opts.Speed)}
		if opts.LoseCreateAnswers > 0 {
			lost := slow
			lost.After, lost.Probability = true, opts.LoseCreateAnswers
			sim.AddFault(lost)
		}
		sim.AddFault(slow)
	} else if opts.LoseCreateAnswers > 0 {
		sim.AddFault(Fault{Service: ServiceRTBF, Op: OpCreate, Kind: FaultStatus, Status: 503, After: true, Probability: opts.LoseCreateAnswers})
	}
	for _, f := range opts.Faults {
		sim.AddFault(f)
	}
	if err := sim.Load(Generate(opts.Seed, GenOptions{Now: clock.Now(), Accounts: ids, Consumers: opts.Consumers,
		Demo: opts.Demo, Unauthenticated: opts.Variants.UnauthShare})); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "lpsim listening on http://%s\n", ln.Addr())
	for _, a := range opts.Accounts {
		fmt.Fprintf(stdout, "lpsim account %s region %s client_id=%s client_secret=%s token=%s\n",
			a.ID, a.Region, a.ClientID, a.ClientSecret, StaticToken(a.ID))
	}
	fmt.Fprintf(stdout, "lpsim variants: %s\n", opts.Variants)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sim.Close() // release hanging requests so shutdown can finish
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

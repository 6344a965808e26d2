package lpsim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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

// Main runs the simulator as a standalone server until ctx ends. It prints
// "lpsim listening on http://ADDR" and each account's test credentials.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lpsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	seed := fs.Uint64("seed", 1, "seed of the generated data and of probabilistic faults")
	speed := fs.Float64("speed", 1, "how many times faster than real time the simulator's clock runs")
	accounts := fs.String("accounts", DemoAccount+":us", "comma-separated accounts as id:region")
	consumers := fs.Int("consumers", 2000, "generated consumers per account")
	demo := fs.Bool("demo", true, "add the documented demo subjects to the first account")
	loseCreates := fs.Float64("lose-create-answers", 0, "share of deletion creates whose answer is lost (503) after LivePerson created the request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *speed <= 0 {
		return errors.New("lpsim: --speed must be positive")
	}
	var accts []Account
	var ids []string
	tokens := map[string]string{}
	for _, spec := range strings.Split(*accounts, ",") {
		id, reg, _ := strings.Cut(strings.TrimSpace(spec), ":")
		if id == "" {
			return fmt.Errorf("lpsim: bad --accounts entry %q", spec)
		}
		if reg == "" {
			reg = "us"
		}
		accts = append(accts, DefaultAccount(id, reg))
		ids = append(ids, id)
		tokens[StaticToken(id)] = id
	}
	clock := ScaledClock(*speed)
	// Tokens live an hour of real time whatever the speed, so a fast clock
	// does not make every call refresh its token.
	sim := New(Config{Accounts: accts, StaticTokens: tokens, Clock: clock, Seed: *seed,
		TokenTTL: time.Duration(float64(time.Hour) * max(1, *speed))})
	defer sim.Close()
	if *loseCreates > 0 {
		sim.AddFault(Fault{Service: ServiceRTBF, Op: OpCreate, Kind: FaultStatus, Status: 503, After: true, Probability: *loseCreates})
	}
	if err := sim.Load(Generate(*seed, GenOptions{Now: clock.Now(), Accounts: ids, Consumers: *consumers,
		Demo: *demo})); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "lpsim listening on http://%s\n", ln.Addr())
	for _, a := range accts {
		fmt.Fprintf(stdout, "lpsim account %s region %s client_id=%s client_secret=%s token=%s\n",
			a.ID, a.Region, a.ClientID, a.ClientSecret, StaticToken(a.ID))
	}
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

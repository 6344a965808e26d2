package pipeline_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/port"
	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/pipeline"
)

// TestRestartDuringSlowCreate: LivePerson records a create 6 s after receiving it and the
// process dies (here: its calls are cut off) right after sending it. The restarted pipeline
// reconciles at once and finds nothing listed: the create is still being processed, so it
// waits instead of sending again, and finds the request once LivePerson lists it. LivePerson
// ends with exactly one request.
func TestRestartDuringSlowCreate(t *testing.T) {
	const acct = "1234"
	clk := lpsim.NewManualClock(pipeline.T0)
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{lpsim.DefaultAccount(acct, "us")},
		StaticTokens: map[string]string{"test-token": "*"}, Clock: clk})
	sim.AddFault(lpsim.Fault{Service: lpsim.ServiceRTBF, Op: lpsim.OpCreate, Kind: lpsim.FaultSlowCreate,
		Latency: 6 * time.Second, Times: 1})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { sim.Close(); srv.CloseClientConnections(); srv.Close() })
	client, err := liveperson.New(
		liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(srv.URL, "http://"), Insecure: true}),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "test-token"}), liveperson.WithSource("erasured-test"),
		liveperson.WithCallTimeout(pipeline.TestCallTimeout), liveperson.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	env := pipeline.NewListWaitEnv(t, port.New(client))
	now := func(at time.Time) { clk.Set(at); env.SetNow(at) }

	// The first run sends the create and dies before its answer.
	ctx, crash := context.WithCancel(context.Background())
	stepped := make(chan error, 1)
	go func() { stepped <- env.Step(ctx) }()
	for len(sim.Deletions(acct)) == 0 { // LivePerson has received it
		time.Sleep(time.Millisecond)
	}
	crash()
	<-stepped

	// The restarted pipeline reconciles right away: nothing is listed yet.
	env.Restart()
	if err := env.Step(context.Background()); err != nil {
		t.Fatalf("the restarted pipeline's step: %v", err)
	}
	if n := len(sim.Deletions(acct)); n != 1 {
		t.Fatalf("LivePerson holds %d deletion requests after the reconciliation right after the restart, want 1 (the create was sent again)", n)
	}
	b, _ := env.Batch(t)
	if b.State != pipeline.BatchIntent || b.ListWait.IsZero() {
		t.Fatalf("batch after the early reconciliation: state %s, list wait %v; want INTENT, waiting", b.State, b.ListWait)
	}

	now(b.ListWait)
	if err := env.Step(context.Background()); err != nil {
		t.Fatalf("the reconciliation once the create would be listed: %v", err)
	}
	ds := sim.Deletions(acct)
	b, _ = env.Batch(t)
	if len(ds) != 1 || b.LPID != ds[0].ID || b.State != model.LPNotStarted {
		t.Errorf("in the end LivePerson holds %d requests and the batch follows %d (state %s); want 1, %d, NOT_STARTED",
			len(ds), b.LPID, b.State, firstID(ds))
	}
}

func firstID(ds []lpsim.Deletion) int64 {
	if len(ds) == 0 {
		return 0
	}
	return ds[0].ID
}

package main

// The canary test: a subject made of identifiers found nowhere else goes through the real
// binary, and every channel erasured writes to is searched for them, before and after the
// binary shreds the erasure.

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// canarySpeed is how much faster than real time the simulated LivePerson runs: its 5-day cancel
// window and 20-day deletion take about 11 seconds.
const canarySpeed = 200000

// The canaries: the subject's identifiers, its LivePerson records and what it wrote.
const (
	canaryCustomer     = "CANARY-CID-7f3a9c"
	canaryEmail        = "canary.7f3a9c@example.com"
	canaryPhone        = "+44 7700 900456"
	canaryChat         = "12347770007770"
	canaryConversation = "c4a41e55-7f3a-4c00-8000-00000000ca11"
	canaryConsumer     = "canary-consumer-7f3a9c"
	canaryText         = "CANARY-TEXT-my-secret-7f3a9c"
)

// canaries are every form a canary might take in an output.
var canaries = []string{canaryCustomer, strings.ToLower(canaryCustomer), canaryEmail, strings.ToUpper(canaryEmail),
	canaryPhone, "447700900456", "7700900456", canaryChat, canaryConversation, canaryConsumer, canaryText,
	"my-secret-7f3a9c"}

// canaryEnv is the simulator (in this process, holding the canary's records) and the binary.
type canaryEnv struct {
	t                  *testing.T
	bin, dir, config   string
	db, keyDir         string
	master             []byte
	p                  *process
	client             erasurev1.ErasureServiceClient
	metricsURL, origin string
	scan               canaryScan
}

func newCanaryEnv(t *testing.T) *canaryEnv {
	t.Helper()
	e := &canaryEnv{t: t, bin: buildBinary(t), dir: t.TempDir()}
	clock := lpsim.ScaledClock(canarySpeed)
	acct := lpsim.DefaultAccount(lpsim.DemoAccount, "us")
	sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{acct}, Clock: clock, Seed: 1,
		TokenTTL: time.Duration(float64(time.Hour) * canarySpeed)})
	now := clock.Now()
	if err := sim.Load(lpsim.Generate(1, lpsim.GenOptions{Now: now, Accounts: []string{acct.ID}, Consumers: 30})); err != nil {
		t.Fatal(err)
	}
	start := now.Add(-72 * time.Hour)
	if err := sim.AddChat(lpsim.Chat{EngagementID: canaryChat, Account: acct.ID, Start: start, End: start.Add(10 * time.Minute),
		Ended: true, CustomerID: canaryCustomer, Email: canaryEmail, Lines: []string{canaryText, "how can I help?"}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddConversation(lpsim.Conversation{ID: canaryConversation, Account: acct.ID, ConsumerID: canaryConsumer,
		Status: "CLOSE", Start: start, End: start.Add(20 * time.Minute), Email: canaryEmail, Phone: canaryPhone,
		Messages: []string{canaryText, "noted"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { sim.Close(); srv.Close() })

	e.master = make([]byte, 32)
	crand.Read(e.master)
	masterFile := writeFile(t, e.dir, "master.key", base64.StdEncoding.EncodeToString(e.master)+"\n", 0o600)
	secret := writeFile(t, e.dir, "client-secret", acct.ClientSecret+"\n", 0o600)
	e.db, e.keyDir = filepath.Join(e.dir, "erasure.db"), filepath.Join(e.dir, "keys")
	scaled := func(d time.Duration) string { return (d / canarySpeed).String() }
	e.config = writeFile(t, e.dir, "erasured.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:0
db: %s
liveperson:
  domain_api_url: %s
  cancel_window: %s
  deletion_window: %s
accounts:
  - id: "%s"
    region: us
    auth:
      oauth2: {client_id: %s, client_secret_file: %s}
pipeline:
  search_lag: %s
  batch_max_wait: 1s
  poll_interval: 500ms
privacy:
  master_key_file: %s
  key_dir: %s
  retention: 15s
  key_period: 2s
shutdown:
  timeout: 5s
`, e.db, srv.URL, scaled(120*time.Hour), scaled(480*time.Hour), acct.ID, acct.ClientID, secret, scaled(2*time.Hour),
		masterFile, e.keyDir), 0o600)
	return e
}

// start runs the binary and connects to it.
func (e *canaryEnv) start() {
	e.t.Helper()
	mark := e.logLines()
	e.p = startArgs(e.t, e.bin, e.dir, "--config", e.config)
	conn, client := dial(e.t, e.p.addr)
	e.t.Cleanup(func() { conn.Close() })
	e.client = client
	l, _ := waitLog(e.t, e.dir, "metrics serving", mark)
	e.metricsURL = "http://" + l["listen"].(string) + "/metrics"
}

// stop ends the binary with SIGTERM.
func (e *canaryEnv) stop() {
	e.t.Helper()
	e.p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-e.p.done; err != nil {
		e.t.Errorf("erasured exit: %v", err)
	}
}

func (e *canaryEnv) logLines() int {
	raw, _ := os.ReadFile(filepath.Join(e.dir, "erasured.log"))
	return strings.Count(string(raw), "\n")
}

func (e *canaryEnv) scrape() {
	e.t.Helper()
	resp, err := http.Get(e.metricsURL)
	if err != nil {
		e.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	e.scan.add("metrics", string(body))
}

func (e *canaryEnv) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// status reads the erasure (and its receipt, once there is one).
func (e *canaryEnv) status(name string) *erasurev1.Erasure {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	got, err := e.client.Status(ctx, &erasurev1.StatusRequest{Name: name})
	if err != nil {
		e.t.Fatalf("Status: %v", err)
	}
	e.scan.addProto("status and receipt", got)
	return got.GetErasure()
}

// audit reads the whole audit trail.
func (e *canaryEnv) audit() int {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	n, tok := 0, ""
	for {
		res, err := e.client.ListAuditRecords(ctx, &erasurev1.ListAuditRecordsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			e.t.Fatalf("ListAuditRecords: %v", err)
		}
		e.scan.addProto("audit trail", res)
		n += len(res.GetRecords())
		if tok = res.GetNextPageToken(); tok == "" {
			return n
		}
	}
}

// replay reads the change history from the start until the erasure's revision rev.
func (e *canaryEnv) replay(name string, rev int64) {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	w, err := e.client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		res, err := w.Recv()
		if err != nil {
			e.t.Fatalf("Watch replay: %v", err)
		}
		e.scan.addProto("watch events", res)
		for _, ev := range res.GetEvents() {
			if ev.GetErasure().GetName() == name && ev.GetRevision() >= rev {
				return
			}
		}
	}
}

// files adds the erasured log and the raw bytes of the database files to the scan.
func (e *canaryEnv) files(channel string, paths ...string) {
	e.t.Helper()
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			e.t.Fatal(err)
		}
		e.scan.add(channel, string(raw))
	}
}

// TestCanaryThroughBinary: an erasure whose subject and aliases are canaries runs to COMPLETED
// through the real binary. No canary is in any log line, metrics scrape, Watch event, error
// (with its details), Status or receipt, audit record, or the raw database file. Then the
// binary, with a short retention and key period, shreds the erasure: the outputs are scanned
// again, and an old copy of the database taken before the shredding, with the master key and
// the key directory as it is now, unwraps no data key (while the same copy with the key
// directory of its time did: the check can tell).
func TestCanaryThroughBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	e := newCanaryEnv(t)
	e.start()
	channels := []string{"log", "metrics", "watch events", "errors", "status and receipt", "audit trail", "database file"}

	// A live Watch stream from before the Submit: every event the erasure makes.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	w, err := e.client.Watch(wctx, &erasurev1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Header(); err != nil {
		t.Fatal(err)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			res, err := w.Recv()
			if err != nil {
				e.scan.addErr("errors", err)
				return
			}
			e.scan.addProto("watch events", res)
		}
	}()

	req := &erasurev1.SubmitRequest{RequestId: "00000000-0000-4000-8000-00000000ca11", AccountId: lpsim.DemoAccount,
		Subject: &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: canaryCustomer}},
		Aliases: []*erasurev1.Subject{{Id: &erasurev1.Subject_Email{Email: canaryEmail}},
			{Id: &erasurev1.Subject_Phone{Phone: canaryPhone}}},
		ExternalRef: "TICKET-CANARY"}
	ctx, cancel := e.ctx()
	res, err := e.client.Submit(ctx, req)
	cancel()
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	name := res.GetErasure().GetName()

	// Errors about canary input: the same request_id for another subject, an external_ref that
	// repeats an identifier, a malformed e-mail, an identifier with a control character.
	for _, bad := range []func(*erasurev1.SubmitRequest){
		func(r *erasurev1.SubmitRequest) {
			r.Subject = &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: canaryCustomer + "-other"}}
		},
		func(r *erasurev1.SubmitRequest) {
			r.RequestId = "00000000-0000-4000-8000-00000000ca12"
			r.ExternalRef = canaryEmail
		},
		func(r *erasurev1.SubmitRequest) {
			r.RequestId = "00000000-0000-4000-8000-00000000ca13"
			r.Aliases = []*erasurev1.Subject{{Id: &erasurev1.Subject_Email{Email: "not an email " + canaryEmail}}}
		},
		func(r *erasurev1.SubmitRequest) {
			r.RequestId = "00000000-0000-4000-8000-00000000ca14"
			r.Subject = &erasurev1.Subject{Id: &erasurev1.Subject_CustomerId{CustomerId: canaryCustomer + "\u2028"}}
		},
	} {
		r := proto.Clone(req).(*erasurev1.SubmitRequest)
		bad(r)
		ctx, cancel := e.ctx()
		_, err := e.client.Submit(ctx, r)
		cancel()
		if err == nil {
			t.Errorf("Submit %v succeeded, want an error", r)
		}
		e.scan.addErr("errors", err)
	}

	// Run to COMPLETED, scraping the metrics on the way.
	deadline := time.Now().Add(90 * time.Second)
	var got *erasurev1.Erasure
	for {
		e.scrape()
		got = e.status(name)
		if got.GetState() == erasurev1.State_STATE_COMPLETED || terminal(got.GetState()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got.GetState() != erasurev1.State_STATE_COMPLETED || got.GetReceipt() == nil {
		t.Fatalf("%s is %v (blocked on %v, %q), want COMPLETED with a receipt", name, got.GetState(), got.GetBlockedOn(), got.GetLastError())
	}
	if n := e.audit(); n < 1 {
		t.Errorf("the audit trail holds %d records, want the Submit's and the refused ones'", n)
	}
	e.replay(name, got.GetRevision())
	e.scrape()
	e.files("database file", e.db)
	e.files("log", filepath.Join(e.dir, "erasured.log"))
	e.scan.check(t, "before shredding", channels...)

	// An old copy of the database (and, for the control, of the key directory), taken after
	// COMPLETED and before the retention passed.
	wcancel()
	<-watched
	e.stop()
	old, oldKeys := filepath.Join(t.TempDir(), "old.db"), filepath.Join(t.TempDir(), "old-keys")
	copyTree(t, e.db, old)
	copyTree(t, e.keyDir, oldKeys)
	if kc := e.keysOpen(old, oldKeys); kc.Open == 0 {
		t.Fatalf("control: the old copy with the key directory of its time unwraps %+v, want its data keys", kc)
	}

	// Restart; the keeper shreds once the retention passed and destroys the period keys.
	e.start()
	var kc service.KeyCheck
	for deadline := time.Now().Add(60 * time.Second); ; {
		if kc = e.keysOpen(old, e.keyDir); kc.Open == 0 && kc.Unreadable > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after restart the old copy with the master key still unwraps %+v", kc)
		}
		time.Sleep(500 * time.Millisecond)
	}
	after := e.status(name)
	if after.GetReceipt() == nil || after.GetState() != erasurev1.State_STATE_COMPLETED {
		t.Errorf("after shredding: %v with receipt %v, want COMPLETED with its receipt", after.GetState(), after.GetReceipt() != nil)
	}
	e.scan = canaryScan{}
	e.scrape()
	e.status(name)
	e.audit()
	e.replay(name, after.GetRevision())
	ctx, cancel = e.ctx()
	_, err = e.client.Submit(ctx, req) // the request_id of a shredded erasure
	cancel()
	e.scan.addErr("errors", err)
	checkHistoryOver(t, context.Background(), e.client) // the whole history, before and after the restart
	e.stop()
	e.files("database file", e.db, old)
	e.files("log", filepath.Join(e.dir, "erasured.log"))
	e.scan.check(t, "after shredding", channels...)
	if !strings.Contains(string(must(os.ReadFile(filepath.Join(e.dir, "erasured.log")))), `"msg":"key keeper"`) {
		t.Error("the keeper logged nothing")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

package service

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
)

// documentedLP answers like LivePerson's documentation says it does: list and get answers carry
// request_id, request_time, requested_by and status, and no delete_json (unless a test says a
// request echoes it). Its creates are stamped with requested_by and the test clock, and it can
// lose a create's answer after creating the request or before the request reaches LivePerson.
type documentedLP struct {
	*fakeLivePerson
	clock *fakeClock
	who   string // requested_by of the requests we create

	mu         sync.Mutex
	loseAfter  bool // the next create is made, and its answer lost
	loseBefore bool // the next create never reaches LivePerson, and its answer is lost
	getErr     error
	listErr    error                     // returned by every list while set
	lists      int                       // lists answered or failed
	stampAs    func(time.Time) time.Time // how request_time reads in answers (nil: as is)
	by         map[int64]string          // requested_by per request
	at         map[int64]time.Time       // request_time per request
	echo       map[int64]bool            // requests whose answers carry delete_json
}

func newDocumentedLP(f *fakeLivePerson, clock *fakeClock) *documentedLP {
	return &documentedLP{fakeLivePerson: f, clock: clock, who: "erasured-app",
		by: map[int64]string{}, at: map[int64]time.Time{}, echo: map[int64]bool{}}
}

func (d *documentedLP) CreateDeletion(ctx context.Context, account string, kind TargetKind, ids []string) (Deletion, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loseBefore {
		d.loseBefore = false
		return Deletion{}, fmt.Errorf("%w: connection reset", ErrOutcomeUnknown)
	}
	req, err := d.fakeLivePerson.CreateDeletion(ctx, account, kind, ids)
	if err != nil {
		return Deletion{}, err
	}
	d.by[req.ID], d.at[req.ID] = d.who, d.clock.Now()
	if d.stampAs != nil {
		d.at[req.ID] = d.stampAs(d.clock.Now())
	}
	if d.loseAfter {
		d.loseAfter = false
		return Deletion{}, fmt.Errorf("%w: timeout", ErrOutcomeUnknown)
	}
	// A create's answer echoes the body and says who created the request.
	req.RequestedBy, req.Created = d.who, d.clock.Now()
	return req, nil
}

// documented reduces a request to what LivePerson documents for list and get answers.
func (d *documentedLP) documented(r Deletion) Deletion {
	r.RequestedBy, r.Created = d.by[r.ID], d.at[r.ID]
	if !d.echo[r.ID] {
		r.Kind, r.IDs = KindUnspecified, nil
	}
	return r
}

func (d *documentedLP) ListDeletions(ctx context.Context, account string, from, to time.Time) ([]Deletion, error) {
	list, err := d.fakeLivePerson.ListDeletions(ctx, account, from, to)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lists++
	if d.listErr != nil {
		return nil, d.listErr
	}
	for i := range list {
		list[i] = d.documented(list[i])
	}
	return list, err
}

func (d *documentedLP) GetDeletion(ctx context.Context, account string, id int64) (Deletion, error) {
	d.mu.Lock()
	getErr := d.getErr
	d.mu.Unlock()
	if getErr != nil {
		return Deletion{}, getErr
	}
	r, err := d.fakeLivePerson.GetDeletion(ctx, account, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.documented(r), err
}

// addForeign puts a request that none of our batches created in LivePerson's list: another
// party's (or another tool's with our credentials). body, when set, is echoed in answers.
func (d *documentedLP) addForeign(by string, at time.Time, kind TargetKind, body ...string) int64 {
	d.fakeLivePerson.mu.Lock()
	id := int64(5000 + len(d.fakeLivePerson.requests))
	d.fakeLivePerson.requests = append(d.fakeLivePerson.requests, Deletion{ID: id, Status: LPNotStarted, Kind: kind, IDs: body})
	d.fakeLivePerson.mu.Unlock()
	d.mu.Lock()
	d.by[id], d.at[id], d.echo[id] = by, at, len(body) > 0
	d.mu.Unlock()
	return id
}

// creates is how many deletion requests reached LivePerson through CreateDeletion.
func (d *documentedLP) creates() int { return len(d.createdBodies()) }

// docEnv is a pipeline over documentedLP, with the service's log captured.
type docEnv struct {
	*pipeEnv
	lp  *documentedLP
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newDocEnv(t *testing.T) *docEnv {
	pe := newPipeEnv(t)
	e := &docEnv{pipeEnv: pe, lp: newDocumentedLP(pe.lp, pe.clock), log: &syncBuffer{}}
	e.svc.log = slog.New(slog.NewTextHandler(e.log, nil))
	e.p = e.svc.NewPipeline(e.lp, e.cfg)
	pe.lp.chats = []ChatRecord{
		{EngagementID: "11", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"A"}},
		{EngagementID: "21", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"B"}},
		{EngagementID: "22", Start: e.ago(40 * time.Hour), CustomerIDs: []string{"B"}},
	}
	return e
}

// sendChat submits a chat-only erasure of customer id, and lets its batch be formed and sent.
func (e *docEnv) sendChat(n int, id string) string {
	e.t.Helper()
	req := submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", n), "1234", customer(id))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	return name
}

// wantCreates checks how many deletion requests LivePerson created.
func (e *docEnv) wantCreates(want int) {
	e.t.Helper()
	if got := e.lp.creates(); got != want {
		e.t.Fatalf("LivePerson created %d deletion requests (%v), want %d", got, e.lp.createdBodies(), want)
	}
}

// wantFollows checks that the erasure is SUBMITTED in exactly the LivePerson requests ids.
func (e *docEnv) wantFollows(name string, ids ...int64) Erasure {
	e.t.Helper()
	got := e.wantState(name, StateSubmitted)
	var have []int64
	for _, q := range got.LPRequests {
		have = append(have, q.ID)
	}
	if !slices.Equal(have, ids) {
		e.t.Fatalf("%s follows LivePerson requests %v, want %v", name, have, ids)
	}
	return got
}

// lastRequest is the id of the newest request in LivePerson's list.
func (e *docEnv) lastRequest() int64 {
	e.lp.fakeLivePerson.mu.Lock()
	defer e.lp.fakeLivePerson.mu.Unlock()
	return e.lp.fakeLivePerson.requests[len(e.lp.fakeLivePerson.requests)-1].ID
}

// TestReconcileLostAnswerDocumentedShape: LivePerson created the request but its answer was
// lost, and its list does not echo delete_json. The one request created since the first send
// is the batch's: it is followed to the end, and nothing is created twice.
func TestReconcileLostAnswerDocumentedShape(t *testing.T) {
	e := newDocEnv(t)
	e.lp.loseAfter = true
	name := e.sendChat(1, "B")
	e.wantState(name, StateScheduled)
	e.wantCreates(1)
	e.advance(time.Minute) // the batch's retry reconciles first
	e.wantCreates(1)
	e.wantFollows(name, e.lastRequest())
	e.runLivePersonTimeline()
	e.wantState(name, StateCompleted)
	e.wantCreates(1)
}

// TestReconcileLostBeforeReachingLivePerson: the POST never reached LivePerson; the list has
// nothing since the first send, so the batch is sent again, once.
func TestReconcileLostBeforeReachingLivePerson(t *testing.T) {
	e := newDocEnv(t)
	e.lp.loseBefore = true
	name := e.sendChat(1, "B")
	e.wantCreates(0)
	e.advance(time.Minute)
	e.wantCreates(1)
	e.wantFollows(name, e.lastRequest())
}

// TestReconcileNotACandidate: requests that cannot be the batch's are never claimed: its POST
// never reached LivePerson, so it is sent again and follows its own request. Batch A's earlier
// create teaches the service who it is at LivePerson. (Another party's request is a candidate:
// see TestReconcileForeignRequestAloneIsClaimed.)
func TestReconcileNotACandidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  func(e *docEnv) int64
	}{
		{"ours, stamped well before the first send", func(e *docEnv) int64 {
			return e.lp.addForeign(e.lp.who, e.clock.Now().Add(-requestTimeMargin-time.Hour), 0)
		}},
		{"ours, echoing another body", func(e *docEnv) int64 {
			return e.lp.addForeign(e.lp.who, e.clock.Now(), KindEngagement, "21")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDocEnv(t)
			a := e.sendChat(1, "A")
			idA := e.lastRequest()
			e.wantFollows(a, idA)
			e.lp.loseBefore = true
			b := e.sendChat(2, "B")
			foreign := tc.add(e)
			e.advance(time.Minute)
			e.wantCreates(2)
			if got := e.wantFollows(b, e.lastRequest()); got.LPRequests[0].ID == foreign || got.LPRequests[0].ID == idA {
				t.Fatalf("batch B claimed request %d (foreign %d, A's %d)", got.LPRequests[0].ID, foreign, idA)
			}
		})
	}
}

// TestReconcileEchoedBodyIsCertain: when LivePerson does echo delete_json, a matching request is
// claimed even among other candidates.
func TestReconcileEchoedBodyIsCertain(t *testing.T) {
	e := newDocEnv(t)
	e.lp.loseAfter = true
	name := e.sendChat(1, "B")
	ours := e.lastRequest()
	e.lp.echo[ours] = true
	e.lp.addForeign(e.lp.who, e.clock.Now(), 0)
	e.advance(time.Minute)
	e.wantCreates(1)
	e.wantFollows(name, ours)
}

// holdB brings batch B to HELD: A's batch was created (so who we are is known), B's create was
// made and its answer lost, and another request with our requested_by appeared since B's first
// send: two candidates. It returns B's erasure name, B's real request and the other candidate.
func holdB(t *testing.T) (e *docEnv, a, b string, ours, other int64) {
	e = newDocEnv(t)
	a = e.sendChat(1, "A")
	e.lp.loseAfter = true
	b = e.sendChat(2, "B")
	ours = e.lastRequest()
	other = e.lp.addForeign(e.lp.who, e.clock.Now().Add(time.Minute), 0)
	e.advance(time.Minute)
	return e, a, b, ours, other
}

func TestReconcileTwoCandidatesHold(t *testing.T) {
	e, _, b, ours, other := holdB(t)
	e.wantCreates(2)
	got := e.wantState(b, StateScheduled)
	want := []HeldBatch{{BatchID: 2, Kind: KindEngagement, RecordCount: 2, Candidates: []int64{ours, other},
		SendTime: e.clock.Now().Add(-time.Minute)}}
	if got.BlockedOn != BlockedDeletionOutcomeUnknown || got.LastError != heldError || !slices.EqualFunc(got.HeldBatches, want, sameHeld) {
		t.Fatalf("held erasure: blocked %d, last_error %q, held %+v; want DELETION_OUTCOME_UNKNOWN, %q, %+v",
			got.BlockedOn, got.LastError, got.HeldBatches, heldError, want)
	}
	e.advance(24 * time.Hour) // a held batch is never sent again by itself
	e.advance(30 * 24 * time.Hour)
	e.wantCreates(2)
	logged := e.log.String()
	if n := bytes.Count([]byte(logged), []byte("deletion batch held")); n != 1 {
		t.Errorf("hold logged %d times, want once:\n%s", n, logged)
	}
	wantLine := fmt.Sprintf("level=ERROR msg=\"deletion batch held: LivePerson may or may not have created its request; settle it with SettleBatch\" account=1234 batch=2 candidates=\"[%d %d]\"", ours, other)
	if !bytes.Contains([]byte(logged), []byte(wantLine)) {
		t.Errorf("log lacks %s:\n%s", wantLine, logged)
	}
	counts, err := e.svc.HeldBatchCounts()
	if err != nil || counts["1234"] != 1 {
		t.Errorf("HeldBatchCounts() = %v, %v; want 1 for account 1234", counts, err)
	}
}

func sameHeld(a, b HeldBatch) bool {
	return a.BatchID == b.BatchID && a.Kind == b.Kind && a.RecordCount == b.RecordCount &&
		slices.Equal(a.Candidates, b.Candidates) && a.SendTime.Equal(b.SendTime)
}

// twoBatches submits one erasure of customer B over chat and messaging: its engagements and its
// conversation make two batches of one account.
func (e *docEnv) twoBatches() string {
	e.t.Helper()
	e.lp.convs = []ConversationRecord{{ConversationID: "c-1", Start: e.ago(30 * time.Hour), ConsumerIDs: []string{"k"}, CustomerIDs: []string{"B"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("B"))
	req.Channels = []Channel{ChannelChat, ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	return name
}

// batchOf reads one batch.
func (e *docEnv) batchOf(id uint64) *batch {
	e.t.Helper()
	var b *batch
	if err := e.db.View(func(tx storeTx) (err error) { b, err = pipeline.GetBatch(tx, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// TestBatchWaitsForUnknownSibling: while one batch of an account has an unknown outcome, the
// account's next batch is not sent, and its erasure says why; it goes as soon as the first is
// settled, without waiting for a poll.
func TestBatchWaitsForUnknownSibling(t *testing.T) {
	e := newDocEnv(t)
	e.lp.loseAfter = true
	name := e.twoBatches()
	e.advance(e.cfg.BatchMaxWait) // two batches formed: engagements and conversations
	e.wantCreates(1)
	waiting := e.batchOf(2)
	if waiting == nil || waiting.State != batchIntent || waiting.Sends != 0 || !waiting.NextPoll.After(e.clock.Now()) {
		t.Fatalf("second batch = %+v, want INTENT, never sent, scheduled later (not busy)", waiting)
	}
	if got := e.status(name); got.LastError != turnWaitError {
		t.Errorf("waiting erasure: last_error %q, want %q", got.LastError, turnWaitError)
	}
	e.advance(time.Minute) // the first reconciles and claims its request; the second goes
	e.wantCreates(2)
	got := e.wantState(name, StateSubmitted)
	if len(got.LPRequests) != 2 || got.LPRequests[0].ID == got.LPRequests[1].ID {
		t.Errorf("LivePerson requests = %+v, want two distinct", got.LPRequests)
	}
	if got.LastError != "" {
		t.Errorf("sent erasure: last_error %q, want none", got.LastError)
	}
}

// TestBatchGoesOnWhileSiblingHeld: a held batch gives up its account's send turn: the account's
// next batch is created and completes while the held one waits for the operator.
func TestBatchGoesOnWhileSiblingHeld(t *testing.T) {
	e, _, b, _, _ := holdB(t)
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "31", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"C"}})
	c := e.sendChat(3, "C")
	e.wantCreates(3)
	e.wantFollows(c, e.lastRequest())
	e.runLivePersonTimeline()
	e.wantState(c, StateCompleted)
	e.wantCreates(3)
	if got := e.wantState(b, StateScheduled); got.BlockedOn != BlockedDeletionOutcomeUnknown || len(got.HeldBatches) != 1 {
		t.Errorf("held erasure: blocked %d, held %+v; want still held", got.BlockedOn, got.HeldBatches)
	}
	if held := e.batchOf(2); held.State != batchHeld {
		t.Errorf("batch 2 is %s, want still HELD", held.State)
	}
}

// TestReconcileSkipsHeldCandidates: the engagement batch is held with two candidates; the
// conversation batch of the same erasure goes at once, and its answer is lost too. The held
// batch's candidates are in LivePerson's list within the second batch's window, but they are
// reserved: its only candidate is its own request, which it claims; nothing is created twice.
func TestReconcileSkipsHeldCandidates(t *testing.T) {
	e := newDocEnv(t)
	e.lp.loseAfter = true
	name := e.twoBatches()
	e.advance(e.cfg.BatchMaxWait)
	first := e.lastRequest()
	other := e.lp.addForeign(e.lp.who, e.clock.Now(), 0)
	e.lp.mu.Lock()
	e.lp.loseAfter = true
	e.lp.mu.Unlock()
	e.advance(time.Minute) // batch 1 is held; batch 2 is sent at once, and its answer lost
	e.wantCreates(2)
	if held := e.batchOf(1); held.State != batchHeld || !slices.Equal(held.Candidates, []int64{first, other}) {
		t.Fatalf("batch 1 = %+v, want HELD with candidates [%d %d]", held, first, other)
	}
	second := e.lastRequest()
	e.advance(time.Minute) // batch 2 reconciles
	e.wantCreates(2)
	if b := e.batchOf(2); b.LPID != second {
		t.Fatalf("batch 2 = %+v, want it to follow its own request %d (not %d or %d)", b, second, first, other)
	}
	got := e.status(name)
	if len(got.LPRequests) != 1 || got.LPRequests[0].ID != second || got.BlockedOn != BlockedDeletionOutcomeUnknown || len(got.HeldBatches) != 1 {
		t.Errorf("erasure: requests %+v, blocked %d, held %+v; want following %d and batch 1 still held",
			got.LPRequests, got.BlockedOn, got.HeldBatches, second)
	}
}

// TestReconcileTwoUnknownBatchesHold: two batches of one account whose sends may both have
// reached LivePerson (left so by a crash) and one request in the list: either could own it, so
// both are held and nothing is sent.
func TestReconcileTwoUnknownBatchesHold(t *testing.T) {
	e := newDocEnv(t)
	ctx := context.Background()
	e.lp.convs = []ConversationRecord{{ConversationID: "c-1", Start: e.ago(30 * time.Hour), ConsumerIDs: []string{"k"}, CustomerIDs: []string{"B"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("B"))
	req.Channels = []Channel{ChannelChat, ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.clock.Advance(e.cfg.BatchMaxWait)
	if err := e.p.Flush(ctx, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		if err := e.updateBatch(id, func(b *batch) { b.Sends = 1 }); err != nil {
			t.Fatal(err)
		}
	}
	only := e.lp.addForeign(e.lp.who, e.clock.Now(), 0) // made by one of the two sends
	e.settle()
	e.wantCreates(0)
	got := e.wantState(name, StateScheduled)
	if got.BlockedOn != BlockedDeletionOutcomeUnknown || len(got.HeldBatches) != 2 {
		t.Fatalf("blocked %d, held %+v; want both batches held", got.BlockedOn, got.HeldBatches)
	}
	for _, h := range got.HeldBatches {
		if len(h.Candidates) != 1 || h.Candidates[0] != only {
			t.Errorf("held batch %d candidates %v, want [%d]", h.BatchID, h.Candidates, only)
		}
	}
}

package service

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The tests of linked records: a LivePerson record found for two erasures of one account is
// sent in one request, and the second erasure follows it.

// sharedChat is a chat both AAA's and BBB's erasures find. Its id is long enough that finding
// its bytes by chance in the Links bucket's hashes is out of the question.
const sharedChat = "8800555001"

// linkEnv is a pipeEnv whose LivePerson creates can be made to fail without creating anything.
type linkEnv struct {
	*pipeEnv
	gate *gatedCreate
}

func newLinkEnv(t *testing.T) *linkEnv {
	e := &linkEnv{pipeEnv: newPipeEnv(t)}
	e.gate = &gatedCreate{fakeLivePerson: e.lp}
	e.p = e.svc.NewPipeline(e.gate, e.cfg)
	return e
}

func (e *linkEnv) restart() {
	e.env.restart()
	e.p = e.svc.NewPipeline(e.gate, e.cfg)
}

// gatedCreate is a fake LivePerson whose CreateDeletion answers err, creating nothing, while
// err is set. It counts the reads of each chat by id.
type gatedCreate struct {
	*fakeLivePerson
	mu    sync.Mutex
	err   error
	reads map[string]int
}

func (g *gatedCreate) ChatByID(ctx context.Context, account, id string, from, to time.Time) (ChatRecord, bool, error) {
	g.mu.Lock()
	if g.reads == nil {
		g.reads = map[string]int{}
	}
	g.reads[id]++
	g.mu.Unlock()
	return g.fakeLivePerson.ChatByID(ctx, account, id, from, to)
}

func (g *gatedCreate) readsOf(id string) int { g.mu.Lock(); defer g.mu.Unlock(); return g.reads[id] }

func (g *gatedCreate) set(err error) { g.mu.Lock(); g.err = err; g.mu.Unlock() }

func (g *gatedCreate) CreateDeletion(ctx context.Context, account string, kind TargetKind, ids []string) (Deletion, error) {
	g.mu.Lock()
	err := g.err
	g.mu.Unlock()
	if err != nil {
		return Deletion{}, err
	}
	return g.fakeLivePerson.CreateDeletion(ctx, account, kind, ids)
}

// chats gives subject who the chats ids (and sharedChat, which BBB has too).
func (e *linkEnv) chats(who string, ids ...string) {
	for _, id := range ids {
		e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: id, Start: e.ago(30 * time.Hour), CustomerIDs: []string{who}})
	}
}

func (e *linkEnv) shareChat() {
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: sharedChat, Start: e.ago(30 * time.Hour), CustomerIDs: []string{"AAA", "BBB"}})
}

// erase submits a chat-only erasure of customer who and returns its name.
func (e *linkEnv) erase(n int, who string) string {
	r := submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", n), "1234", customer(who))
	r.Channels = []Channel{ChannelChat}
	return e.submit(r).Erasure.Name()
}

// target returns erasure name's target of record id.
func (e *linkEnv) target(name, id string) Target {
	e.t.Helper()
	eid, err := ParseName(name)
	if err != nil {
		e.t.Fatal(err)
	}
	var out Target
	err = e.db.View(func(tx storeTx) error {
		r, err := getRecord(tx, eid)
		if err != nil || r == nil {
			return err
		}
		ts, err := e.svc.targetsOf(tx, r)
		for _, t := range ts {
			if t.ID == id {
				out = t
			}
		}
		return err
	})
	if err != nil || out.ID == "" {
		e.t.Fatalf("%s has no target %s (%v)", name, id, err)
	}
	return out
}

// links returns every key and value of the Links bucket.
func (e *linkEnv) links() (keys, values [][]byte) {
	e.t.Helper()
	err := e.db.View(func(tx storeTx) error {
		return tx.Scan(schema.Links, nil, func(k, v []byte) (bool, error) {
			keys, values = append(keys, bytes.Clone(k)), append(values, bytes.Clone(v))
			return true, nil
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return keys, values
}

// sentCount is how many created requests hold record id.
func (e *linkEnv) sentCount(id string) int {
	n := 0
	for _, b := range e.lp.createdBodies() {
		_, list, _ := strings.Cut(b, ":")
		if slices.Contains(strings.Fields(strings.Trim(list, "[]")), id) {
			n++
		}
	}
	return n
}

// complete takes every request to DONE and checks that each erasure completes with a receipt
// whose every re-readable record was re-read.
func (e *linkEnv) complete(want map[string]int) {
	e.t.Helper()
	e.runLivePersonTimeline()
	e.advance(e.svc.cfg.PollInterval)
	for name, n := range want {
		got := e.wantState(name, StateCompleted)
		if got.Receipt == nil {
			e.t.Fatalf("%s COMPLETED without a receipt", name)
		}
		if prefix := fmt.Sprintf("%d of %d re-read records verified erased", n, n); !strings.HasPrefix(got.Receipt.VerificationSummary, prefix) {
			e.t.Errorf("%s: verification %q, want it to start %q", name, got.Receipt.VerificationSummary, prefix)
		}
	}
}

// Two erasures queued at once share a record, and the first fills a batch on its own: the
// second's copy of the id goes in that batch (it costs nothing there) rather than in a second
// request.
func TestLinkedFullBatchTakesSharedIDOfLaterErasure(t *testing.T) {
	e := newLinkEnv(t)
	var own []string
	for i := range 99 {
		own = append(own, fmt.Sprintf("77%08d", i))
	}
	e.chats("AAA", own...)
	e.chats("BBB", "2200000001")
	e.shareChat()
	na, nb := e.erase(1, "AAA"), e.erase(2, "BBB")
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	if n := e.sentCount(sharedChat); n != 1 {
		t.Fatalf("the shared record is in %d requests, want 1 (bodies %v)", n, e.lp.createdBodies())
	}
	if bodies := e.lp.createdBodies(); len(bodies) != 2 || bodies[1] != "engagement:[2200000001]" {
		t.Fatalf("bodies = %v, want the full batch, then BBB's own record alone", bodies)
	}
	if tb := e.target(nb, sharedChat); tb.Batch != e.target(na, sharedChat).Batch {
		t.Errorf("BBB's shared record is in batch %d, AAA's in %d", tb.Batch, e.target(na, sharedChat).Batch)
	}
	e.complete(map[string]int{na: 100, nb: 2})
	if _, err := e.svc.Keep(context.Background()); err != nil { // the keeper drops the links of ended batches
		t.Fatal(err)
	}
	if keys, _ := e.links(); len(keys) != 0 {
		t.Errorf("%d links left once every erasure of the batches completed and the keeper ran", len(keys))
	}
}

// An erasure arriving after the first one's request was sent follows that request: no new
// request holds the shared id, its other records go on their own, and it completes once the
// request is DONE and its own re-read verified the record.
func TestLinkedLaterErasureFollowsSentRequest(t *testing.T) {
	e := newLinkEnv(t)
	e.chats("AAA", "1100000001")
	e.chats("BBB", "2200000001")
	e.shareChat()
	na := e.erase(1, "AAA")
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(na, StateSubmitted)
	lpID := e.lp.requests[0].ID

	nb := e.erase(2, "BBB")
	e.settle()
	if tb := e.target(nb, sharedChat); tb.Status != TargetSubmitted || tb.LPRequest != lpID {
		t.Fatalf("BBB's shared record: %+v, want SUBMITTED in LivePerson request %d", tb, lpID)
	}
	keys, values := e.links()
	if len(keys) == 0 {
		t.Fatal("no links stored")
	}
	for i := range keys {
		if bytes.Contains(keys[i], []byte(sharedChat)) || bytes.Contains(values[i], []byte(sharedChat)) ||
			bytes.Contains(keys[i], []byte("1100000001")) {
			t.Fatalf("a record id is in the Links bucket in the clear: %q", keys[i])
		}
	}
	e.advance(e.cfg.BatchMaxWait)
	if bodies := e.lp.createdBodies(); !slices.Equal(bodies, []string{"engagement:[1100000001 " + sharedChat + "]", "engagement:[2200000001]"}) {
		t.Fatalf("bodies = %v, want the shared record sent once, with AAA's", bodies)
	}
	got := e.status(nb)
	if !slices.ContainsFunc(got.LPRequests, func(q LPRequest) bool { return q.ID == lpID && q.RecordCount == 1 }) {
		t.Errorf("BBB's requests %+v, want %d holding one of its records", got.LPRequests, lpID)
	}
	e.complete(map[string]int{na: 2, nb: 2})
}

// A restart in the middle keeps the links: a third erasure finding the shared record after it
// follows the same request too.
func TestLinkedSurvivesRestart(t *testing.T) {
	e := newLinkEnv(t)
	e.chats("AAA", "1100000001")
	e.shareChat()
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "3300000001", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"CCC"}})
	e.lp.chats[len(e.lp.chats)-2].CustomerIDs = append(e.lp.chats[len(e.lp.chats)-2].CustomerIDs, "CCC")
	na := e.erase(1, "AAA")
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	nb := e.erase(2, "BBB")
	e.settle()
	e.restart()
	nc := e.erase(3, "CCC")
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	if n := e.sentCount(sharedChat); n != 1 {
		t.Fatalf("the shared record is in %d requests after a restart, want 1 (bodies %v)", n, e.lp.createdBodies())
	}
	for _, name := range []string{nb, nc} {
		t.Logf("%s: %+v", name, e.status(name))
		if tb := e.target(name, sharedChat); tb.LPRequest != e.lp.requests[0].ID {
			t.Errorf("%s's shared record: %+v, want it in request %d", name, tb, e.lp.requests[0].ID)
		}
	}
	e.complete(map[string]int{na: 2, nb: 1, nc: 2})
}

// A batch the second erasure joined before it was sent ends without erasing anything (LivePerson
// rejects it, or its quota is spent): the link ends with it, and the shared record goes back to
// the queue for both erasures.
func TestLinkedBatchEndsShareRequeued(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		state string
	}{
		{"rejected", ErrRejected, pipeline.BatchRejected},
		{"dissolved", ErrQuotaExhausted, pipeline.BatchDissolved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLinkEnv(t)
			e.chats("AAA", "1100000001")
			e.chats("BBB", "2200000001")
			e.shareChat()
			na := e.erase(1, "AAA")
			e.settle()
			e.gate.set(fmt.Errorf("%w: connection reset", ErrOutcomeUnknown)) // nothing created, outcome unknown
			e.advance(e.cfg.BatchMaxWait)
			ta := e.target(na, sharedChat)
			if ta.Batch == 0 || ta.LPRequest != 0 {
				t.Fatalf("AAA's shared record %+v, want it in a batch not yet created", ta)
			}
			nb := e.erase(2, "BBB")
			e.settle()
			if tb := e.target(nb, sharedChat); tb.Batch != ta.Batch || tb.Status != TargetQueued {
				t.Fatalf("BBB's shared record %+v, want it to join batch %d", tb, ta.Batch)
			}
			e.gate.set(tc.err)
			for range 20 {
				e.advance(time.Minute)
			}
			var b *batch
			if err := e.db.View(func(tx storeTx) (err error) { b, err = pipeline.GetBatch(tx, ta.Batch); return err }); err != nil {
				t.Fatal(err)
			}
			if b.State != tc.state || !slices.Contains(b.Erasures, strings.TrimPrefix(nb, NamePrefix)) {
				t.Fatalf("batch %d: %s, erasures %v, want %s with BBB's", b.ID, b.State, b.Erasures, tc.state)
			}
			for _, name := range []string{na, nb} {
				if tg := e.target(name, sharedChat); tg.Batch != 0 || tg.Status != TargetQueued {
					t.Errorf("%s's shared record %+v after the batch ended, want it queued again", name, tg)
				}
			}
			if _, err := e.svc.Keep(context.Background()); err != nil { // the keeper drops an ended batch's links
				t.Fatal(err)
			}
			if keys, _ := e.links(); len(keys) != 0 {
				t.Errorf("%d links left after the batch ended and the keeper ran", len(keys))
			}
			if tc.err == ErrQuotaExhausted {
				return // the rest waits for the month
			}
			e.gate.set(nil)
			e.advance(e.cfg.BatchMaxWait)
			if n := e.lp.createdBodies(); len(n) != 1 || e.sentCount(sharedChat) != 1 {
				t.Fatalf("bodies = %v, want one request holding the shared record once", n)
			}
			e.complete(map[string]int{na: 2, nb: 2})
		})
	}
}

// Cancelling one of two erasures that share a NOT_STARTED request cancels the request, as for
// any shared request, and the other erasure's records, the shared one with them, go back to the
// queue and are sent again: nothing another erasure needs is left cancelled.
func TestLinkedCancelRequeuesTheOther(t *testing.T) {
	for _, cancelFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("cancel_first=%v", cancelFirst), func(t *testing.T) {
			e := newLinkEnv(t)
			e.chats("AAA", "1100000001")
			e.chats("BBB", "2200000001")
			e.shareChat()
			na := e.erase(1, "AAA")
			e.settle()
			e.advance(e.cfg.BatchMaxWait)
			nb := e.erase(2, "BBB")
			e.settle()
			if tb := e.target(nb, sharedChat); tb.Status != TargetSubmitted {
				t.Fatalf("BBB's shared record %+v, want it SUBMITTED with AAA's request", tb)
			}
			gone, kept, keptOwn := na, nb, "2200000001"
			if !cancelFirst {
				gone, kept, keptOwn = nb, na, "1100000001"
			}
			if got, err := e.svc.Cancel(context.Background(), gone, "withdrawn"); err != nil || got.State != StateCancelled {
				t.Fatalf("cancel: %+v, %v", got, err)
			}
			if e.lp.requests[0].Status != LPCanceled {
				t.Fatalf("shared request is %s, want CANCELED", e.lp.requests[0].Status)
			}
			if tg := e.target(kept, sharedChat); tg.Status != TargetQueued || tg.Batch != 0 {
				t.Fatalf("the other erasure's shared record %+v, want it queued again", tg)
			}
			e.advance(e.cfg.BatchMaxWait)
			e.advance(e.cfg.BatchMaxWait)
			last := e.lp.createdBodies()[len(e.lp.createdBodies())-1]
			if !strings.Contains(last, sharedChat) || !strings.Contains(last, keptOwn) {
				t.Fatalf("bodies = %v, want the other erasure's records, the shared one with them, sent again", e.lp.createdBodies())
			}
			e.complete(map[string]int{kept: 2})
		})
	}
}

// An erasure arriving once the first one's request is DONE, while the first is still open,
// follows it too: its copy of the record is DONE at once, with no new request, and its receipt
// rests on its own re-read of the record, not on the other erasure's.
func TestLinkedJoinsDoneRequestAndRereads(t *testing.T) {
	e := newLinkEnv(t)
	e.chats("AAA", "1100000001")
	e.chats("BBB", "2200000001")
	e.shareChat()
	na := e.erase(1, "AAA")
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.lp.mu.Lock()
	e.lp.unread["1100000001"] = true // AAA's verification cannot finish yet
	e.lp.mu.Unlock()
	e.runLivePersonTimeline()
	e.wantState(na, StateVerifying)
	// LivePerson said DONE, but a search still finds the record as it was (its masking lags).
	setShared := func(c ChatRecord) {
		e.lp.mu.Lock()
		defer e.lp.mu.Unlock()
		for i := range e.lp.chats {
			if e.lp.chats[i].EngagementID == sharedChat {
				c.EngagementID, c.Start = sharedChat, e.lp.chats[i].Start
				e.lp.chats[i] = c
			}
		}
	}
	setShared(ChatRecord{CustomerIDs: []string{"AAA", "BBB"}})

	nb := e.erase(2, "BBB")
	e.settle()
	if tb := e.target(nb, sharedChat); tb.Status != TargetDone || tb.LPRequest != e.lp.requests[0].ID {
		t.Fatalf("BBB's shared record %+v, want DONE in request %d", tb, e.lp.requests[0].ID)
	}
	setShared(ChatRecord{ContentRead: true, Masked: true}) // masked now
	reads := e.gate.readsOf(sharedChat)
	e.advance(e.cfg.BatchMaxWait)
	if n := e.sentCount(sharedChat); n != 1 {
		t.Fatalf("the shared record is in %d requests, want 1 (bodies %v)", n, e.lp.createdBodies())
	}
	e.lp.mu.Lock()
	delete(e.lp.unread, "1100000001")
	e.lp.mu.Unlock()
	e.complete(map[string]int{na: 2, nb: 2})
	if got := e.gate.readsOf(sharedChat); got <= reads {
		t.Errorf("the shared record was read back %d times after BBB joined, want BBB's own re-read", got-reads)
	}
}

// The key keeper removes the links of a DONE batch once every erasure it holds is final (the
// last may have ended otherwise than by its verification, which removes them itself), and
// leaves them while an erasure of it is still open.
func TestKeeperDropsLinksOfEndedDoneBatch(t *testing.T) {
	e := newLinkEnv(t)
	e.chats("AAA", "1100000001")
	e.chats("BBB", "2200000001")
	e.shareChat()
	na := e.erase(1, "AAA")
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	nb := e.erase(2, "BBB")
	e.settle()
	if keys, _ := e.links(); len(keys) == 0 {
		t.Fatal("no links while the shared request is open")
	}
	if _, err := e.svc.Keep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.links(); len(keys) == 0 {
		t.Fatal("the keeper dropped the links of a request whose erasures are open")
	}
	e.advance(e.cfg.BatchMaxWait) // BBB's own record goes
	e.complete(map[string]int{na: 2, nb: 2})
	id := e.target(na, sharedChat).Batch
	mac := bytes.Repeat([]byte{7}, 32) // a link left over, as an erasure that ended otherwise leaves it
	if err := e.db.Update(context.Background(), func(tx storeTx) error {
		if err := tx.Put(schema.Links, schema.LinkKey(mac), store.U64(id)); err != nil {
			return err
		}
		return tx.Put(schema.Links, schema.LinkBatchKey(id, mac), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Keep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.links(); len(keys) != 0 {
		t.Errorf("links of batch %d, DONE with every erasure final, still stored after the keeper ran: %q", id, keys)
	}
}

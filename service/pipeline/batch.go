package pipeline

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// A Batch is one LivePerson deletion request: one kind, at most 100 unique ids, shared by the
// records of several erasures of one account. Exactly-once: the batch's intent (its kind and
// sorted ids) is committed before the request is sent; LivePerson's request id after. If a send
// may have reached LivePerson but its answer was lost (timeout, crash), LivePerson's list of
// requests is searched for it before anything is sent again; when the list cannot tell, the
// batch is held for an operator and never sent by itself; the account's later batches go on
// meanwhile. A Batch holds its ids sealed only, and names its erasures by id: nothing in it
// reads as personal data.
type Batch struct {
	ID       uint64    `json:"id"`
	Account  string    `json:"account"`
	Kind     int32     `json:"kind"`  // the record kind, as the service numbers it
	State    string    `json:"state"` // BatchIntent, then LivePerson's status, or BatchRejected/BatchDissolved
	Sealed   []byte    `json:"sealed"`
	Erasures []string  `json:"erasures"`
	Created  time.Time `json:"created"`
	Sends    int       `json:"sends"` // POSTs that may have reached LivePerson
	// FirstSend is when the first POST was attempted (committed with Sends going to 1):
	// LivePerson's requests stamped well before it cannot be this batch's.
	FirstSend time.Time `json:"first_send,omitzero"`
	LPID      int64     `json:"lp_id,omitempty"`
	Sent      time.Time `json:"sent,omitzero"` // when LivePerson accepted it
	AtRisk    bool      `json:"at_risk,omitempty"`
	NextPoll  time.Time `json:"next_poll,omitzero"`
	Failures  int       `json:"failures,omitempty"`
	// LastSend is the latest moment the latest POST can have left: committed with Sends++,
	// before the create call starts, as the call's start plus CallTimeout (the call is cut
	// then, whatever it waited for), and moved back to when the call ended if it ended without
	// LivePerson's answer. LivePerson may still be processing a create it received until then,
	// and its list shows the request only once it is done. Zero in batches stored before it was recorded:
	// their sends are long past.
	LastSend time.Time `json:"last_send,omitzero"`
	// ListWait is set while the batch, its request not in LivePerson's list, waits until a
	// create LivePerson may still be processing would be listed (see listwait.go); the batch
	// is reconciled again then, and its erasures say why it waits.
	ListWait time.Time `json:"list_wait,omitzero"`
	// Candidates are, while the batch is held, LivePerson's requests that might be its own: no
	// other batch's reconciliation takes them until it is settled.
	Candidates []int64 `json:"candidates,omitempty"`
	// Rivals are, while the batch is held, the batches of its account that were in flight when
	// it was held (none since sends take turns): any of its candidates may be theirs.
	Rivals []uint64 `json:"rivals,omitempty"`
	// Dismissed are LivePerson requests an operator found not to be this batch's, when settling
	// it as not created: the batch's later reconciliations pass over them.
	Dismissed []int64 `json:"dismissed,omitempty"`
	// Unlisted is set while the batch is held because LivePerson's list of requests could not be
	// read: it has no candidates to reserve, and any later batch's candidate may be its request.
	Unlisted bool `json:"unlisted,omitempty"`
	// ListFailures counts the reads of LivePerson's list that failed in a row while the batch's
	// outcome was unknown; past a limit the batch is held.
	ListFailures int `json:"list_failures,omitempty"`
	// Waited is set while the batch waits for its account's send turn and its erasures say so.
	Waited bool `json:"waited,omitempty"`
	// Resend is set when an operator settled a held batch as not created: the next send goes
	// out without reconciling first (the operator already looked). The send clears it.
	Resend bool `json:"resend,omitempty"`
	// SettledBy names the operator who settled the batch, when one did.
	SettledBy string `json:"settled_by,omitempty"`
}

// Batch states of our own, besides LivePerson's statuses.
const (
	BatchIntent    = "INTENT"    // committed; maybe sent
	BatchRejected  = "REJECTED"  // LivePerson refused it (4xx): its records went back to the queue
	BatchDissolved = "DISSOLVED" // quota was spent (429): nothing was created; records requeued
	// BatchHeld: a send may have reached LivePerson and its list cannot tell whether it did;
	// only an operator moves it on.
	BatchHeld = "HELD"
)

// TaskBatch starts the schedule's task of each batch: TaskBatch and the decimal batch id.
const TaskBatch = "b/"

// GetBatch reads batch id; nil when there is none.
func GetBatch(tx store.Tx, id uint64) (*Batch, error) {
	v := tx.Get(schema.Batches, schema.BatchKey(id))
	if v == nil {
		return nil, nil
	}
	b := new(Batch)
	return b, json.Unmarshal(v, b)
}

// PutBatch stores b. A batch that ended without erasing its ids (rejected, dissolved,
// cancelled) keeps its links until the key keeper drops them; they are not followed, since
// only a live batch is joined (linked.go).
func PutBatch(tx store.Tx, b *Batch) error {
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return tx.Put(schema.Batches, schema.BatchKey(b.ID), v)
}

// InFlight reports whether b may exist at LivePerson without our knowing its request and is
// not held: such a batch holds its account's send turn. A batch an operator settled as not
// created (Resend) is not in flight until it is sent again.
func (b *Batch) InFlight() bool {
	return b.State == BatchIntent && b.Sends > 0 && !b.Resend
}

// PollNext schedules the batch's next step at `at` (zero: none), in tx; the caller stores b.
func PollNext(tx store.Tx, b *Batch, at time.Time) error {
	if err := Reschedule(tx, TaskBatch+strconv.FormatUint(b.ID, 10), b.NextPoll, at); err != nil {
		return err
	}
	b.NextPoll = at
	return nil
}

// TakeSendTurn gives b its account's send turn, unless another batch in flight holds it: then b
// joins the waiters, woken when that batch's outcome is known (ReleaseSendTurn). A held batch
// does not keep the turn.
func TakeSendTurn(tx store.Tx, b *Batch) (bool, error) {
	t, _, err := GetSendTurn(tx, b.Account)
	if err != nil {
		return false, err
	}
	free := true
	if t.Batch != 0 && t.Batch != b.ID {
		holder, err := GetBatch(tx, t.Batch)
		if err != nil {
			return false, err
		}
		free = holder == nil || !holder.InFlight()
	}
	ok := t.Take(b.ID, free)
	return ok, PutSendTurn(tx, b.Account, t)
}

// ReleaseSendTurn ends b's send turn (its outcome is known now, or it is held) and schedules
// the batches that waited for it at now.
func ReleaseSendTurn(tx store.Tx, b *Batch, now time.Time) error {
	t, held, err := GetSendTurn(tx, b.Account)
	if err != nil || !held || t.Batch != b.ID {
		return err
	}
	for _, id := range t.Waiting {
		w, err := GetBatch(tx, id)
		if err != nil {
			return err
		}
		if w == nil || w.State != BatchIntent {
			continue
		}
		if err := PollNext(tx, w, now); err != nil {
			return err
		}
		if err := PutBatch(tx, w); err != nil {
			return err
		}
	}
	return EndSendTurn(tx, b.Account)
}

package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// What became of a create whose answer was lost. LivePerson documents its list and get answers
// as request_id, siteId, request_time, requested_by and status only: the body (delete_json) may
// be missing, so a lost answer cannot always be matched by content. What the list does give is
// who created each request and when. Three things make that enough in the usual case:
//
//   - who we are at LivePerson: every create answer carries requested_by, remembered per account;
//   - when the batch's first POST was attempted, committed before the POST;
//   - at most one batch per account in flight (sent, outcome unknown, not held) at a time: it
//     holds the account's "send turn", so a request created after that POST, claimed by no
//     other batch and reserved by no held batch, can only be its own.
//
// Neither who nor when may ever make the batch's own request look like someone else's: that
// would send the batch a second time. So both are used only as far as they are certain:
//
//   - request_time rules a request out only when it is plausible (after 2000) and more than
//     RequestTimeMargin before the first POST. LivePerson's timestamps are read leniently: a
//     time without a zone is read as UTC (a local US time is then hours off), a date alone as
//     midnight, unix seconds may read as milliseconds (1970). A missing or implausible time
//     rules nothing out.
//   - requested_by never rules a request out: credentials rotate (a new OAuth client, another
//     authentication scheme), and the first create under the new name is the one whose answer
//     may be lost. It only chooses among candidates: when exactly one of them may carry our
//     remembered name (it does, or it carries none), that one is claimed.
//
// A request whose echoed body differs from the batch's is never its own; one whose body matches
// is certainly its own. Otherwise, with no candidate the create did not happen and the batch is
// sent; with one candidate (or one of ours among several) and no other batch of the account
// whose outcome is unknown, that request is claimed; anything else cannot be told, and the
// batch is held: never sent by itself, its erasures blocked on DELETION_OUTCOME_UNKNOWN, until
// an operator settles it. Its candidates are reserved meanwhile: no other batch's
// reconciliation takes them. A batch is held too, with no candidates, when LivePerson's list
// cannot be read (refused, or failing MaxListFailures times in a row): it would otherwise keep
// its account's send turn for ever.
//
// A held batch gives up the send turn, so one undecidable answer does not stop every later
// deletion of the account (and with them their deadlines). That is sound because a held batch
// never sends again by itself: whatever request it may have created was created before its
// hold, and so was listed among its candidates, which stay reserved until it is settled. A batch
// that sends after the hold can therefore neither mistake the held batch's request for its own
// nor miss its own request for being reserved (every reserved request existed before it sent).
// What remains is a request LivePerson had not listed yet when the batch was held: a later batch
// could claim it as the only candidate. That batch then follows a request that deletes other
// records than its own; verification re-reads every one of its records after LivePerson reports
// DONE, finds them still there and queues them again (failing the erasure with the evidence if
// they survive that too), so this can never end in a false receipt; and since no batch's own
// request is ever reserved against it, it cannot make a batch be created twice either. The same
// holds for another party's request claimed as the only candidate. A batch that was in flight
// at the same time as the held one (only data written before the send turn existed) is its
// rival: the reservation does not hold against it, and the held batch counts as a sibling whose
// outcome is unknown. So does a batch held because the list could not be read: it reserves
// nothing, since it never saw its candidates, and any later batch's candidate may be its
// request.

// RequestTimeMargin is how much earlier than our first POST a request may be stamped and still
// be the one that POST created. It allows for LivePerson's clock, its zone (a time without one
// is read as UTC) and a date stamped without its time (read as midnight). The list is read from
// as far back.
const RequestTimeMargin = 48 * time.Hour

// plausibleSince: a request_time before it is not a time at all (a missing value, or seconds
// read as milliseconds), and rules nothing out.
var plausibleSince = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxListFailures is how many times in a row LivePerson's list may fail for a batch whose
// outcome is unknown before the batch is held (about two minutes with the retry backoff).
const MaxListFailures = 5

// errListUnread marks a reconciliation that could not read LivePerson's list.
var errListUnread = errors.New("LivePerson's list of deletion requests could not be read")

// ruledOutByTime reports whether request d cannot have been created by a POST first attempted
// at sent: only a plausible request_time, well before sent, says so.
func ruledOutByTime(d model.Deletion, sent time.Time) bool {
	return !d.Created.Before(plausibleSince) && d.Created.Before(sent.Add(-RequestTimeMargin))
}

// reconciled is what LivePerson's list says about a batch whose create outcome is unknown:
// claim request, hold with candidates, or neither (nothing was created: send).
type reconciled struct {
	claim      bool
	request    model.Deletion
	hold       bool
	candidates []int64
}

// reconcile looks for the batch's request among LivePerson's requests. A candidate is a
// request no other batch of ours has claimed, or reserved while held, not ruled out by its time,
// not dismissed by an operator for this batch, and, if LivePerson echoes its body, with the batch's kind and ids; a request whose echoed body
// differs is never one. requested_by only chooses among candidates. An error wrapping
// errListUnread means LivePerson's list could not be read.
func (p *Pipeline) reconcile(ctx context.Context, b *Batch, ids []string) (reconciled, error) {
	sent := b.FirstSend
	if sent.IsZero() {
		sent = b.Created // stored before first sends were recorded: the intent came first
	}
	// Open-ended towards the future: LivePerson's clock, not ours, stamps request_time, and a
	// request missed here would be created a second time.
	list, err := p.lp.ListDeletions(ctx, b.Account, sent.Add(-RequestTimeMargin), time.Time{})
	if err != nil {
		return reconciled{}, fmt.Errorf("%w: %w", errListUnread, err)
	}
	var sib siblings
	var ours string
	err = p.db.View(func(tx store.Tx) error {
		if sib, err = scanSiblings(tx, b.Account, b.ID); err != nil {
			return err
		}
		ours = RequestedBy(tx, b.Account)
		return nil
	})
	if err != nil {
		return reconciled{}, err
	}
	var candidates, mine []model.Deletion
	seen := map[int64]bool{}
	for _, d := range list {
		if sib.taken(d.ID) || seen[d.ID] || ruledOutByTime(d, sent) || slices.Contains(b.Dismissed, d.ID) {
			continue
		}
		seen[d.ID] = true
		if echoed(d) {
			if sameIntent(d, model.TargetKind(b.Kind), ids) {
				return reconciled{claim: true, request: d}, nil
			}
			continue
		}
		candidates = append(candidates, d)
		// A request without requested_by, or any when we do not know who we are, may be ours.
		if ours == "" || d.RequestedBy == "" || d.RequestedBy == ours {
			mine = append(mine, d)
		}
	}
	switch {
	case len(candidates) == 0:
		return reconciled{}, nil
	case sib.unknown > 0:
		// Another batch of the account might have created any of them.
	case len(candidates) == 1:
		// The only request that can be this batch's, and no other batch of the account might
		// have created it. Should it still be someone else's, verification re-reads every
		// record after LivePerson reports DONE, so a wrong claim cannot end in a false receipt.
		return reconciled{claim: true, request: candidates[0]}, nil
	case len(mine) == 1:
		// The only one that may have been created under our name; the others carry another
		// party's.
		return reconciled{claim: true, request: mine[0]}, nil
	}
	out := reconciled{hold: true}
	for _, d := range candidates {
		out.candidates = append(out.candidates, d.ID)
	}
	slices.Sort(out.candidates)
	return out, nil
}

// echoed reports whether LivePerson's answer carried the request's body.
func echoed(d model.Deletion) bool { return d.Kind != model.KindUnspecified || len(d.IDs) > 0 }

// sameIntent reports whether d's echoed body is kind with exactly ids (sorted).
func sameIntent(d model.Deletion, kind model.TargetKind, ids []string) bool {
	return d.Kind == kind && slices.Equal(slices.Sorted(slices.Values(d.IDs)), ids)
}

// siblings is what the other batches of an account tell about one batch's reconciliation.
type siblings struct {
	claimed  map[int64]bool // LivePerson requests other batches follow
	reserved map[int64]bool // candidates of other held batches (not this batch's rivals)
	unknown  int            // other batches that could own the same request
	inFlight []uint64       // other batches in flight: sent, outcome unknown, not held
}

// taken reports whether LivePerson request id belongs to, or may belong to, another batch.
func (s siblings) taken(id int64) bool { return s.claimed[id] || s.reserved[id] }

// scanSiblings reads every batch once and gathers what the batches of account other than self
// tell about self's reconciliation. A held batch that had self as a rival counts as unknown and
// reserves nothing against self; any other held batch reserves its candidates.
func scanSiblings(tx store.Tx, account string, self uint64) (siblings, error) {
	sib := siblings{claimed: map[int64]bool{}, reserved: map[int64]bool{}}
	err := tx.Scan(schema.Batches, nil, func(_, v []byte) (bool, error) {
		var other Batch
		if err := json.Unmarshal(v, &other); err != nil {
			return false, err
		}
		if other.Account != account || other.ID == self {
			return true, nil
		}
		if other.LPID != 0 {
			sib.claimed[other.LPID] = true
		}
		switch {
		case other.InFlight():
			sib.unknown++
			sib.inFlight = append(sib.inFlight, other.ID)
		case other.State == BatchHeld && (other.Unlisted || slices.Contains(other.Rivals, self)):
			sib.unknown++
		case other.State == BatchHeld:
			for _, id := range other.Candidates {
				sib.reserved[id] = true
			}
		}
		return true, nil
	})
	return sib, err
}

// errTaken: the request reconciliation found was claimed or reserved by another batch in the
// meantime (an operator settled a held batch with it).
var errTaken = errors.New("the LivePerson request found for the batch now belongs to another batch")

// claimFound makes batch id follow request d, which reconciliation found to be its own, unless
// another batch took d since the list was read: then it reconciles again later.
func (p *Pipeline) claimFound(ctx context.Context, id uint64, d model.Deletion) error {
	now := p.now()
	taken := false
	err := p.updateBatch(ctx, id, func(tx store.Tx, b *Batch) error {
		taken = false
		if b.State != BatchIntent {
			return errStale
		}
		sib, err := scanSiblings(tx, b.Account, b.ID)
		if err != nil {
			return err
		}
		if taken = sib.taken(d.ID); taken {
			return errStale
		}
		return p.ch.Follow(tx, b, d, "reconciled", now)
	})
	switch {
	case err == nil && taken:
		return p.batchRetry(ctx, id, "reconcile", errTaken)
	case transitionRefused(err):
		return p.followRefused(ctx, id, d, "reconcile", err)
	}
	return err
}

// TurnWaitError is the last_error of an erasure whose batch waits for its account's send turn.
const TurnWaitError = "waiting for an earlier LivePerson deletion request of this account to be confirmed"

// showWaiting makes b's erasures show, or stop showing, that b waits for its account's send
// turn. Each change is written once: a batch that keeps waiting writes nothing more. A hold
// shown by an erasure outranks the wait.
func (p *Pipeline) showWaiting(tx store.Tx, b *Batch, wait bool, now time.Time) error {
	if b.Waited == wait {
		return nil
	}
	b.Waited = wait
	return p.ch.showOnMembers(tx, b, TurnWaitError, wait, now)
}

// showOnMembers makes b's erasures show why b waits (msg as their last_error), or stop showing
// it. A hold shown by an erasure outranks the wait; an erasure already as asked is not written.
func (c *Changes) showOnMembers(tx store.Tx, b *Batch, msg string, show bool, now time.Time) error {
	return c.forMembers(tx, b, func(r *model.Record, _ []model.Target) error {
		switch {
		case show && len(r.HeldBatches) == 0 && r.LastError != msg:
			r.LastError = msg
		case !show && r.LastError == msg:
			r.LastError = ""
		default:
			return nil
		}
		return c.d.Transition(tx, r, r.State, nil, now)
	})
}

// Claimed reports whether another batch of account than self already follows LivePerson
// request lpID: an operator cannot settle self with it.
func Claimed(tx store.Tx, account string, self uint64, lpID int64) (bool, error) {
	sib, err := scanSiblings(tx, account, self)
	return sib.claimed[lpID], err
}

// Reserved lists, sorted, the LivePerson requests that held batches of account reserve against
// batch self (see reconcile): no reconciliation of self may claim them.
func Reserved(tx store.Tx, account string, self uint64) ([]int64, error) {
	sib, err := scanSiblings(tx, account, self)
	return slices.Sorted(maps.Keys(sib.reserved)), err
}

// OtherRecords reports whether LivePerson echoed d's body and it names other records than kind
// with ids (sorted): then d is certainly not the request of a batch of those ids.
func OtherRecords(d model.Deletion, kind model.TargetKind, ids []string) bool {
	return echoed(d) && !sameIntent(d, kind, ids)
}

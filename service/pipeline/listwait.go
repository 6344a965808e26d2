package pipeline

import (
	"context"
	"time"

	"github.com/erasured/erasured/store"
)

// LivePerson lists a deletion request only once it has processed the create, and nothing bounds
// how long that takes but the call's own timeout: a create that went out just before its answer
// was lost (a timeout, a crash, a deposed leader cut off) may still be in LivePerson's hands
// when the batch is reconciled, and then it is in no list yet. So "no candidate" is read as "the
// create did not happen" only once the batch's last POST is older than the longest a create may
// take, and a reconciliation before then waits for that moment and looks again.

// ListingAllowance is added to the LivePerson call timeout for the time a create LivePerson
// answered at the very end of the call takes to appear in its list.
const ListingAllowance = 5 * time.Second

// ListingWaitError is the last_error of an erasure whose batch waits for LivePerson to list a
// create that may still be processed.
const ListingWaitError = "waiting for LivePerson to list a deletion request for these records that it may still be processing"

// listedBy is when a create of batch b that LivePerson received is in LivePerson's list, if it
// ever is: the last POST, plus the longest the call may take, plus ListingAllowance. A batch
// stored before its last POST was recorded gives a time long past.
func (p *Pipeline) listedBy(b *Batch) time.Time {
	if b.LastSend.IsZero() {
		return time.Time{}
	}
	return b.LastSend.Add(p.cfg.CallTimeout + ListingAllowance)
}

// waitListing has batch b, whose request LivePerson's list did not show, reconciled again at
// until (listedBy) instead of sent: its erasures say why it waits, and the wait is logged once
// stored. The list was read, so the batch's run of list failures ends.
func (p *Pipeline) waitListing(ctx context.Context, b *Batch, until time.Time) error {
	now := p.now()
	return p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *Batch) error {
		if cur.State != BatchIntent || cur.Sends != b.Sends || cur.Resend {
			return errStale
		}
		if err := p.showListWait(tx, cur, until, now); err != nil {
			return err
		}
		cur.ListFailures = 0
		id, account := cur.ID, cur.Account
		if err := tx.OnCommit(func() {
			p.log.Info("LivePerson does not list the batch's request yet; looking again once a create still being processed would be listed",
				"batch", id, "account", account, "next_attempt_time", until.UTC())
		}); err != nil {
			return err
		}
		return PollNext(tx, cur, until)
	})
}

// showListWait records on b that it waits for LivePerson's list until `until` (zero: it no
// longer does), and has its erasures show it, or stop showing it, once per change.
func (p *Pipeline) showListWait(tx store.Tx, b *Batch, until, now time.Time) error {
	was, wait := !b.ListWait.IsZero(), !until.IsZero()
	b.ListWait = until
	if was == wait {
		return nil
	}
	return p.ch.showOnMembers(tx, b, ListingWaitError, wait, now)
}

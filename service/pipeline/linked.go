package pipeline

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Shared records are linked, not sent twice. One LivePerson record can belong to two erasures
// of an account: a conversation found for two data subjects, or two erasures of one subject
// under different identifiers. Once a live batch holds a record id, an erasure that finds the
// same id again does not queue it: its target joins that batch (it carries the batch's id, the
// erasure becomes one of the batch's Erasures) and follows the batch like any member, through
// sending, polling, holding, cancelling, rejection, dissolution and verification.
//
// The Links bucket says which batch holds an id. Record ids are personal data, so it is keyed
// by a keyed hash of the account, kind and id (Linker), never by the id:
//
//   - "h/" hash → the batch holding it, written in the transaction that forms the batch;
//   - "b/" batch, hash → nothing: the batch's links, to remove them when it ends.
//
// A batch is live, and its ids are not sent again, while it may still erase them: its intent is
// committed, it is held, LivePerson has it NOT_STARTED or IN_PROGRESS, or it is DONE and no
// member's re-read has found the record kept. Its links are removed when that stops: when it is
// rejected, dissolved or cancelled (PutBatch), for one id when verification finds it kept and
// queues it again (verifier), and all of them once every erasure of a DONE batch is final
// (verifier's finish), so that hashes of record ids are not kept for longer than the erasures
// that hold the ids themselves. A consumer profile cannot be read back, so a DONE batch of
// consumers takes no new members: a later erasure's receipt never rests on another erasure's
// DONE alone. Every joined record is verified by the joiner's own re-read.

// Linker is what a Domain provides for links: a keyed hash of a record id of a kind within an
// account, stable across restarts and key rotation. Without it (a Domain that does not
// implement it) nothing is linked, and shared ids are sent once per batch as before.
type Linker interface {
	LinkHash(account string, kind model.TargetKind, id string) []byte
}

// linkHash is the link hash of an id, nil when the domain keys no links.
func (c *Changes) linkHash(account string, kind model.TargetKind, id string) []byte {
	l, ok := c.d.(Linker)
	if !ok {
		return nil
	}
	return l.LinkHash(account, kind, id)
}

// joinable reports whether batch b may take a new member for its ids.
func joinable(b *Batch) bool {
	switch b.State {
	case BatchIntent, BatchHeld, model.LPNotStarted, model.LPInProgress:
		return true
	case model.LPDone:
		return model.TargetKind(b.Kind) != model.KindConsumer
	}
	return false
}

// linkedBatch returns the live batch of account and kind that holds id, nil when none does.
func (c *Changes) linkedBatch(tx store.Tx, account string, kind model.TargetKind, id string) (*Batch, error) {
	mac := c.linkHash(account, kind, id)
	if mac == nil {
		return nil, nil
	}
	v := tx.Get(schema.Links, schema.LinkKey(mac))
	if v == nil {
		return nil, nil
	}
	bid, err := store.ParseU64(v)
	if err != nil {
		return nil, err
	}
	b, err := GetBatch(tx, bid)
	if err != nil || b == nil || b.Account != account || model.TargetKind(b.Kind) != kind || !joinable(b) {
		return nil, err
	}
	return b, nil
}

// addLinks records that batch b, just formed, holds ids.
func (c *Changes) addLinks(tx store.Tx, b *Batch, ids []string) error {
	for _, id := range ids {
		mac := c.linkHash(b.Account, model.TargetKind(b.Kind), id)
		if mac == nil {
			return nil
		}
		if err := tx.Put(schema.Links, schema.LinkKey(mac), store.U64(b.ID)); err != nil {
			return err
		}
		if err := tx.Put(schema.Links, schema.LinkBatchKey(b.ID, mac), nil); err != nil {
			return err
		}
	}
	return nil
}

// linkChunk bounds the links one transaction writes or drops (two keys each): a store on etcd
// refuses a transaction of more than its max_txn_ops (128 by default), and a batch of 100 ids
// formed from many erasures already takes most of that.
const linkChunk = 50

// linkBatch records, after batch b was formed, that it holds ids: in transactions of their own,
// linkChunk ids each. A link is a hint: joining checks that its batch is live, so a link that
// is missing (a crash before it was written) only means the id may be sent again, as it was
// before links; one that outlives its batch is not followed.
func (p *Pipeline) linkBatch(ctx context.Context, b *Batch, ids []string) {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), linkChunk)]
		ids = ids[len(chunk):]
		if err := p.db.Update(ctx, func(tx store.Tx) error { return p.ch.addLinks(tx, b, chunk) }); err != nil {
			if ctx.Err() == nil {
				p.log.Warn("pipeline: recording the ids of a batch for later erasures failed; they may be sent again",
					"batch", b.ID, "err", err)
			}
			return
		}
	}
}

// DropLinksOf removes every link of batch id, linkChunk links per transaction of db.
func DropLinksOf(ctx context.Context, db DB, id uint64) error {
	for {
		more := false
		err := db.Update(ctx, func(tx store.Tx) error {
			var err error
			more, err = dropLinks(tx, id, linkChunk)
			return err
		})
		if err != nil || !more {
			return err
		}
	}
}

// HasLinks reports whether batch id has a link left.
func HasLinks(tx store.Tx, id uint64) bool {
	prefix := schema.LinkBatchPrefix(id)
	found := false
	_ = tx.Scan(schema.Links, prefix, func(k, _ []byte) (bool, error) {
		found = bytes.HasPrefix(k, prefix)
		return false, nil
	})
	return found
}

// dropLinks removes up to most links of batch id (0: all), and reports whether more are left.
func dropLinks(tx store.Tx, id uint64, most int) (more bool, err error) {
	prefix := schema.LinkBatchPrefix(id)
	var macs [][]byte
	err = tx.Scan(schema.Links, prefix, func(k, _ []byte) (bool, error) {
		if !bytes.HasPrefix(k, prefix) {
			return false, nil
		}
		if most > 0 && len(macs) == most {
			more = true
			return false, nil
		}
		macs = append(macs, bytes.Clone(k[len(prefix):]))
		return true, nil
	})
	if err != nil {
		return false, err
	}
	for _, mac := range macs {
		if err := dropLinkOf(tx, id, mac); err != nil {
			return false, err
		}
	}
	return more, nil
}

// dropLink removes the link of one id to batch id (kept: verification found the record still
// holding data, and it is queued again).
func (c *Changes) dropLink(tx store.Tx, account string, kind model.TargetKind, rid string, id uint64) error {
	mac := c.linkHash(account, kind, rid)
	if mac == nil || id == 0 {
		return nil
	}
	return dropLinkOf(tx, id, mac)
}

// dropLinkOf removes batch id's link of hash mac; the hash's entry stays if it names another
// batch.
func dropLinkOf(tx store.Tx, id uint64, mac []byte) error {
	if bytes.Equal(tx.Get(schema.Links, schema.LinkKey(mac)), store.U64(id)) {
		if err := tx.Delete(schema.Links, schema.LinkKey(mac)); err != nil {
			return err
		}
	}
	return tx.Delete(schema.Links, schema.LinkBatchKey(id, mac))
}

// LinksEnded says whether a batch in state has ended in a way that makes its ids sendable again.
func LinksEnded(state string) bool {
	return state == BatchRejected || state == BatchDissolved || state == model.LPCanceled
}

// linkQueued joins each of r's queued targets that no batch holds yet, and whose id a live batch
// of its account and kind holds, to that batch. It changes ts and r (its requests, its holds)
// and stores each batch joined; the caller then queues what is left (enqueueTargets), sets r's
// state from ts, and stores r with ts. It reports whether a target joined.
func (c *Changes) linkQueued(tx store.Tx, r *model.Record, ts []model.Target, now time.Time) (bool, error) {
	joined := false
	for i := range ts {
		t := &ts[i]
		if t.Status != model.TargetQueued || t.Batch != 0 {
			continue
		}
		b, err := c.linkedBatch(tx, r.AccountID, t.Kind, t.ID)
		if err != nil {
			return false, err
		}
		if b == nil {
			continue
		}
		if err := c.join(tx, r, t, b); err != nil {
			return false, err
		}
		joined = true
	}
	return joined, nil
}

// join makes target t of r a record of live batch b, as if r had been a member from the start:
// it takes the batch's status (and request), r shows the batch's request or hold, and b lists r.
func (c *Changes) join(tx store.Tx, r *model.Record, t *model.Target, b *Batch) error {
	t.Batch = b.ID
	switch b.State {
	case model.LPNotStarted, model.LPInProgress:
		t.Status, t.LPRequest = model.TargetSubmitted, b.LPID
	case model.LPDone:
		t.Status, t.LPRequest = model.TargetDone, b.LPID
	}
	if b.LPID != 0 {
		i := slices.IndexFunc(r.LPRequests, func(q model.LPRequest) bool { return q.ID == b.LPID })
		if i < 0 {
			r.LPRequests = append(r.LPRequests, model.LPRequest{ID: b.LPID, Kind: model.TargetKind(b.Kind)})
			i = len(r.LPRequests) - 1
		}
		r.LPRequests[i].RecordCount++
		r.LPRequests[i].Status = b.State
	}
	if b.State == BatchHeld {
		i := slices.IndexFunc(r.HeldBatches, func(h model.HeldBatch) bool { return h.BatchID == b.ID })
		if i < 0 {
			r.HeldBatches = append(r.HeldBatches, model.HeldBatch{BatchID: b.ID, Kind: model.TargetKind(b.Kind),
				Candidates: b.Candidates, SendTime: b.FirstSend})
			i = len(r.HeldBatches) - 1
		}
		r.HeldBatches[i].RecordCount++
		r.BlockedOn, r.LastError = model.BlockedDeletionOutcomeUnknown, HeldError
		if b.Unlisted {
			r.LastError = HeldUnlistedError
		}
	}
	if slices.Contains(b.Erasures, r.ID) {
		return nil
	}
	b.Erasures = append(b.Erasures, r.ID)
	return PutBatch(tx, b)
}

// joinedState is the state an erasure in prev moves to when records joined live batches put it
// in st. The erasure states allow SUBMITTED, DELETING and VERIFYING to be reached in one change
// only from SCHEDULED; from any other state the erasure goes to SCHEDULED first, and its
// SCHEDULED step moves it on (movesOn).
func joinedState(prev, st model.State) model.State {
	switch {
	case st == prev || prev == model.StateScheduled:
		return st
	case st == model.StateSubmitted, st == model.StateDeleting, st == model.StateVerifying:
		return model.StateScheduled
	}
	return st
}

// movesOn reports whether r is SCHEDULED with nothing of its own waiting: its records are all in
// batches past the queue, and its next step sets the state they put it in.
func movesOn(r *model.Record, ts []model.Target) bool {
	return r.State == model.StateScheduled && !model.HasStatus(ts, model.TargetFound, model.TargetQueued, model.TargetDeferredOpen)
}

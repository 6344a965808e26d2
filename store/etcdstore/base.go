package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/erasured/erasured/store"
)

// The committer's base: the counters it reads (meta/seq, meta/rev, meta/oldest) and how it
// settles a commit whose reply was lost.

// settle finds out whether the transaction that set the commit key to nonce committed, after
// its reply was lost. It returns with a base that reflects whatever happened.
func (db *DB) settle(nonce string) (committedIt bool, err error) {
	b := db.base
	wait := 50 * time.Millisecond
	var closingSince time.Time
	db.unsettledSince.Store(time.Now().UnixNano())
	defer db.unsettledSince.Store(0)
	for {
		db.nonce++
		abort := string(store.U64(db.nonce))
		ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
		resp, err := db.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.Value(db.lay.key(metaSeq)), "=", string(store.U64(b.seq))),
		).Then(
			clientv3.OpPut(db.lay.key(metaSeq), string(store.U64(b.seq+1))),
			clientv3.OpPut(db.commitKey, abort),
		).Else(db.baseOps()...).Commit()
		cancel()
		if err == nil {
			db.answered()
			if resp.Succeeded {
				// The counter moved past the lost transaction's compare: it never applies.
				db.setBase(base{etcdRev: resp.Header.Revision, seq: b.seq + 1, rev: b.rev, oldest: b.oldest})
				return false, nil
			}
			nb, err := db.baseFrom(resp.Header.Revision, resp.Responses)
			if err != nil {
				return false, err
			}
			last := resp.Responses[3].GetResponseRange().Kvs
			db.setBase(nb)
			if len(last) == 1 && string(last[0].Value) == nonce {
				return true, nil
			}
			return false, nil // an abort of ours, or another process, moved the counter first
		}
		if errors.Is(err, rpctypes.ErrNoSpace) {
			// etcd answered: the abort applied or never will. If the counter has moved,
			// the lost transaction can no longer apply, and the commit key tells.
			db.answered()
			nb, last, rerr := db.readCommitKey()
			if rerr == nil && nb.seq != b.seq {
				db.setBase(nb)
				return last == nonce, nil
			}
		}
		if db.isClosing() {
			if closingSince.IsZero() {
				closingSince = time.Now()
			} else if time.Since(closingSince) > 2*db.opts.RequestTimeout {
				db.base.etcdRev = 0
				return false, fmt.Errorf("store: etcd unreachable while closing; the outcome of a commit is unknown: %w", err)
			}
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// decideNoSpace decides the outcome of a commit etcd answered with ErrNoSpace: it has applied or
// never will, so one linearizable read of the commit key tells. known is false when the read
// failed. It returns with the base at what the read found.
func (db *DB) decideNoSpace(nonce string) (committedIt, known bool) {
	nb, last, err := db.readCommitKey()
	if err != nil {
		return false, false
	}
	db.setBase(nb)
	return last == nonce, true
}

// readCommitKey reads the counters and this opener's commit key, in one linearizable read.
func (db *DB) readCommitKey() (b base, commitKey string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
	defer cancel()
	resp, err := db.cli.Txn(ctx).Then(db.baseOps()...).Commit()
	if err != nil {
		return base{}, "", err
	}
	db.answered()
	b, err = db.baseFrom(resp.Header.Revision, resp.Responses)
	if err != nil {
		return base{}, "", err
	}
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) == 1 {
		commitKey = string(kvs[0].Value)
	}
	return b, commitKey, nil
}

// refusedAsTooLarge reports an error of a transaction etcd refused for its size, before
// proposing it.
func refusedAsTooLarge(err error) bool {
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		return true
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.ResourceExhausted
}

// refusedUnsent reports an error that proves etcd did not apply the request. Not ErrNoSpace:
// etcd checks its space quota before proposing a transaction and again after applying it, and
// answers ErrNoSpace to some that it applied.
func refusedUnsent(err error) bool {
	switch {
	case errors.Is(err, rpctypes.ErrDuplicateKey), errors.Is(err, rpctypes.ErrKeyNotFound),
		errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrInvalidAuthToken),
		errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrUserEmpty):
		return true
	}
	return false
}

// baseOps are the reads that make a base, and the commit key (fourth) to settle lost replies.
func (db *DB) baseOps() []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpGet(db.lay.key(metaSeq)),
		clientv3.OpGet(db.lay.key(metaRev)),
		clientv3.OpGet(db.lay.key(metaOldest)),
		clientv3.OpGet(db.commitKey),
	}
}

// baseFrom decodes the answers to baseOps.
func (db *DB) baseFrom(etcdRev int64, rs []*pb.ResponseOp) (base, error) {
	val := func(i int) []byte {
		if kvs := rs[i].GetResponseRange().Kvs; len(kvs) == 1 {
			return kvs[0].Value
		}
		return nil
	}
	seqV := val(0)
	if seqV == nil {
		return base{}, errors.New("store: the etcd prefix lost its meta/seq key")
	}
	b := base{etcdRev: etcdRev}
	var err error
	if b.seq, err = u64(metaSeq, seqV); err != nil {
		return base{}, err
	}
	if b.rev, err = u64(metaRev, val(1)); err != nil {
		return base{}, err
	}
	if b.oldest, err = u64(metaOldest, val(2)); err != nil {
		return base{}, err
	}
	b.oldest = max(b.oldest, 1)
	return b, nil
}

// readBase reads the store's counters at the current etcd revision.
func (db *DB) readBase(ctx context.Context) (base, error) {
	ctx, cancel := context.WithTimeout(ctx, db.opts.RequestTimeout)
	defer cancel()
	resp, err := db.cli.Txn(ctx).Then(db.baseOps()...).Commit()
	if err != nil {
		return base{}, fmt.Errorf("store: read counters: %w", err)
	}
	db.answered()
	return db.baseFrom(resp.Header.Revision, resp.Responses)
}

// reloadBase replaces the committer's base with the current state and empties its cache.
func (db *DB) reloadBase() error {
	b, err := db.readBase(context.Background())
	if err != nil {
		// The committer's read, as a read of an update function is (see etcdTx.fail).
		return fmt.Errorf("store: read from etcd: prefix %q: %w", db.opts.Prefix, err)
	}
	db.setBase(b)
	return nil
}

// setBase moves the committer to another state; the cache held the old one's values.
func (db *DB) setBase(b base) {
	if b.seq != db.base.seq {
		db.cache.clear()
	}
	db.base = b
}

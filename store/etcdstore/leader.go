package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/erasured/erasured/store"
)

// Leader election.
//
// Each Campaign grants a lease of LeaseTTL and runs an etcd election (concurrency.Election on
// the prefix's leader/ keys) with a session built on that lease. The term is the election key's
// CreateRevision: etcd revisions only grow, so a later term is greater. The DB renews the lease
// itself with KeepAliveOnce every third of the TTL, so that it knows when each renewal was SENT:
// etcd counts the lease from when it RECEIVED the renewal, so sent + TTL (less a margin) is a
// time before which the lease cannot expire, whatever happens to this process afterwards
// (paused, cut off). That is ValidUntil. The session's own keepalive runs beside it (it can
// only make the lease last longer, so the bound stays safe).
//
// A term ends (Done closes) when a renewal is refused (the lease is gone), when ValidUntil
// passes without a renewal, when the follower sees the election key deleted, on Resign and on
// Close. Ending it revokes the lease, which deletes the election key and lets the next
// candidate in: at once on Resign and Close (the holder has stopped its work), and only once its
// last ValidUntil has passed when the term ended by itself, since the holder's work may run until
// then; a process that cannot reach etcd to revoke leaves the lease to expire.
//
// Fencing: an Update fenced with a term adds a compare of the election key's CreateRevision
// with the term to its transaction. Once the lease has expired or been revoked, the key is gone
// and the compare fails, whoever asks and however late the request arrives.

// term is a term of leadership over etcd, or a campaign for one.
type term struct {
	db       *DB
	id       string
	lease    clientv3.LeaseID
	ttl      time.Duration // as granted
	margin   time.Duration
	session  *concurrency.Session
	election *concurrency.Election

	key string // the election key, once elected (set under db.leadMu)
	rev int64  // its CreateRevision: the term

	// validUntil keeps the time with its monotonic reading, so that a step of the wall clock
	// neither lengthens nor shortens the term as this process sees it.
	validUntil atomic.Pointer[time.Time]
	endedAt    atomic.Pointer[time.Time] // when end ran (nil before)
	done       chan struct{}
	once       sync.Once
	stop       context.CancelFunc // ends the renewals
	renewing   sync.WaitGroup
	revokeErr  error // guarded by db.leadMu
	// released is closed by release (Resign, Close): the holder has stopped its work, so the
	// lease may be revoked at once. A term that ended by itself keeps its lease until its
	// ValidUntil has passed, so that no other process is elected while this one's work may
	// still be running within that bound.
	released    chan struct{}
	releaseOnce sync.Once
}

// Campaign implements store.Elector: it blocks until the caller leads, or ctx ends (ctx.Err()),
// or the DB is closed (store.ErrClosed). A campaign whose lease is lost while it waits starts
// again with a new one.
func (db *DB) Campaign(ctx context.Context, id string) (store.Leadership, error) {
	for {
		if db.isClosing() {
			return nil, store.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, err := db.newTerm(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if db.isClosing() {
				return nil, store.ErrClosed
			}
			return nil, fmt.Errorf("store: campaign: %w", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-t.done:
			case <-cctx.Done():
			}
			cancel()
		}()
		err = t.election.Campaign(cctx, id)
		cancel()
		if err == nil {
			db.leadMu.Lock()
			t.key, t.rev = t.election.Key(), t.election.Rev()
			db.leadMu.Unlock()
			err = t.confirm(ctx, t.key, t.rev)
		}
		if err == nil && !t.ended() {
			return t, nil
		}
		t.release()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case db.isClosing():
			return nil, store.ErrClosed
		case t.ended() || errors.Is(err, errNotElected):
			continue // the lease was lost while waiting: campaign again
		}
		return nil, fmt.Errorf("store: campaign: %w", err)
	}
}

var errNotElected = errors.New("election key gone")

// newTerm grants a lease, starts renewing it, and makes the election over it.
func (db *DB) newTerm(ctx context.Context, id string) (*term, error) {
	ttl := int64(math.Ceil(db.opts.LeaseTTL.Seconds()))
	rctx, cancel := context.WithTimeout(ctx, db.opts.RequestTimeout)
	sent := time.Now()
	g, err := db.cli.Grant(rctx, ttl)
	cancel()
	if err != nil {
		return nil, err
	}
	t := &term{db: db, id: id, lease: g.ID, ttl: time.Duration(g.TTL) * time.Second, done: make(chan struct{}), released: make(chan struct{})}
	t.margin = max(t.ttl/20, 50*time.Millisecond)
	until := sent.Add(t.ttl - t.margin)
	t.validUntil.Store(&until)
	t.session, err = concurrency.NewSession(db.cli, concurrency.WithLease(g.ID), concurrency.WithTTL(int(g.TTL)))
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
		_, _ = db.cli.Revoke(rctx, g.ID)
		cancel()
		return nil, err
	}
	t.election = concurrency.NewElection(t.session, db.lay.electionPrefix())
	var kctx context.Context
	kctx, t.stop = context.WithCancel(context.Background())
	db.leadMu.Lock()
	if db.termsClosed {
		db.leadMu.Unlock()
		t.stop()
		t.session.Orphan()
		rctx, cancel := context.WithTimeout(context.Background(), min(db.opts.RequestTimeout, time.Second))
		_, _ = db.cli.Revoke(rctx, g.ID)
		cancel()
		return nil, store.ErrClosed
	}
	db.terms[t] = struct{}{}
	db.leadMu.Unlock()
	t.renewing.Go(func() { t.renew(kctx) })
	return t, nil
}

// confirm checks, after the election said so, that the election key is still there: the lease
// may have expired while the campaign waited, and the election does not notice.
func (t *term) confirm(ctx context.Context, key string, rev int64) error {
	rctx, cancel := context.WithTimeout(ctx, t.db.opts.RequestTimeout)
	defer cancel()
	resp, err := t.db.cli.Get(rctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != rev || clientv3.LeaseID(resp.Kvs[0].Lease) != t.lease {
		return errNotElected
	}
	return nil
}

// renew renews the lease every third of its TTL (sooner after a failure) and ends the term when
// the lease is gone or ValidUntil passes without a renewal.
func (t *term) renew(ctx context.Context) {
	defer t.revoke()
	interval := t.ttl / 3
	next := interval
	for {
		wait := min(next, time.Until(t.ValidUntil()))
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-t.session.Done():
			timer.Stop()
			if t.db.blind() {
				<-ctx.Done()
				return
			}
			t.end()
			return
		case <-timer.C:
		}
		if !time.Now().Before(t.ValidUntil()) {
			t.end()
			return
		}
		sent := time.Now()
		kctx, cancel := context.WithDeadline(ctx, t.ValidUntil())
		resp, err := t.db.cli.KeepAliveOnce(kctx, t.lease)
		cancel()
		switch {
		case err == nil && resp.TTL > 0:
			until := sent.Add(time.Duration(resp.TTL)*time.Second - t.margin)
			if until.After(*t.validUntil.Load()) {
				t.validUntil.Store(&until)
			}
			next = interval
		case err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound):
			if t.db.blind() {
				next = interval
				continue
			}
			t.end()
			return
		default:
			next = min(interval, 200*time.Millisecond)
		}
	}
}

// end closes the term locally: Done closes, fenced Updates of the term are refused from now on,
// and the renewals stop; their goroutine then revokes the lease.
func (t *term) end() {
	t.once.Do(func() {
		now := time.Now()
		t.endedAt.Store(&now)
		close(t.done)
		t.stop()
	})
}

func (t *term) ended() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// revoke stops the session's keepalive and revokes the lease, which deletes the election key
// and lets the next candidate in; a process that cannot reach etcd leaves the lease to expire.
// The renewing goroutine calls it as it ends, and then forgets the term. Unless the holder has
// released the term, it first waits until the term's last ValidUntil: a term that ended by itself
// (a renewal that failed or came too late) may still have work in flight that was allowed to run
// until then, and revoking earlier would let another process be elected while it runs.
func (t *term) revoke() {
	t.session.Orphan()
	if wait := time.Until(*t.validUntil.Load()); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-t.released:
		}
		timer.Stop()
	}
	// Not long: an etcd that cannot be reached lets the lease expire by itself.
	ctx, cancel := context.WithTimeout(context.Background(), min(t.db.opts.RequestTimeout, time.Second))
	_, err := t.db.cli.Revoke(ctx, t.lease)
	cancel()
	t.db.leadMu.Lock()
	t.revokeErr = err
	delete(t.db.terms, t)
	t.db.leadMu.Unlock()
}

// release ends the term and waits until its lease is revoked.
func (t *term) release() error {
	t.releaseOnce.Do(func() { close(t.released) })
	t.end()
	t.renewing.Wait()
	t.db.leadMu.Lock()
	err := t.revokeErr
	t.db.leadMu.Unlock()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		err = nil
	}
	return err
}

// Done implements store.Leadership.
func (t *term) Done() <-chan struct{} { return t.done }

// Fence implements store.Leadership.
func (t *term) Fence(ctx context.Context) context.Context { return store.WithFence(ctx, t) }

// ValidUntil implements store.Leadership: the time the last renewal was sent plus the lease's
// TTL, less a margin; once the term has ended (Resign, a revoke, a failed renewal), the time it
// ended if that is earlier, since another process may lead from then on.
func (t *term) ValidUntil() time.Time {
	v := *t.validUntil.Load()
	if e := t.endedAt.Load(); e != nil && e.Before(v) {
		return *e
	}
	return v
}

// Term implements store.Leadership: the election key's CreateRevision.
func (t *term) Term() int64 { return t.rev }

// Resign implements store.Leadership: the term ends at once and its lease is revoked.
func (t *term) Resign(context.Context) error {
	if err := t.release(); err != nil {
		return fmt.Errorf("store: resign: %w", err)
	}
	return nil
}

// Leader implements store.Elector: the id of the election key created first, "" when none.
func (db *DB) Leader(ctx context.Context) (string, error) {
	if db.isClosing() {
		return "", store.ErrClosed
	}
	resp, err := db.cli.Get(ctx, db.lay.electionPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("store: leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// heldTerm is a term with its election key and revision ("" and 0 while campaigning).
type heldTerm struct {
	t   *term
	key string
	rev int64
}

// heldTerms are the DB's terms, elected or campaigning, and those whose lease is being revoked.
func (db *DB) heldTerms() []heldTerm {
	db.leadMu.Lock()
	defer db.leadMu.Unlock()
	ts := make([]heldTerm, 0, len(db.terms))
	for t := range db.terms {
		ts = append(ts, heldTerm{t, t.key, t.rev})
	}
	return ts
}

// electionKeyDeleted ends the term whose election key the follower saw deleted.
func (db *DB) electionKeyDeleted(key string) {
	if db.blind() {
		return
	}
	for _, h := range db.heldTerms() {
		if h.key == key && h.rev != 0 {
			h.t.end()
		}
	}
}

// checkTerms ends the elected terms whose key is gone, after the follower lost track.
func (db *DB) checkTerms() {
	for _, h := range db.heldTerms() {
		if h.rev == 0 || h.t.ended() {
			continue
		}
		if err := h.t.confirm(db.ctx, h.key, h.rev); errors.Is(err, errNotElected) {
			h.t.end()
		}
	}
}

// endTerms releases every term, for Close.
func (db *DB) endTerms() {
	db.leadMu.Lock()
	db.termsClosed = true
	db.leadMu.Unlock()
	for _, h := range db.heldTerms() {
		_ = h.t.release()
	}
}

// blind reports the test hook that keeps terms from ending but by Resign, Close or a compare.
func (db *DB) blind() bool {
	db.leadMu.Lock()
	defer db.leadMu.Unlock()
	return db.blindTerms
}

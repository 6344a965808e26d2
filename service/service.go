package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Store is what the service needs from storage: transactions that commit durably, an event log
// with revisions, and a watch of that log: a subset of store.DB, so that every backend
// (store/boltstore, a replicated one) provides it.
type Store interface {
	Update(ctx context.Context, fn func(tx store.Tx) error) error
	View(fn func(tx store.Tx) error) error
	Watch(from uint64, key string) (store.Watcher, error)
	Rev() uint64
	Oldest() uint64
	Compact(ctx context.Context, rev uint64) error
	Err() error
	Backup(fn func(s store.Snapshot) error) error
}

var _ Store = store.DB(nil)

// Config holds the service's settings; a zero field takes its default from DefaultConfig.
type Config struct {
	// DefaultConfirmation applies when a Submit does not say; AUTOMATIC when unset.
	DefaultConfirmation Confirmation
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives operational logs (never personal data); slog.Default when nil.
	Logger *slog.Logger
	// CancelWindow is how long LivePerson keeps a deletion request cancellable (default 120h);
	// DeletionWindow how long it may then take to delete (default 480h). Together they decide
	// whether an erasure can still meet its deadline.
	CancelWindow, DeletionWindow time.Duration
	// Accounts are the LivePerson accounts this server acts for; Submit refuses others. Empty
	// accepts any, for tests: the server refuses a configuration that lists none.
	Accounts []string
	// OnIncident, when set, is called for each failure an operator must see (see Incident),
	// after it is logged. It must not block.
	OnIncident func(Incident)
	// OnStateChange, when set, is called once for each committed change of an erasure's state
	// (from is StateUnspecified when the erasure was created). It must not block.
	OnStateChange func(from, to State)
	// Retention is how long an erasure's sealed data is kept after it reaches a final state
	// (default 720h); then it is destroyed (see shred.go).
	Retention time.Duration
	// PollInterval is the usual interval between polls of an open LivePerson request, and
	// between looks at held open conversations (default 1h). It is the service's because
	// Confirm and SettleBatch schedule that work themselves, with or without a pipeline.
	PollInterval time.Duration
	// Margin is kept between the latest safe submit time and the deadline (default: 1/25 of the
	// cancel + deletion windows, at most 24h); Confirm writes it into the queue.
	Margin time.Duration
	// KeepInterval is how often the pipeline runs the key keeper (default: a quarter of the
	// key period, at most an hour; an hour without a key directory).
	KeepInterval time.Duration
	// Shared says other erasured processes share the store (replicas over etcd): Submit then
	// decides idempotency and subject dedup by keys it reads and writes in its transaction,
	// not from this process's memory (shared.go). New refuses to share a store that holds
	// erasures written without those keys. Every process that submits to a shared store must
	// set it. False for a store only this process opens (bbolt).
	// Its keyring must then keep its period keys in the store (OpenSharedKeyring), not in a
	// key directory.
	Shared bool
}

// Service is the erasure domain over a Store.
type Service struct {
	mu sync.Mutex
	lp LivePerson // nil until NewPipeline: erasures are stored and decided but not worked on
	// wake carries the service's "new work" signal to the pipeline, whichever runs (pipeline.go).
	wake chan struct{}

	db    Store
	index *submitIndex
	keys  *Keyring
	cfg   Config
	now   func() time.Time
	log   *slog.Logger

	keeper keeperState // when the key keeper last ran (shred.go)
}

// New returns a Service over db that seals subjects with keys.
func New(db Store, keys *Keyring, cfg Config) (*Service, error) {
	if db == nil || keys == nil {
		return nil, errors.New("service: store and keyring are required")
	}
	cfg = cfg.withDefaults()
	if cfg.KeepInterval <= 0 {
		cfg.KeepInterval = time.Hour
		if keys.period > 0 {
			cfg.KeepInterval = min(keys.period/4, time.Hour)
		}
	}
	if err := keys.checkShared(cfg.Shared); err != nil {
		return nil, err
	}
	if keys.period > cfg.Retention {
		return nil, fmt.Errorf("service: the key period (%s) must not be longer than the retention (%s)", keys.period, cfg.Retention)
	}
	s := &Service{db: db, keys: keys, cfg: cfg, now: cfg.Now, log: cfg.Logger, wake: make(chan struct{}, 1)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := schema.Ensure(context.Background(), db); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if err := s.ensureShared(context.Background()); err != nil {
		return nil, err
	}
	if err := s.ensureCounts(context.Background()); err != nil {
		return nil, err
	}
	if err := s.loadIndex(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// Healthy reports whether the store can serve (nil) or why not.
func (s *Service) Healthy() error { return s.db.Err() }

// record is an erasure as stored: the public view plus the subject sealed with the erasure's
// data key, and that key wrapped by the master key. Events carry only the public view, so removing
// the wrapped key from the record destroys the only copy the store keeps.
//
// It is model.Record, which the pipeline works on too.
type record = model.Record

// private is what a record holds beyond the public view (see model.Private).
type private = model.Private

// principalKey carries the calling principal in a context.
type principalKey struct{}

// WithPrincipal returns ctx carrying the name of the authenticated caller.
func WithPrincipal(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

// Principal returns the caller's name carried by ctx, or "anonymous".
func Principal(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(string); ok && p != "" {
		return p
	}
	return "anonymous"
}

// getRecord loads an erasure by id inside tx; (nil, nil) when absent.
func getRecord(tx store.Tx, id string) (*record, error) {
	v := tx.Get(schema.Erasures, []byte(id))
	if v == nil {
		return nil, nil
	}
	r := new(record)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("decode erasure %s: %w", id, err)
	}
	return r, nil
}

// erasureChange is one change of one erasure, as transition stores it.
type erasureChange struct {
	// from is the erasure's state before the change; StateUnspecified when the change creates it.
	from State
	// targets are the erasure's targets after the change; nil leaves them as stored.
	targets []Target
	now     time.Time
	// encoded, when set, is the new erasure and its event encoded before the transaction, so
	// that the committer, which runs every transaction function one after another, does no JSON
	// work for it (Submit). Only a creation comes encoded: nothing transition sets on a new
	// erasure changes what it encodes.
	encoded *encodedChange
}

// transition is the one way an erasure changes: its creation, every step of the pipeline, a
// decision, a cancel, a failure, a retry that changes nothing a watcher sees. In the caller's
// transaction, it checks the move from c.from to r.State against the transition table
// (checkMove: a refused move writes nothing and fails the transaction with
// STATE_TRANSITION_NOT_ALLOWED), stores r and its targets, and appends the one event of the
// change, naming the states a declared skip passed over. The state change, its event and its
// revision commit together or not at all.
//
// An erasure that reaches a final state is forgotten by the Submit index as its subjects' open
// one, unscheduled and dequeued, and its purge time is set from its final time and the
// retention. An open one shows a held batch before whatever else it waits on: only an operator
// can move it on, and Status must say so.
//
// A change that leaves everything a watcher sees as it was, apart from the update and next
// attempt times (a poll, a recheck or a retry that found nothing new), is stored without an event
// and keeps its revision and update time: the schedule moves with it, the history does not grow.
// A change of state is logged once the transaction commits; a move to FAILED is logged as its
// incident instead (failErasure).
func (s *Service) transition(tx store.Tx, r *record, c erasureChange) error {
	skipped, err := checkMove(c.from, r.State)
	if err != nil {
		return err
	}
	if c.encoded != nil && c.from != StateUnspecified {
		return fmt.Errorf("erasure %s: only a creation may be encoded before its transaction", r.ID)
	}
	if c.targets != nil {
		if err := s.setTargets(tx, r, c.targets); err != nil {
			return err
		}
	}
	switch {
	case r.State.Final() && c.from != r.State:
		if err := s.indexClosed(tx, r); err != nil {
			return err
		}
		if err := setNext(tx, r, time.Time{}); err != nil {
			return err
		}
		r.BlockedOn = BlockedNone
		if err := pipeline.DequeueErasure(tx, r.AccountID, r.ID); err != nil {
			return err
		}
	case !r.State.Final():
		r.BlockedOn = model.HeldFirst(&r.Erasure, r.BlockedOn)
	}
	var old *record
	if c.from != StateUnspecified {
		// The caller's c.from becomes the event's previous state: check it against the state
		// stored, so that a caller that read a stale record cannot write a false history.
		old, err = getRecord(tx, r.ID)
		if err != nil {
			return err
		}
		if old == nil || old.State != c.from {
			stored := StateUnspecified
			if old != nil {
				stored = old.State
			}
			return refuseMove("erasure change from %s, but the erasure stored is %s", c.from, stored)
		}
		if c.from == r.State && unchangedForWatchers(old, r) {
			r.UpdateTime, r.Revision = old.UpdateTime, old.Revision
			return putQuiet(tx, r)
		}
	}
	if err := s.logStateChange(tx, r, c.from); err != nil {
		return err
	}
	if err := countBacklog(tx, old, r, c.now); err != nil {
		return err
	}
	r.UpdateTime = c.now
	if r.State.Final() && r.FinalTime.IsZero() {
		r.FinalTime = c.now
	}
	if r.State.Final() && r.PurgeTime.IsZero() {
		r.PurgeTime = r.FinalTime.Add(s.cfg.Retention)
	}
	enc := c.encoded
	if enc == nil {
		e, err := encodeChange(r, c.from, skipped, c.now)
		if err != nil {
			return err
		}
		enc = &e
	}
	r.Revision, err = enc.put(tx)
	return err
}

// logStateChange logs r's move from prev to its state once tx commits (once however often the
// store runs the transaction function). A move to FAILED is left to its incident line. Every
// change that reaches the change history (a new erasure, a change of state or of the at-risk
// flag) passes here, so the erasure counts are kept here too, in tx: a changed erasure's before r
// is stored (countChange reads how it counted), a new one's in either order.
func (s *Service) logStateChange(tx store.Tx, r *record, prev State) error {
	if err := s.countChange(tx, r, prev); err != nil {
		return err
	}
	if prev == r.State {
		return nil
	}
	id, account, to, ctx := r.ID, r.AccountID, r.State, tx.Context()
	return tx.OnCommit(func() {
		if to != StateFailed {
			s.log.InfoContext(ctx, "erasure state changed", "erasure", id, "account", account, "from", apiName(prev), "to", apiName(to))
		}
		if f := s.cfg.OnStateChange; f != nil {
			f(prev, to)
		}
	})
}

// apiName is a state's name as the API spells it (STATE_RESOLVING).
func apiName(st State) string { return "STATE_" + st.String() }

// unchangedForWatchers reports whether cur differs from old only in what a poll or a retry moves
// on its own: the update and next attempt times, the revision, and the count of failed attempts.
func unchangedForWatchers(old, cur *record) bool {
	a, b := *old, *cur
	for _, r := range []*record{&a, &b} {
		r.UpdateTime, r.NextAttemptTime, r.Revision, r.Failures = time.Time{}, time.Time{}, 0, 0
	}
	x, err := json.Marshal(&a)
	if err != nil {
		return false
	}
	y, err := json.Marshal(&b)
	return err == nil && bytes.Equal(x, y)
}

// encodedChange is an erasure's record and event after a change, encoded. Encoding needs no
// transaction, so a caller can do it before Update and keep the JSON encoder off the committer,
// which runs every transaction function one after another.
type encodedChange struct {
	id     string
	record []byte // the record without its revision: put splices it in
	event  []byte // the event; its erasure's revision is the event's own, set by readers
}

// encodeChange encodes r (whose Revision is ignored) and its event, which moves it from prev
// passing over the states skipped. The public view is encoded once and shared: the event wraps
// it, the record extends it with the private fields.
func encodeChange(r *record, prev State, skipped []State, now time.Time) (encodedChange, error) {
	pub := r.Erasure
	pub.Revision = 0 // omitted: the revision is known only inside the transaction
	view, err := json.Marshal(&pub)
	if err != nil {
		return encodedChange{}, err
	}
	priv, err := json.Marshal(&r.Private)
	if err != nil {
		return encodedChange{}, err
	}
	prevJSON, err := json.Marshal(prev)
	if err != nil {
		return encodedChange{}, err
	}
	timeJSON, err := now.MarshalJSON()
	if err != nil {
		return encodedChange{}, err
	}
	// The same bytes as json.Marshal(Event{Erasure: pub, PreviousState: prev, Skipped: skipped,
	// Time: now}).
	ev := make([]byte, 0, len(view)+len(prevJSON)+len(timeJSON)+40)
	ev = append(ev, `{"erasure":`...)
	ev = append(ev, view...)
	ev = append(ev, `,"previous_state":`...)
	ev = append(ev, prevJSON...)
	if len(skipped) > 0 {
		skippedJSON, err := json.Marshal(skipped)
		if err != nil {
			return encodedChange{}, err
		}
		ev = append(ev, `,"skipped_states":`...)
		ev = append(ev, skippedJSON...)
	}
	ev = append(ev, `,"time":`...)
	ev = append(ev, timeJSON...)
	ev = append(ev, '}')
	return encodedChange{id: r.ID, record: joinObjects(view, priv), event: ev}, nil
}

// joinObjects returns the JSON object with the members of a and then of b, which must be JSON
// objects with no member name in common.
func joinObjects(a, b []byte) []byte {
	if len(b) <= 2 { // {}
		return a
	}
	if len(a) <= 2 {
		return b
	}
	out := make([]byte, 0, len(a)+len(b))
	out = append(out, a[:len(a)-1]...)
	out = append(out, ',')
	return append(out, b[1:]...)
}

// put appends the event and stores the record with the event's revision, which it returns.
func (c encodedChange) put(tx store.Tx) (uint64, error) {
	rev, err := tx.Append(c.id, c.event)
	if err != nil {
		return 0, err
	}
	return rev, tx.Put(schema.Erasures, []byte(c.id), withRevision(c.record, rev))
}

// withRevision returns the JSON object obj with a "revision" member added: obj must not have one
// (Erasure omits a zero revision) and must have at least one member.
func withRevision(obj []byte, rev uint64) []byte {
	out := make([]byte, 0, len(obj)+32)
	out = append(out, obj[:len(obj)-1]...) // without the closing brace
	out = append(out, `,"revision":`...)
	out = strconv.AppendUint(out, rev, 10)
	return append(out, '}')
}

// notFound is the error for an unknown erasure id.
func notFound(id string) error {
	return &Error{Kind: KindNotFound, Reason: "ERASURE_NOT_FOUND", Message: fmt.Sprintf("erasure %q not found", NamePrefix+id),
		Metadata: map[string]string{"name": NamePrefix + id}}
}

// update applies change to one erasure and stores the result through transition, in one
// transaction. change may run more than once (the store may re-run a transaction function); it
// must only modify r.
func (s *Service) update(ctx context.Context, id string, change func(r *record) error) (Erasure, error) {
	now := s.now().UTC()
	var e Erasure
	err := s.db.Update(ctx, func(tx store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound(id)
		}
		prev := r.State
		if err := change(r); errors.Is(err, errUnchanged) {
			e = r.Erasure
			return nil
		} else if err != nil {
			return err
		}
		if err := s.transition(tx, r, erasureChange{from: prev, now: now}); err != nil {
			return err
		}
		e = r.Erasure
		return nil
	})
	return e, s.storeError(err)
}

// errUnchanged, returned by an update's change function, ends the update without writing.
var errUnchanged = errors.New("unchanged")

// Compact drops the change history (Watch events) older than the newest keep revisions. Watchers
// asking for a dropped revision get an OUT_OF_RANGE error naming the oldest kept.
func (s *Service) Compact(ctx context.Context, keep uint64) error {
	rev := s.db.Rev()
	if rev <= keep {
		return nil
	}
	return s.storeError(s.db.Compact(ctx, rev-keep+1))
}

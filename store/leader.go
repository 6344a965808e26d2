package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotLeader is returned by an Update whose context carries a fence (Leadership.Fence) once
// that term of leadership has ended: the function's writes were not committed.
var ErrNotLeader = errors.New("store: leadership lost")

// Elector elects, among the processes that share one store, the one that does the work only one
// of them may do at a time (erasured's pipeline). A backend that only one process can open at a
// time (a bbolt file, held under a file lock) elects its only user at once, for as long as it is
// open.
type Elector interface {
	// Campaign blocks until the caller (named by id, for logs and metrics) leads, and returns
	// that term of leadership; or it returns ctx.Err() when ctx ends first, ErrClosed when the
	// store is closed.
	Campaign(ctx context.Context, id string) (Leadership, error)
	// Leader names the current leader (the id it campaigned with), "" when none leads.
	Leader(ctx context.Context) (string, error)
}

// Leadership is one term of leadership. Once it has ended it never comes back: the caller
// campaigns again for a new term.
type Leadership interface {
	// Done is closed when the term has ended or may have ended: the store no longer confirms
	// it (its lease could not be renewed), it was resigned, or the store was closed.
	Done() <-chan struct{}
	// Fence returns ctx marked with this term. An Update called with it, or with a context
	// derived from it, commits only while the term holds on the store; otherwise it returns an
	// error wrapping ErrNotLeader and writes nothing. Only the marked Updates are fenced.
	// LeadershipOf(ctx) returns the Leadership back, so that work outside the store (a request
	// to LivePerson) can check ValidUntil before it starts.
	Fence(ctx context.Context) context.Context
	// ValidUntil is the latest time at which this term is certainly still held: no other
	// process can be elected before it, whatever happens to this one (paused, cut off). Work
	// with effects outside the store (a request to LivePerson) must finish before it. It moves
	// forward as the term is renewed; for a backend without leases it is far in the future.
	// Once the term has ended it is at most the time it ended. A term that ends by itself (its
	// renewal failed) is not handed to another process before its last ValidUntil.
	// A backend with leases returns a time with a monotonic clock reading (as time.Now has), so
	// that comparisons with time.Now are not moved by steps of the wall clock.
	ValidUntil() time.Time
	// Term identifies the term; a later term of any process has a greater value.
	Term() int64
	// Resign ends the term at once, letting another process lead.
	Resign(ctx context.Context) error
}

type fenceKey struct{}

// WithFence marks ctx with the term l. Backends implement Leadership.Fence with it; inside
// Update they read the term back with LeadershipOf and check it is one of theirs.
func WithFence(ctx context.Context, l Leadership) context.Context {
	return context.WithValue(ctx, fenceKey{}, l)
}

// LeadershipOf returns the term ctx was fenced with, or nil for a context that is not fenced.
func LeadershipOf(ctx context.Context) Leadership {
	l, _ := ctx.Value(fenceKey{}).(Leadership)
	return l
}

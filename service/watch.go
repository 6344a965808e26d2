package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/erasured/erasured/store"
)

// Watch follows changes of one erasure (name set) or of all of them.
type Watch struct {
	w store.Watcher
}

// Watch starts a watch. start is the first revision to deliver; 0 means only changes from now
// on — except with a name, where 0 starts at the erasure's latest change (if still kept), so a
// watcher of one erasure always learns its current state first.
func (s *Service) Watch(ctx context.Context, name string, start uint64) (*Watch, error) {
	key := ""
	if name != "" {
		id, err := ParseName(name)
		if err != nil {
			return nil, err
		}
		cur, err := s.get(id)
		if err != nil {
			return nil, err
		}
		key = id
		if start == 0 {
			start = max(cur.Revision, s.db.Oldest())
		}
	}
	w, err := s.db.Watch(start, key)
	if err != nil {
		return nil, s.watchError(err)
	}
	return &Watch{w: w}, nil
}

// Next blocks until events are available and returns them in revision order; it returns ctx's
// error when ctx ends first.
func (w *Watch) Next(ctx context.Context) ([]Event, error) {
	raw, err := w.w.Next(ctx)
	if err != nil {
		return nil, watchErr(err)
	}
	out := make([]Event, 0, len(raw))
	for _, r := range raw {
		var ev Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			return nil, fmt.Errorf("decode event %d: %w", r.Rev, err)
		}
		ev.Revision = r.Rev
		ev.Erasure.Revision = r.Rev // events store the erasure without it: it is the event's own
		out = append(out, ev)
	}
	return out, nil
}

// Progress is the revision up to which every matching change has been delivered.
func (w *Watch) Progress() uint64 { return w.w.Progress() }

// Close ends the watch.
func (w *Watch) Close() { w.w.Close() }

func (s *Service) watchError(err error) error {
	if e := watchErr(err); e != err {
		return e
	}
	return s.storeError(err)
}

// watchErr translates the store's watch errors into service errors.
func watchErr(err error) error {
	var ce *store.CompactedError
	switch {
	case errors.As(err, &ce):
		return &Error{Kind: KindOutOfRange, Reason: "REVISION_COMPACTED",
			Message:  fmt.Sprintf("revision %d is compacted; the oldest available is %d", ce.Requested, ce.Oldest),
			Metadata: map[string]string{"oldest_revision": fmt.Sprint(ce.Oldest)}}
	case errors.Is(err, store.ErrFutureRevision):
		return &Error{Kind: KindOutOfRange, Reason: "REVISION_IN_FUTURE", Message: err.Error()}
	case errors.Is(err, store.ErrClosed):
		return &Error{Kind: KindUnavailable, Reason: "SHUTTING_DOWN", Message: "the service is shutting down; resume from the last revision received"}
	}
	return err
}

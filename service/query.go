package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Status returns one erasure.
func (s *Service) Status(ctx context.Context, name string) (Erasure, error) {
	id, err := ParseName(name)
	if err != nil {
		return Erasure{}, err
	}
	return s.get(id)
}

// get reads one erasure's public view.
func (s *Service) get(id string) (Erasure, error) {
	var e Erasure
	err := s.viewRecord(id, func(_ store.Tx, r *record) error {
		e = r.Erasure
		return nil
	})
	return e, s.storeError(err)
}

// viewRecord calls fn with erasure id's record in a read transaction, or returns NOT_FOUND.
func (s *Service) viewRecord(id string, fn func(tx store.Tx, r *record) error) error {
	return s.db.View(func(tx store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound(id)
		}
		return fn(tx, r)
	})
}

// ListRequest selects a page of erasures.
type ListRequest struct {
	AccountID string  // empty: all accounts
	States    []State // empty: all states
	// ExternalRef, when set, keeps only erasures whose external_ref is exactly this (a ticket id).
	ExternalRef string
	PageSize    int // 0: DefaultPageSize
	PageToken   string
}

// ListResult is a page of erasures, oldest first.
type ListResult struct {
	Erasures      []Erasure
	NextPageToken string
}

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// List returns erasures in creation order, one page at a time. It reads one page's worth of
// matching records (plus one to know whether more follow), never the whole store.
func (s *Service) List(ctx context.Context, req ListRequest) (ListResult, error) {
	size := req.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	if size > MaxPageSize {
		size = MaxPageSize
	}
	filter := listFilterHash(req)
	var after string
	if req.PageToken != "" {
		var err error
		if after, err = decodePageToken(req.PageToken, filter); err != nil {
			return ListResult{}, err
		}
	}
	var res ListResult
	err := s.db.View(func(tx store.Tx) error {
		res = ListResult{}
		start := []byte(after)
		if after != "" {
			start = append(start, 0) // the first key after the last one returned
		}
		return tx.Scan(schema.Erasures, start, func(k, v []byte) (bool, error) {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("decode erasure %s: %w", k, err)
			}
			if req.AccountID != "" && r.AccountID != req.AccountID {
				return true, nil
			}
			if len(req.States) > 0 && !slices.Contains(req.States, r.State) {
				return true, nil
			}
			if req.ExternalRef != "" && r.ExternalRef != req.ExternalRef {
				return true, nil
			}
			if len(res.Erasures) == size {
				// One more match exists: this page is full and another follows.
				res.NextPageToken = encodePageToken(res.Erasures[size-1].ID, filter)
				return false, nil
			}
			res.Erasures = append(res.Erasures, r.Erasure)
			return true, nil
		})
	})
	return res, s.storeError(err)
}

// A page token is the last id returned plus a hash of the filters, so a token is refused when
// reused with other filters instead of silently skipping records.
func listFilterHash(req ListRequest) string {
	states := slices.Clone(req.States)
	slices.Sort(states)
	key := fmt.Appendf(nil, "%s|%v", req.AccountID, states)
	if req.ExternalRef != "" { // appended only when set, so tokens issued before the filter existed stay valid
		key = fmt.Appendf(key, "|%q", req.ExternalRef)
	}
	h := sha256.Sum256(key)
	return base64.RawURLEncoding.EncodeToString(h[:6])
}

func encodePageToken(lastID, filter string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(filter + "." + lastID))
}

func decodePageToken(tok, filter string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	f, id, ok := strings.Cut(string(b), ".")
	if err != nil || !ok || id == "" {
		return "", newError(KindInvalid, "INVALID_PAGE_TOKEN", "page_token is malformed")
	}
	if f != filter {
		return "", newError(KindInvalid, "INVALID_PAGE_TOKEN", "page_token was issued for other filters")
	}
	return id, nil
}

// Cancel ends an erasure as CANCELLED while nothing of it is final at LivePerson (see
// finalAtLivePerson), whatever its state. Records still queued are simply dropped; if some are
// in LivePerson requests that are still NOT_STARTED, those requests are cancelled and the other
// erasures' records in them go back to the queue.
// Cancelling an already cancelled erasure returns it unchanged.
func (s *Service) Cancel(ctx context.Context, name, reason string) (Erasure, error) {
	id, err := ParseName(name)
	if err != nil {
		return Erasure{}, err
	}
	now := s.now().UTC()
	audit := s.audited(ctx, "Cancel", AuditCancel, now)
	var e Erasure
	remote := false
	err = s.db.Update(ctx, func(tx store.Tx) error {
		remote = false
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound(id)
		}
		e = r.Erasure
		switch {
		case r.State == StateCancelled:
			return auditOn(tx, audit, r, "unchanged")
		case r.State.Final():
			return &Error{Kind: KindFailedPrecondition, Reason: "ERASURE_FINAL",
				Message:  fmt.Sprintf("erasure is %s and can no longer be cancelled", r.State),
				Metadata: map[string]string{"state": r.State.String()}}
		case !localCancellable(r.State) && r.State != StateSubmitted:
			return &Error{Kind: KindFailedPrecondition, Reason: "DELETION_FINAL_AT_LIVEPERSON",
				Message:  fmt.Sprintf("erasure is %s: LivePerson has made its deletion final", r.State),
				Metadata: map[string]string{"state": r.State.String()}}
		}
		ts, err := s.targetsOf(tx, r)
		if err != nil {
			return err
		}
		if what := finalAtLivePerson(r, ts); what != "" {
			return &Error{Kind: KindFailedPrecondition, Reason: "DELETION_FINAL_AT_LIVEPERSON",
				Message:  fmt.Sprintf("LivePerson has made part of this erasure final (%s): it can no longer be cancelled", what),
				Metadata: map[string]string{"state": r.State.String()}}
		}
		if len(r.HeldBatches) > 0 {
			return &Error{Kind: KindFailedPrecondition, Reason: "DELETION_OUTCOME_UNKNOWN",
				Message: "a LivePerson deletion request holding this erasure may have been created; settle its held batch (SettleBatch) first"}
		}
		for _, t := range ts {
			if t.Batch != 0 && t.LPRequest == 0 {
				return &Error{Kind: KindUnavailable, Reason: "SUBMISSION_IN_FLIGHT",
					Message: "a LivePerson request holding this erasure is being created; try again in a moment"}
			}
			if t.LPRequest != 0 && t.Status == TargetSubmitted {
				remote = true
			}
		}
		if remote {
			return nil
		}
		prev := r.State
		r.State = StateCancelled
		r.Reason = reason
		if err := s.transition(tx, r, erasureChange{from: prev, now: now}); err != nil {
			return err
		}
		e = r.Erasure
		return auditOn(tx, audit, r, "")
	})
	if err != nil {
		return Erasure{}, s.storeError(err)
	}
	if remote {
		return s.cancelRemote(ctx, id, reason)
	}
	return e, nil
}

// finalAtLivePerson says what of an erasure LivePerson has made final, "" when nothing: a
// deletion request holding its records IN_PROGRESS or DONE, or a record deleted. An erasure
// still SCHEDULED for an open conversation may have its closed records deleted already.
func finalAtLivePerson(r *record, ts []Target) string {
	for _, q := range r.LPRequests {
		if q.Status == LPInProgress || q.Status == LPDone {
			return "a deletion request is " + q.Status
		}
	}
	if hasStatus(ts, TargetDone, TargetVerified) {
		return "records are deleted"
	}
	return ""
}

// ParseName returns the id in an erasure resource name, erasures/{id}.
func ParseName(name string) (string, error) {
	id, ok := strings.CutPrefix(name, NamePrefix)
	if !ok || id == "" || strings.ContainsAny(id, "/\x00") {
		return "", newError(KindInvalid, "INVALID_NAME", "name must look like erasures/{id}")
	}
	return id, nil
}

// storeError turns a storage failure into a service error; service errors and context errors pass
// through unchanged.
func (s *Service) storeError(err error) error {
	var se *Error
	switch {
	case err == nil, errors.As(err, &se), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, store.ErrClosed):
		return &Error{Kind: KindUnavailable, Reason: "SHUTTING_DOWN", Message: "the service is shutting down"}
	}
	s.log.Error("storage failure", "err", err)
	return &Error{Kind: KindUnavailable, Reason: "STORAGE_FAILURE", Message: "storage failure; try again later"}
}

package service

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/erasured/erasured/store"
)

// Plan is an erasure's deletion plan: every record found, by kind, with its status.
type Plan struct {
	Etag                     string
	Groups                   []PlanGroup
	OpenConversationsHeld    int
	LivePersonRequestsNeeded int
	IdentifierUnsearchable   bool
	Identifiers              []PlanIdentifier // the subject first, then its aliases
}

// PlanIdentifier is one identifier of the subject, by fingerprint only.
type PlanIdentifier struct {
	Kind                 SubjectKind
	Fingerprint          string
	PossiblyUnsearchable bool // Messaging Interactions may not find it; searched anyway
}

// PlanGroup is the records of one kind.
type PlanGroup struct {
	Kind    TargetKind
	Records []PlanRecord
}

// PlanRecord is one record in a plan.
type PlanRecord struct {
	ID          string // empty when the id is the subject's own identifier
	Fingerprint string // set instead of ID then
	Status    TargetStatus
	LPRequest int64
}

// Decision is an approver's decision on a MANUAL erasure's plan.
type Decision struct {
	Confirm  bool
	PlanEtag string // with Confirm: the etag of the plan reviewed
	Reject   bool
	Reason   string // with Reject
}

// ResolveResult is what Resolve returns.
type ResolveResult struct {
	Erasure *Erasure // nil for a preview
	Plan    Plan
}

// buildPlan groups targets by kind. The etag covers every record and status, so any change to
// the plan changes it.
func buildPlan(ts []Target, unsearchable bool) Plan {
	sorted := slices.Clone(ts)
	slices.SortFunc(sorted, func(a, b Target) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	p := Plan{IdentifierUnsearchable: unsearchable}
	h := sha256.New()
	needed := map[TargetKind]int{}
	for _, t := range sorted {
		if n := len(p.Groups); n == 0 || p.Groups[n-1].Kind != t.Kind {
			p.Groups = append(p.Groups, PlanGroup{Kind: t.Kind})
		}
		g := &p.Groups[len(p.Groups)-1]
		g.Records = append(g.Records, PlanRecord{ID: t.ID, Status: t.Status, LPRequest: t.LPRequest})
		fmt.Fprintf(h, "%d|%s|%d\n", t.Kind, t.ID, t.Status)
		switch t.Status {
		case TargetDeferredOpen:
			p.OpenConversationsHeld++
			needed[t.Kind]++
		case TargetFound, TargetQueued:
			needed[t.Kind]++
		}
	}
	for _, n := range needed {
		p.LivePersonRequestsNeeded += (n + maxBatchIDs - 1) / maxBatchIDs
	}
	p.Etag = hex.EncodeToString(h.Sum(nil))[:20]
	return p
}

// Resolve returns an erasure's plan and applies an approver's decision, if any.
func (s *Service) Resolve(ctx context.Context, name string, d *Decision) (ResolveResult, error) {
	id, err := ParseName(name)
	if err != nil {
		return ResolveResult{}, err
	}
	if d == nil {
		var res ResolveResult
		err := s.db.View(func(tx *store.Tx) error {
			r, err := getRecord(tx, id)
			if err != nil || r == nil {
				if r == nil && err == nil {
					return notFound(id)
				}
				return err
			}
			ts, err := s.targetsOf(tx, r)
			if err != nil {
				return err
			}
			e := r.Erasure
			res = ResolveResult{Erasure: &e, Plan: buildPlan(ts, r.IdentifierUnsearchable)}
			return nil
		})
		return res, s.storeError(err)
	}
	principal := Principal(ctx)
	now := s.now().UTC()
	var res ResolveResult
	err = s.db.Update(ctx, func(tx *store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound(id)
		}
		if r.State != StateAwaitingConfirmation {
			return &Error{Kind: KindFailedPrecondition, Reason: "NOT_AWAITING_CONFIRMATION",
				Message:  fmt.Sprintf("erasure is %s: only an erasure awaiting confirmation takes a decision", r.State),
				Metadata: map[string]string{"state": r.State.String()}}
		}
		if principal == r.SubmittedBy && principal != "anonymous" {
			return &Error{Kind: KindPermissionDenied, Reason: "SELF_APPROVAL",
				Message: "the principal that submitted an erasure cannot decide on its plan"}
		}
		ts, err := s.targetsOf(tx, r)
		if err != nil {
			return err
		}
		plan := buildPlan(ts, r.IdentifierUnsearchable)
		prev := r.State
		switch {
		case d.Confirm:
			if d.PlanEtag != plan.Etag {
				return &Error{Kind: KindAborted, Reason: "PLAN_CHANGED",
					Message:  "the plan changed since it was reviewed: review the new plan and confirm again",
					Metadata: map[string]string{"plan_etag": plan.Etag}}
			}
			p := s.currentPipeline()
			if p == nil {
				return &Error{Kind: KindUnavailable, Reason: "NO_PIPELINE", Message: "the pipeline is not running"}
			}
			r.Confirmed = true
			if err := p.scheduleTargets(tx, r, ts, now); err != nil {
				return err
			}
		case d.Reject:
			r.State = StateRejected
			r.Reason = d.Reason
		}
		if err := s.save(tx, r, ts, prev, now); err != nil {
			return err
		}
		e := r.Erasure
		res = ResolveResult{Erasure: &e, Plan: buildPlan(ts, r.IdentifierUnsearchable)}
		return nil
	})
	if err == nil {
		s.wakePipeline()
	}
	return res, s.storeError(err)
}

// Preview searches LivePerson for a subject now and returns the plan, storing nothing.
func (s *Service) Preview(ctx context.Context, account string, subj Subject, channels []Channel) (Plan, error) {
	if err := s.checkAccount(account); err != nil {
		return Plan{}, err
	}
	p := s.currentPipeline()
	if p == nil {
		return Plan{}, &Error{Kind: KindUnavailable, Reason: "NO_LIVEPERSON", Message: "no LivePerson connection is configured"}
	}
	res, err := resolver{lp: p.lp, now: s.now()}.resolve(ctx, account, subj, normalizeChannels(channels), false)
	if err != nil {
		return Plan{}, &Error{Kind: KindUnavailable, Reason: "LIVEPERSON_UNAVAILABLE", Message: describe(err)}
	}
	return buildPlan(res.targets, res.unsearchable), nil
}

// isCanceled reports whether LivePerson shows the request CANCELED: a cancel whose answer was
// lost, or retried after one, has done its work.
func (p *Pipeline) isCanceled(ctx context.Context, account string, id int64) bool {
	d, err := p.lp.GetDeletion(ctx, account, id)
	return err == nil && d.Status == LPCanceled
}

func (s *Service) currentPipeline() *Pipeline {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pipeline
}

// cancelRemote cancels an erasure whose records are in LivePerson requests that are all still
// NOT_STARTED: it marks the erasure, cancels each request, and requeues the other erasures'
// records of those requests (a shared request costs one more quota unit to resend).
func (s *Service) cancelRemote(ctx context.Context, id, reason string) (Erasure, error) {
	p := s.currentPipeline()
	if p == nil {
		return Erasure{}, &Error{Kind: KindUnavailable, Reason: "NO_PIPELINE", Message: "the pipeline is not running"}
	}
	var lpIDs []int64
	var batches []uint64
	var account string
	_, err := s.update(ctx, id, func(r *record) error {
		lpIDs, batches, account = nil, nil, r.AccountID
		for _, q := range r.LPRequests {
			switch q.Status {
			case LPNotStarted:
				lpIDs = append(lpIDs, q.ID)
			case LPCanceled:
			default:
				return &Error{Kind: KindFailedPrecondition, Reason: "DELETION_FINAL_AT_LIVEPERSON",
					Message:  fmt.Sprintf("a LivePerson request holding this erasure is %s: it can no longer be cancelled", q.Status),
					Metadata: map[string]string{"state": r.State.String()}}
			}
		}
		r.CancelRequested = true
		return nil
	})
	if err != nil {
		return Erasure{}, err
	}
	err = s.db.View(func(tx *store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil || r == nil {
			return err
		}
		ts, err := s.targetsOf(tx, r)
		for _, t := range ts {
			if t.Batch != 0 && !slices.Contains(batches, t.Batch) {
				batches = append(batches, t.Batch)
			}
		}
		return err
	})
	if err != nil {
		return Erasure{}, s.storeError(err)
	}
	// LivePerson is called outside any transaction, under the RPC's context.
	for _, lpID := range lpIDs {
		if _, err := p.lp.CancelDeletion(ctx, account, lpID); err != nil && !p.isCanceled(ctx, account, lpID) {
			s.update(context.WithoutCancel(ctx), id, func(r *record) error { r.CancelRequested = false; return nil })
			return Erasure{}, &Error{Kind: KindUnavailable, Reason: "LIVEPERSON_UNAVAILABLE",
				Message: "could not cancel at LivePerson (" + describe(err) + "); nothing changed here, try again"}
		}
	}
	now := s.now().UTC()
	var e Erasure
	err = s.db.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		for _, bid := range batches {
			b, err := getBatch(tx, bid)
			if err != nil || b == nil {
				return err
			}
			if b.State == LPNotStarted {
				b.State = LPCanceled
				if err := p.applyBatchStatus(tx, b, now); err != nil {
					return err
				}
				if err := p.pollNext(tx, b, time.Time{}); err != nil {
					return err
				}
				if err := putBatch(tx, b); err != nil {
					return err
				}
			}
		}
		r, err := getRecord(tx, id)
		if err != nil || r == nil {
			return err
		}
		prev := r.State
		r.State = StateCancelled
		r.Reason = reason
		r.BlockedOn = BlockedNone
		for i := range r.LPRequests {
			if slices.Contains(lpIDs, r.LPRequests[i].ID) {
				r.LPRequests[i].Status = LPCanceled
			}
		}
		if err := s.save(tx, r, nil, prev, now); err != nil {
			return err
		}
		e = r.Erasure
		return nil
	})
	s.wakePipeline()
	return e, s.storeError(err)
}

package service

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// Target is one LivePerson record to erase (see model.Target).
type Target = model.Target

// Plan is an erasure's deletion plan: every record found, by kind, with its status.
type Plan struct {
	Etag                     string
	Groups                   []PlanGroup
	OpenConversationsHeld    int
	LivePersonRequestsNeeded int
	// IdentifierUnsearchable: messaging is searched, some identifier may be unsearchable there,
	// and no searchable identifier led to the person's consumer, so conversations that carry
	// only the unsearchable ones may not be in the plan.
	IdentifierUnsearchable bool
	Identifiers            []PlanIdentifier // the subject first, then its aliases
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
	Status      TargetStatus
	LPRequest   int64
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

// buildPlan groups targets by kind and lists the subject's identifiers (refs: the subject
// first) by public fingerprint. A consumer record whose id is one of the subject's own consumer
// ids is shown by its fingerprint instead: a plan never returns the subject's identifiers.
// fpKey gives the key of refs' fingerprints, asked for only then. The etag is a keyed hash of
// every record, status and identifier, so any change to the plan changes it.
func (s *Service) buildPlan(account string, ts []Target, refs []identRef, channels []Channel, unsearchable bool, fpKey func() ([]byte, error)) (Plan, error) {
	sorted := slices.Clone(ts)
	slices.SortFunc(sorted, func(a, b Target) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	p := Plan{IdentifierUnsearchable: unsearchable}
	h := s.keys.planMAC()
	messaging := slices.Contains(channels, ChannelMessaging)
	var consumerFPs []string
	for _, ref := range refs {
		pi := PlanIdentifier{Kind: ref.Kind, Fingerprint: ref.Fingerprint, PossiblyUnsearchable: messaging && ref.Digits}
		p.Identifiers = append(p.Identifiers, pi)
		fmt.Fprintf(h, "id|%d|%s|%t\n", pi.Kind, pi.Fingerprint, pi.PossiblyUnsearchable)
		if ref.Kind == SubjectConsumerID {
			consumerFPs = append(consumerFPs, ref.Fingerprint)
		}
	}
	fmt.Fprintf(h, "unsearchable|%t\n", unsearchable)
	needed := map[TargetKind]int{}
	var pk []byte
	for _, t := range sorted {
		if n := len(p.Groups); n == 0 || p.Groups[n-1].Kind != t.Kind {
			p.Groups = append(p.Groups, PlanGroup{Kind: t.Kind})
		}
		g := &p.Groups[len(p.Groups)-1]
		rec := PlanRecord{ID: t.ID, Status: t.Status, LPRequest: t.LPRequest}
		if t.Kind == KindConsumer && len(consumerFPs) > 0 {
			if pk == nil {
				var err error
				if pk, err = fpKey(); err != nil {
					return Plan{}, err
				}
			}
			if fp := fingerprintWith(pk, account, Subject{Kind: SubjectConsumerID, Value: t.ID}); slices.Contains(consumerFPs, fp) {
				rec.ID, rec.Fingerprint = "", fp
			}
		}
		g.Records = append(g.Records, rec)
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
		p.LivePersonRequestsNeeded += (n + pipeline.MaxBatchIDs - 1) / pipeline.MaxBatchIDs
	}
	p.Etag = hex.EncodeToString(h.Sum(nil))[:20]
	return p, nil
}

// planOf is the plan of a stored erasure, inside a transaction.
func (s *Service) planOf(tx store.Tx, r *record, ts []Target) (Plan, error) {
	return s.buildPlan(r.AccountID, ts, identRefs(r), r.Channels, r.IdentifierUnsearchable, func() ([]byte, error) {
		key, err := s.dataKeyOf(tx, r)
		if err != nil {
			return nil, err
		}
		return publicFPKey(key), nil
	})
}

// Resolve returns an erasure's plan and applies an approver's decision, if any.
func (s *Service) Resolve(ctx context.Context, name string, d *Decision) (ResolveResult, error) {
	id, err := ParseName(name)
	if err != nil {
		return ResolveResult{}, err
	}
	if d == nil {
		var res ResolveResult
		err := s.db.View(func(tx store.Tx) error {
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
			plan, err := s.planOf(tx, r, ts)
			res = ResolveResult{Erasure: &e, Plan: plan}
			return err
		})
		return res, s.storeError(err)
	}
	principal := Principal(ctx)
	now := s.now().UTC()
	audit := s.audited(ctx, "Resolve", AuditConfirm, now)
	if d.Reject {
		audit.Action = AuditReject
	}
	var res ResolveResult
	err = s.db.Update(ctx, func(tx store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound(id)
		}
		// An erasure waiting because its identifiers may be unsearchable takes a confirmation
		// too: the approver accepts the plan as it is.
		unsearchable := d.Confirm && r.BlockedOn == BlockedIdentifierUnsearchable && !r.State.Final()
		if r.State != StateAwaitingConfirmation && !unsearchable {
			return &Error{Kind: KindFailedPrecondition, Reason: "NOT_AWAITING_CONFIRMATION",
				Message:  fmt.Sprintf("erasure is %s: only an erasure awaiting confirmation takes a decision", r.State),
				Metadata: map[string]string{"state": r.State.String()}}
		}
		if principal != "anonymous" {
			asked, err := requestedBy(tx, r, principal)
			if err != nil {
				return err
			}
			if asked {
				return &Error{Kind: KindPermissionDenied, Reason: "SELF_APPROVAL",
					Message: "a principal that submitted an erasure, or joined it, cannot decide on its plan"}
			}
		}
		ts, err := s.targetsOf(tx, r)
		if err != nil {
			return err
		}
		plan, err := s.planOf(tx, r, ts)
		if err != nil {
			return err
		}
		prev := r.State
		switch {
		case d.Confirm && d.PlanEtag != plan.Etag:
			return &Error{Kind: KindAborted, Reason: "PLAN_CHANGED",
				Message:  "the plan changed since it was reviewed: review the new plan and confirm again",
				Metadata: map[string]string{"plan_etag": plan.Etag}}
		case unsearchable:
			// The final sweep has run and found nothing new: the erasure completes with the
			// plan as it is, and its receipt names the channel it could not search.
			r.UnsearchableAccepted = true
			r.Swept = true
			r.State = StateCompleted
			if err := s.complete(tx, r, ts, now); err != nil {
				return err
			}
		case d.Confirm:
			// The decision and the scheduling it implies are store writes: they need no
			// pipeline, which finds the queued targets whenever it runs.
			r.Confirmed = true
			if err := s.changes().ScheduleTargets(tx, r, ts, now); err != nil {
				return err
			}
		case d.Reject:
			r.State = StateRejected
			r.Reason = d.Reason
		}
		if err := s.transition(tx, r, erasureChange{from: prev, targets: ts, now: now}); err != nil {
			return err
		}
		e := r.Erasure
		if res.Plan, err = s.planOf(tx, r, ts); err != nil {
			return err
		}
		res.Erasure = &e
		return auditOn(tx, audit, r, "")
	})
	if err == nil {
		s.wakePipeline()
	}
	return res, s.storeError(err)
}

// Preview searches LivePerson for a subject (and its aliases) now and returns the plan, storing
// nothing.
func (s *Service) Preview(ctx context.Context, account string, subj Subject, channels []Channel, aliases ...Subject) (Plan, error) {
	if err := s.checkAccount(account); err != nil {
		return Plan{}, err
	}
	if err := checkAliases(subj, aliases); err != nil {
		return Plan{}, err
	}
	if subj.Kind != SubjectTargets {
		if err := checkIdentifier(subjectField(subj.Kind), subj); err != nil {
			return Plan{}, err
		}
	}
	for i, a := range aliases {
		if err := checkIdentifier(fmt.Sprintf("aliases[%d]", i), a); err != nil {
			return Plan{}, err
		}
	}
	lp := s.livePerson()
	if lp == nil {
		return Plan{}, &Error{Kind: KindUnavailable, Reason: "NO_LIVEPERSON", Message: "no LivePerson connection is configured"}
	}
	ids := append([]Subject{subj}, aliases...)
	chans := normalizeChannels(channels)
	now := s.now()
	res, err := pipeline.Search(ctx, lp, now, account, ids, chans, false)
	if err != nil {
		s.reportAuth(account, "preview", err)
		return Plan{}, &Error{Kind: KindUnavailable, Reason: "LIVEPERSON_UNAVAILABLE", Message: describe(err)}
	}
	// A preview stores nothing but its audit entry: it looked up personal data.
	e := s.audited(ctx, "Resolve", AuditPreview, now)
	e.Account = account
	if err := s.AppendAudit(ctx, e); err != nil {
		return Plan{}, err
	}
	// No erasure, so no data key: the preview's fingerprints are under a key of its own, made
	// for it and forgotten, so that they match nothing stored or shown elsewhere.
	pk, err := newSecret()
	if err != nil {
		return Plan{}, err
	}
	return s.buildPlan(account, res.Targets, publicRefs(pk, account, ids), chans, res.Unsearchable,
		func() ([]byte, error) { return pk, nil })
}

// livePerson is the LivePerson port a pipeline attached (NewPipeline), nil before: the
// operations that call LivePerson themselves (Preview, a remote Cancel, SettleBatch) need it.
func (s *Service) livePerson() LivePerson {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lp
}

// cancelRemote cancels an erasure whose records are in LivePerson requests that are all still
// NOT_STARTED: it marks the erasure, cancels each request, and requeues the other erasures'
// records of those requests (a shared request costs one more quota unit to resend).
func (s *Service) cancelRemote(ctx context.Context, id, reason string) (Erasure, error) {
	lp := s.livePerson()
	if lp == nil {
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
	err = s.db.View(func(tx store.Tx) error {
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
		_, err := lp.CancelDeletion(ctx, account, lpID)
		if err == nil {
			s.log.InfoContext(ctx, "LivePerson deletion request cancelled", "erasure", id, "account", account, "lp_request", lpID)
			continue
		}
		s.reportAuth(account, "cancel", err)
		// A cancel whose answer was lost, or retried after one, has done its work; a request that
		// became final meanwhile cannot be cancelled any more. (A request this loop did cancel
		// before failing shows CANCELED at its next poll, and its records are queued again.)
		d, gerr := lp.GetDeletion(ctx, account, lpID)
		if gerr == nil && d.Status == LPCanceled {
			s.log.InfoContext(ctx, "LivePerson deletion request cancelled", "erasure", id, "account", account, "lp_request", lpID)
			continue
		}
		s.update(context.WithoutCancel(ctx), id, func(r *record) error { r.CancelRequested = false; return nil })
		if gerr == nil && (d.Status == LPInProgress || d.Status == LPDone) {
			return Erasure{}, &Error{Kind: KindFailedPrecondition, Reason: "DELETION_FINAL_AT_LIVEPERSON",
				Message: fmt.Sprintf("a LivePerson request holding this erasure is %s: it can no longer be cancelled", d.Status)}
		}
		return Erasure{}, &Error{Kind: KindUnavailable, Reason: "LIVEPERSON_UNAVAILABLE",
			Message: "could not cancel at LivePerson (" + describe(err) + "); nothing changed here, try again"}
	}
	now := s.now().UTC()
	var e Erasure
	err = s.db.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
		for _, bid := range batches {
			b, err := pipeline.GetBatch(tx, bid)
			if err != nil || b == nil {
				return err
			}
			if b.State == LPNotStarted {
				b.State = LPCanceled
				if err := s.changes().ApplyBatchStatus(tx, b, now); err != nil {
					return err
				}
				if err := pipeline.PollNext(tx, b, time.Time{}); err != nil {
					return err
				}
				if err := pipeline.PutBatch(tx, b); err != nil {
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
		if err := s.transition(tx, r, erasureChange{from: prev, now: now}); err != nil {
			return err
		}
		e = r.Erasure
		return auditOn(tx, s.audited(ctx, "Cancel", AuditCancel, now), r, "")
	})
	s.wakePipeline()
	return e, s.storeError(err)
}

// requestedBy reports whether principal asked for erasure r: it submitted r, or one of its
// Submits was answered with r (deduplicated onto it, adding identifiers or not, or a retry of
// a Submit that did). Such a principal may not decide on r's plan: identifiers a joiner adds
// bring their records into the plan as surely as the submitter's do, so a joiner confirming
// would approve a deletion of its own choosing. The audit trail is the record of those
// Submits: each successful one is indexed under its erasure in the transaction of its change,
// and the trail is kept for as long as the erasure.
func requestedBy(tx store.Tx, r *record, principal string) (bool, error) {
	if principal == r.SubmittedBy {
		return true, nil
	}
	found := false
	err := scanAuditOf(tx, r.ID, 0, func(e AuditEntry) bool {
		found = e.Principal == principal && e.Action == AuditSubmit && e.Outcome == AuditOK
		return !found
	})
	return found, err
}

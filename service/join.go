package service

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/erasured/erasured/store"
)

// join adds to r, an open erasure that req was deduplicated onto, the identifiers of req that r
// does not hold yet: they are sealed with r's subject, fingerprinted, and indexed on commit, and
// the change is saved with its event like any other. An erasure that has still to search, or
// that waits because its identifiers may be unsearchable, is woken so that the new identifiers
// are searched now; later states search them in their final sweep, which searches every
// identifier. Nothing changes when req brings nothing new.
//
// A MANUAL erasure deletes only what an approver reviewed, and new identifiers may find new
// records. Before its plan is confirmed, a join sends it back to RESOLVING with any
// confirmation cleared, so the approver reviews the plan the new identifiers make (its etag
// changes). Once its plan is confirmed, a join is refused: the new identifiers belong in an
// erasure of their own, submitted once this one has ended.
//
// Identifiers are compared by their root fingerprints (aliasRefs holds the aliases'), which r
// keeps sealed in its index; r lists the new ones by their public fingerprints.
//
// It runs inside Submit's transaction, so it may run more than once: it only changes r. It
// returns r's data key.
func (s *Service) join(tx store.Tx, r *record, req SubmitRequest, aliasRefs []identRef, now time.Time) ([]byte, error) {
	sec, key, err := s.indexOf(tx, r)
	if err != nil {
		return nil, err
	}
	reqRefs := append(s.refsOf(req.AccountID, []Subject{req.Subject}), aliasRefs...)
	reqIDs := append([]Subject{req.Subject}, req.Aliases...)
	var added []identRef
	var values []Subject
	for i, ref := range reqRefs {
		if !slices.Contains(sec.fps, ref.Fingerprint) {
			added = append(added, ref)
			values = append(values, reqIDs[i])
		}
	}
	if len(added) == 0 {
		return key, nil
	}
	manual := r.Confirmation == ConfirmationManual
	review := manual && (r.State == StateReceived || r.State == StateResolving || r.State == StateAwaitingConfirmation)
	if manual && !review {
		return nil, &Error{Kind: KindFailedPrecondition, Reason: "PLAN_ALREADY_APPROVED",
			Message: "the open erasure of this subject has an approved plan that the new identifiers are not part of: " +
				"submit the new identifiers once this erasure has ended",
			Metadata: map[string]string{"erasure": r.Name(), "state": r.State.String()}}
	}
	if n := len(r.Aliases) + len(added); n > maxAliases {
		return nil, &Error{Kind: KindFailedPrecondition, Reason: "TOO_MANY_ALIASES",
			Message:  fmt.Sprintf("the open erasure of this subject would hold %d aliases; at most %d are allowed", n, maxAliases),
			Metadata: map[string]string{"erasure": r.Name(), "alias_count": strconv.Itoa(int(r.AliasCount))}}
	}
	sub, err := s.unsealSubject(tx, r)
	if err != nil {
		return nil, err
	}
	sub.Aliases = append(sub.Aliases, values...)
	if r.Sealed, err = sealSubject(key, r.ID, sub); err != nil {
		return nil, err
	}
	for _, ref := range added {
		sec.fps = append(sec.fps, ref.Fingerprint)
	}
	if r.Index, err = sealIndex(key, r.ID, sec); err != nil {
		return nil, err
	}
	r.Aliases = append(slices.Clone(r.Aliases), publicRefs(publicFPKey(key), r.AccountID, values)...)
	r.AliasCount = int32(len(r.Aliases))
	// The new identifiers are not searched yet: one that can be searched may yet lead to the
	// person's consumer, which the next search tells.
	r.IdentifierUnsearchable = identifierUnsearchable(identRefs(r), r.Channels, r.ConsumerFound || searchable(added))
	prev := r.State
	if review {
		r.Confirmed = false
		if r.State == StateAwaitingConfirmation {
			r.State = StateResolving
		}
	}
	if r.State == StateReceived || r.State == StateResolving || r.BlockedOn == BlockedIdentifierUnsearchable {
		switch r.BlockedOn {
		case BlockedIdentifierUnsearchable, BlockedSearchLag, BlockedConfirmation:
			r.BlockedOn = BlockedNone
		}
		if err := setNext(tx, r, now); err != nil {
			return nil, err
		}
	}
	if err := s.transition(tx, r, erasureChange{from: prev, now: now}); err != nil {
		return nil, err
	}
	return key, s.indexJoined(tx, r, added)
}

package service

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// SubmitRequest is a request to erase one subject's data in one LivePerson account.
type SubmitRequest struct {
	RequestID            string
	AccountID            string
	Subject              Subject
	Channels             []Channel // empty: chat and messaging
	EraseConsumerProfile bool
	// ReceivedTime is when the brand received the subject's request. Unset (zero, and
	// ReceivedTimeSet false): now. A time that is set is checked, never taken for "now", even
	// the zero time (year 1).
	ReceivedTime    time.Time
	ReceivedTimeSet bool
	Confirmation    Confirmation
	ExternalRef     string
	// Aliases are further identifiers of the same person (at most 10, none of kind
	// SubjectTargets). Personal data, like Subject.
	Aliases []Subject
}

// SubmitResult is what Submit returns.
type SubmitResult struct {
	Erasure Erasure
	// Deduplicated is true when an open erasure for the same subject and account existed and is
	// returned instead of a new one.
	Deduplicated bool
}

// clockSkew is how far in the future a received_time may lie before it is refused.
const clockSkew = 5 * time.Minute

// Submit stores a new erasure, or returns the one this request_id or this subject already has.
// It returns once the outcome is durably committed.
func (s *Service) Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error) {
	now := s.now().UTC()
	if err := checkSubmit(req, now); err != nil {
		return SubmitResult{}, err
	}
	if err := s.checkAccount(req.AccountID); err != nil {
		return SubmitResult{}, err
	}
	hash, err := s.payloadHash(req)
	if err != nil {
		return SubmitResult{}, err
	}
	fp := s.keys.Fingerprint(req.AccountID, req.Subject)
	sks := []subKey{subjectKey(req.AccountID, fp)}
	var refs []identRef // the aliases'
	if len(req.Aliases) > 0 {
		refs = s.refsOf(req.AccountID, req.Aliases)
		sks = append(sks, subjectKeys(req.AccountID, refs)...)
	}
	prior, known, open, release, err := s.index.claim(ctx, req.RequestID, sks)
	if err != nil {
		return SubmitResult{}, s.storeError(err)
	}
	if release != nil { // nil when memory knew the request_id
		defer release()
	}
	shared := s.cfg.Shared
	if known && !shared {
		// The open erasure it created: a retry changes nothing, it is answered from a read
		// and only its audit entry is committed.
		res, err := s.replayOpen(req.RequestID, prior, hash)
		if err != nil {
			return SubmitResult{}, err
		}
		return res, s.auditRetry(ctx, req, res, now)
	}
	if known || !shared {
		// Memory knows the request_id (shared: the store's entry answers, shared.go), or it
		// does not and, in a store of one process, the store's entry of a final erasure or a
		// deduplicated Submit may. Only an entry missing from the store sends this Submit on
		// to its transaction.
		res, found, err := s.replayStored(req.RequestID, hash)
		if err != nil {
			return SubmitResult{}, err
		}
		if found {
			return res, s.auditRetry(ctx, req, res, now)
		}
	}
	if !shared { // a shared store lists the open erasures whatever their keys: no block
		if n := s.index.blocked(req.AccountID); n > 0 {
			return SubmitResult{}, &Error{Kind: KindUnavailable, Reason: "DATA_KEYS_UNREADABLE",
				Message: fmt.Sprintf("%d open erasures of this account have data keys that do not open (is the key directory the right one?): "+
					"a new request might duplicate one of them, so none is accepted until they end or their keys are back", n)}
		}
	}

	// Everything random or costly is prepared outside the transaction function, which the store
	// may run more than once.
	id, err := uuid.NewV7()
	if err != nil {
		return SubmitResult{}, err
	}
	eid := id.String()
	sec := indexSecrets{hash: hash, hasHash: true, fps: []string{fp}}
	for _, r := range refs {
		sec.fps = append(sec.fps, r.Fingerprint)
	}
	fresh, plainKey, err := s.sealedRecord(ctx, eid, req, sec, now)
	if err != nil {
		return SubmitResult{}, err
	}
	change, err := encodeChange(fresh, StateUnspecified, nil, now)
	if err != nil {
		return SubmitResult{}, err
	}
	var sealedHash []byte // the store's copy of the request hash (shared.go)
	if shared {
		if sealedHash, err = sealRequestHash(plainKey, eid, req.RequestID, hash); err != nil {
			return SubmitResult{}, err
		}
	}
	var dupKey string
	if len(open) > 0 || shared {
		dup, err := uuid.NewV7()
		if err != nil {
			return SubmitResult{}, err
		}
		dupKey = dup.String()
	}

	audit := s.audited(ctx, "Submit", AuditSubmit, now)
	audit.Account = req.AccountID
	var res SubmitResult
	var retried bool
	err = s.db.Update(ctx, func(tx store.Tx) error {
		candidates := open
		retried = false
		if shared {
			// The store decides: this request_id's entry, then the open erasures of the
			// identifiers, as they are at this transaction (shared.go).
			e, err := getStoredRequest(tx, req.RequestID)
			if err != nil {
				return err
			}
			if e != nil {
				if res, err = s.answerStored(tx, *e, hash); err != nil {
					return err
				}
				retried = true
				return appendAudit(tx, retryEntry(audit, req, res))
			}
			if candidates, err = storedOpen(tx, req.AccountID, sec.fps); err != nil {
				return err
			}
		}
		for _, id := range candidates {
			// The index's answer is a hint: the erasure may have ended since. Its stored state
			// decides, in this transaction.
			r, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			if r == nil || r.State.Final() {
				if shared { // listed in the store but ended: no longer
					if err := storeClosed(tx, id); err != nil {
						return err
					}
				}
				continue
			}
			key, err := s.join(tx, r, req, refs, now)
			if err != nil {
				return err
			}
			res = SubmitResult{Erasure: r.Erasure, Deduplicated: true}
			dedup := audit
			dedup.Erasure, dedup.Detail = r.ID, "deduplicated"
			if err := appendAudit(tx, dedup); err != nil {
				return err
			}
			return s.putRequest(tx, dupKey, requestEntry{RequestID: req.RequestID, ErasureID: r.ID,
				Deduplicated: true}, hash, key)
		}
		if !s.keys.committableIn(tx, fresh.DataKey) {
			// The period key that wrapped the data key is about to be destroyed: this Submit
			// waited long for its transaction (keydestroy.go). Wrap it again by the current key.
			if fresh.DataKey, err = s.keys.wrapKey(eid, plainKey); err != nil {
				return err
			}
			if change, err = encodeChange(fresh, StateUnspecified, nil, now); err != nil {
				return err
			}
		}
		if err := pipeline.Reschedule(tx, taskErasure+eid, time.Time{}, now); err != nil {
			return err
		}
		if err := s.transition(tx, fresh, erasureChange{from: StateUnspecified, now: now, encoded: &change}); err != nil {
			return err
		}
		res = SubmitResult{Erasure: fresh.Erasure}
		created := audit
		created.Erasure = eid
		if err := appendAudit(tx, created); err != nil {
			return err
		}
		return s.indexCreated(tx, fresh, sec, sealedHash)
	})
	if err != nil {
		return SubmitResult{}, s.storeError(err)
	}
	if !retried {
		s.wakePipeline()
	}
	return res, nil
}

// retryEntry is the audit entry of a Submit answered as a retry of the erasure in res; e is the
// call's entry.
func retryEntry(e AuditEntry, req SubmitRequest, res SubmitResult) AuditEntry {
	e.Erasure, e.Account, e.Detail = res.Erasure.ID, req.AccountID, "retry"
	return e
}

// auditRetry commits the audit entry of a Submit answered as a retry from a read: a retry
// changes nothing else.
func (s *Service) auditRetry(ctx context.Context, req SubmitRequest, res SubmitResult, now time.Time) error {
	return s.AppendAudit(ctx, retryEntry(s.audited(ctx, "Submit", AuditSubmit, now), req, res))
}

// checkAccount refuses an account this server has no LivePerson configuration for.
func (s *Service) checkAccount(account string) error {
	if len(s.cfg.Accounts) > 0 && !slices.Contains(s.cfg.Accounts, account) {
		return &Error{Kind: KindInvalid, Reason: "ACCOUNT_NOT_CONFIGURED",
			Message:  "account_id is not an account this server is configured for",
			Metadata: map[string]string{"account_id": account}}
	}
	return nil
}

// sealedRecord builds the stored form of a new erasure, not yet stored, with a fresh data key:
// its subject and aliases, and its index secrets, sealed with the key; its fingerprints the
// public ones. It returns the data key in the clear too.
func (s *Service) sealedRecord(ctx context.Context, eid string, req SubmitRequest, sec indexSecrets, now time.Time) (*record, []byte, error) {
	dk, err := s.keys.newDataKey(eid)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := sealSubject(dk.plain, eid, sealedSubject{Subject: req.Subject, Aliases: req.Aliases})
	if err != nil {
		return nil, nil, err
	}
	index, err := sealIndex(dk.plain, eid, sec)
	if err != nil {
		return nil, nil, err
	}
	pk := publicFPKey(dk.plain)
	r := s.newRecord(ctx, eid, req, fingerprintWith(pk, req.AccountID, req.Subject), now)
	if len(req.Aliases) > 0 {
		r.Aliases = publicRefs(pk, req.AccountID, req.Aliases)
		r.AliasCount = int32(len(r.Aliases))
	}
	// Before any search, a searchable identifier may yet lead to the person's consumer: only
	// the search says whether it did.
	r.IdentifierUnsearchable = identifierUnsearchable(identRefs(r), r.Channels, searchable(identRefs(r)))
	r.Sealed, r.Index, r.DataKey = sealed, index, dk.wrapped
	r.NextAttemptTime = now // the pipeline's first step is due at once
	return r, dk.plain, nil
}

// replayOpen answers a Submit whose request_id created the open erasure id (memory says so):
// the same erasure if the payload is the same, a conflict if it is not. The record decides, as
// it holds the request_id and, sealed, the hash (answerStored); the erasure may have ended since.
func (s *Service) replayOpen(requestID string, id uuid.UUID, hash [32]byte) (SubmitResult, error) {
	var res SubmitResult
	err := s.db.View(func(tx store.Tx) error {
		var err error
		res, err = s.answerStored(tx, requestEntry{RequestID: requestID, ErasureID: id.String()}, hash)
		return err
	})
	return res, s.storeError(err)
}

// checkReplay refuses a Submit whose request_id produced prior if its payload hash is another
// (REQUEST_ID_REUSED), or unknown (a storage failure, for storeError).
func checkReplay(prior requestRef, hash [32]byte) error {
	if prior.unreadable {
		return fmt.Errorf("the data key of erasure %s does not unwrap: its request hash is unknown", prior.erasure)
	}
	if hash != prior.hash {
		return &Error{Kind: KindConflict, Reason: "REQUEST_ID_REUSED",
			Message:  "request_id was already used with a different payload",
			Metadata: map[string]string{"erasure": NamePrefix + prior.erasure.String()}}
	}
	return nil
}

// newRecord builds the stored form of a new erasure (its revision is set when it is stored).
func (s *Service) newRecord(ctx context.Context, id string, req SubmitRequest, fp string, now time.Time) *record {
	received := req.ReceivedTime.UTC()
	if req.ReceivedTime.IsZero() {
		received = now
	}
	conf := req.Confirmation
	if conf == ConfirmationUnspecified {
		conf = s.cfg.DefaultConfirmation
	}
	due := AddMonth(received)
	r := &record{Private: private{SubjectDigits: digitsOnly(req.Subject)}, Erasure: Erasure{
		ID:                   id,
		RequestID:            req.RequestID,
		AccountID:            req.AccountID,
		SubjectKind:          req.Subject.Kind,
		Fingerprint:          fp,
		Channels:             normalizeChannels(req.Channels),
		EraseConsumerProfile: req.EraseConsumerProfile,
		Confirmation:         conf,
		ExternalRef:          req.ExternalRef,
		State:                StateReceived,
		ReceivedTime:         received,
		CreateTime:           now,
		UpdateTime:           now,
		DueTime:              due,
		AtRisk:               now.Add(s.cfg.CancelWindow + s.cfg.DeletionWindow).After(due),
		SubmittedBy:          Principal(ctx),
	}}
	if r.AtRisk {
		r.AtRiskTime = now // at risk from the start: the request came late
	}
	return r
}

// payloadHash is the keyed hash of everything a Submit asks for, as the caller gave it (so a
// retry that again leaves received_time unset matches).
func (s *Service) payloadHash(req SubmitRequest) ([32]byte, error) {
	channels := slices.Clone(req.Channels)
	slices.Sort(channels)
	// Aliases in any order are the same request. Without aliases the encoding is the one used
	// before they existed, so that requests accepted then still match their retries.
	aliases := slices.Clone(req.Aliases)
	slices.SortFunc(aliases, func(a, b Subject) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Value, b.Value)) })
	canonical, err := json.Marshal(struct {
		Account  string
		Subject  Subject
		Channels []Channel
		Profile  bool
		Received int64
		Conf     Confirmation
		Ref      string
		Aliases  []Subject `json:",omitempty"`
	}{req.AccountID, req.Subject, channels, req.EraseConsumerProfile, req.ReceivedTime.UnixNano(), req.Confirmation, req.ExternalRef, aliases})
	if err != nil {
		return [32]byte{}, err
	}
	if req.ReceivedTime.IsZero() {
		// UnixNano of the zero time is not defined; make the "unset" case explicit.
		canonical = append(canonical, "|unset"...)
	}
	return s.keys.requestHash(canonical), nil
}

// gdprStart is when the GDPR began to apply: no request under it was received before.
var gdprStart = time.Date(2018, 5, 25, 0, 0, 0, 0, time.UTC)

// checkSubmit enforces the rules the API schema cannot express, and again, in case a caller
// bypasses the schema, those on identifiers that could never match a record. Each error names
// the field at fault, never its value.
func checkSubmit(req SubmitRequest, now time.Time) error {
	switch {
	case req.RequestID == "":
		return fieldError("request_id", "is required")
	case req.AccountID == "":
		return fieldError("account_id", "is required")
	case req.Subject.Kind == SubjectUnspecified:
		return fieldError("subject", "is required")
	case req.Subject.Kind == SubjectTargets && len(req.Subject.ConversationIDs)+len(req.Subject.EngagementIDs) == 0:
		return fieldError("subject.targets", "names no record")
	}
	if req.ReceivedTimeSet || !req.ReceivedTime.IsZero() {
		switch {
		case req.ReceivedTime.Before(gdprStart):
			return fieldError("received_time", "is before 2018-05-25, when the GDPR began to apply")
		case req.ReceivedTime.After(now.Add(clockSkew)):
			return fieldError("received_time", "is in the future")
		}
	}
	if req.Subject.Kind != SubjectTargets {
		if err := checkIdentifier(subjectField(req.Subject.Kind), req.Subject); err != nil {
			return err
		}
	}
	if err := checkAliases(req.Subject, req.Aliases); err != nil {
		return err
	}
	for i, a := range req.Aliases {
		if err := checkIdentifier(fmt.Sprintf("aliases[%d]", i), a); err != nil {
			return err
		}
	}
	return checkExternalRef(req)
}

// subjectField names the request field of a subject identifier of kind k.
func subjectField(k SubjectKind) string {
	switch k {
	case SubjectCustomerID:
		return "subject.customer_id"
	case SubjectEmail:
		return "subject.email"
	case SubjectPhone:
		return "subject.phone"
	case SubjectConsumerID:
		return "subject.consumer_id"
	}
	return "subject"
}

// checkIdentifier refuses an identifier that could only match the wrong records or none: one
// that is empty once white space and invisible characters are set aside (or, for a phone, has
// no digit), one holding control, format or line-separator characters, a customer id with
// white space at either end, and one that is not UTF-8.
func checkIdentifier(field string, s Subject) error {
	switch {
	case !utf8.ValidString(s.Value):
		return fieldError(field, "is not valid UTF-8")
	case strings.TrimFunc(normalizeSubject(s), blank) == "":
		return fieldError(field, "is empty or blank")
	case strings.ContainsFunc(s.Value, invisible):
		return fieldError(field, "holds control, format or line-separator characters")
	case s.Kind == SubjectCustomerID && strings.TrimFunc(s.Value, blank) != s.Value:
		return fieldError(field, "starts or ends with white space")
	}
	return nil
}

// invisible reports control, format and line- or paragraph-separator characters (DEL, U+0085,
// U+200B, U+2028, tabs), which no identifier LivePerson matches on holds.
func invisible(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }

// blank reports white space and invisible characters.
func blank(r rune) bool { return unicode.IsSpace(r) || unicode.In(r, unicode.Zs) || invisible(r) }

// minRefContained is the length from which an identifier found anywhere inside external_ref is
// refused; a shorter one is refused only when it is the whole ref (a short identifier is found
// inside unrelated ticket ids too often).
const minRefContained = 6

// checkExternalRef refuses an external_ref that is, or holds, one of the request's identifiers:
// external_ref is stored in plaintext and returned to every viewer. Identifiers are compared in
// their normalized form (e-mail addresses ignoring case, phone numbers by their digits).
func checkExternalRef(req SubmitRequest) error {
	if req.ExternalRef == "" {
		return nil
	}
	ids := req.Aliases
	if req.Subject.Kind != SubjectTargets {
		ids = append([]Subject{req.Subject}, ids...)
	}
	for _, id := range ids {
		norm := normalizeSubject(id)
		if norm == "" {
			continue
		}
		ref := normalizeSubject(Subject{Kind: id.Kind, Value: req.ExternalRef})
		if ref == norm || utf8.RuneCountInString(norm) >= minRefContained && strings.Contains(ref, norm) {
			return fieldError("external_ref", "must not be or hold one of the request's identifiers: it is stored in plaintext")
		}
	}
	return nil
}

// normalizeChannels returns the channels sorted and without repeats; none means both.
func normalizeChannels(in []Channel) []Channel {
	if len(in) == 0 {
		return []Channel{ChannelChat, ChannelMessaging}
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// AddMonth returns t plus one calendar month, clamped to the last day of the next month (31
// January → 28 or 29 February), the reading of GDPR Art. 12(3)'s "one month" regulators use.
func AddMonth(t time.Time) time.Time {
	y, m, d := t.Date()
	firstOfNext := time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location())
	last := firstOfNext.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(y, m+1, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}

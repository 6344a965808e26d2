package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/erasured/erasured/store"
)

// SubmitRequest is a request to erase one subject's data in one LivePerson account.
type SubmitRequest struct {
	RequestID            string
	AccountID            string
	Subject              Subject
	Channels             []Channel // empty: chat and messaging
	EraseConsumerProfile bool
	ReceivedTime         time.Time // zero: now
	Confirmation         Confirmation
	ExternalRef          string
}

// SubmitResult is what Submit returns.
type SubmitResult struct {
	Erasure Erasure
	// Deduplicated is true when an open erasure for the same subject and account existed and is
	// returned instead of a new one.
	Deduplicated bool
}

// idempotencyRecord remembers, per request_id, which erasure a Submit produced and a keyed hash of
// its payload, so a retry gets the same answer and a reuse with another payload is refused.
type idempotencyRecord struct {
	ErasureID    string `json:"erasure_id"`
	PayloadHash  string `json:"payload_hash"`
	Deduplicated bool   `json:"deduplicated,omitempty"`
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
	// A retry is answered from a read: no commit, no fsync.
	if res, ok, err := s.replay(req.RequestID, hash); ok || err != nil {
		return res, err
	}
	fp := s.keys.Fingerprint(req.AccountID, req.Subject)

	// Everything random or costly is prepared outside the transaction function, which the store
	// may run more than once.
	id, err := uuid.NewV7()
	if err != nil {
		return SubmitResult{}, err
	}
	eid := id.String()
	dk, err := s.keys.newDataKey(eid)
	if err != nil {
		return SubmitResult{}, err
	}
	subj, err := json.Marshal(req.Subject)
	if err != nil {
		return SubmitResult{}, err
	}
	sealed, err := seal(dk.plain, subj, []byte(eid))
	if err != nil {
		return SubmitResult{}, err
	}
	fresh := s.newRecord(ctx, eid, req, fp, now)
	fresh.Sealed = sealed
	idem, err := json.Marshal(idempotencyRecord{ErasureID: eid, PayloadHash: hash})
	if err != nil {
		return SubmitResult{}, err
	}

	var res SubmitResult
	err = s.db.Update(ctx, func(tx *store.Tx) error {
		var found bool
		var err error
		if res, found, err = lookupRequest(tx, req.RequestID, hash); found || err != nil {
			return err
		}
		subjectKey := []byte(req.AccountID + "\x00" + fp)
		if open := tx.Get(store.Subjects, subjectKey); open != nil {
			r, err := getRecord(tx, string(open))
			if err != nil {
				return err
			}
			if r == nil {
				return fmt.Errorf("subject index points at missing erasure %s", open)
			}
			dup, err := json.Marshal(idempotencyRecord{ErasureID: r.ID, PayloadHash: hash, Deduplicated: true})
			if err != nil {
				return err
			}
			if err := tx.Put(store.Requests, []byte(req.RequestID), dup); err != nil {
				return err
			}
			res = SubmitResult{Erasure: r.Erasure, Deduplicated: true}
			return nil
		}
		r := *fresh
		r.NextAttemptTime = time.Time{}
		if err := setNext(tx, &r, now); err != nil {
			return err
		}
		if err := putChange(tx, &r, StateUnspecified, now); err != nil {
			return err
		}
		if err := tx.Put(store.Keys, []byte(eid), dk.wrapped); err != nil {
			return err
		}
		if err := tx.Put(store.Subjects, subjectKey, []byte(eid)); err != nil {
			return err
		}
		if err := tx.Put(store.Requests, []byte(req.RequestID), idem); err != nil {
			return err
		}
		res = SubmitResult{Erasure: r.Erasure}
		return nil
	})
	if err != nil {
		return SubmitResult{}, s.storeError(err)
	}
	s.wakePipeline()
	return res, nil
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

// replay answers a Submit whose request_id is already stored, from a read transaction.
func (s *Service) replay(requestID, hash string) (SubmitResult, bool, error) {
	var res SubmitResult
	var found bool
	err := s.db.View(func(tx *store.Tx) (err error) {
		res, found, err = lookupRequest(tx, requestID, hash)
		return err
	})
	if err != nil {
		return SubmitResult{}, false, s.storeError(err)
	}
	return res, found, nil
}

// lookupRequest finds the outcome of an earlier Submit with this request_id: the same erasure
// if the payload is the same, a conflict if it is not.
func lookupRequest(tx *store.Tx, requestID, hash string) (SubmitResult, bool, error) {
	v := tx.Get(store.Requests, []byte(requestID))
	if v == nil {
		return SubmitResult{}, false, nil
	}
	var prior idempotencyRecord
	if err := json.Unmarshal(v, &prior); err != nil {
		return SubmitResult{}, false, fmt.Errorf("decode idempotency record: %w", err)
	}
	if prior.PayloadHash != hash {
		return SubmitResult{}, false, &Error{Kind: KindConflict, Reason: "REQUEST_ID_REUSED",
			Message:  "request_id was already used with a different payload",
			Metadata: map[string]string{"erasure": NamePrefix + prior.ErasureID}}
	}
	r, err := getRecord(tx, prior.ErasureID)
	if err != nil {
		return SubmitResult{}, false, err
	}
	if r == nil {
		return SubmitResult{}, false, fmt.Errorf("idempotency record points at missing erasure %s", prior.ErasureID)
	}
	return SubmitResult{Erasure: r.Erasure, Deduplicated: prior.Deduplicated}, true, nil
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
	return &record{Erasure: Erasure{
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
}

// payloadHash is the keyed hash of everything a Submit asks for, as the caller gave it (so a
// retry that again leaves received_time unset matches).
func (s *Service) payloadHash(req SubmitRequest) (string, error) {
	channels := slices.Clone(req.Channels)
	slices.Sort(channels)
	canonical, err := json.Marshal(struct {
		Account  string
		Subject  Subject
		Channels []Channel
		Profile  bool
		Received int64
		Conf     Confirmation
		Ref      string
	}{req.AccountID, req.Subject, channels, req.EraseConsumerProfile, req.ReceivedTime.UnixNano(), req.Confirmation, req.ExternalRef})
	if err != nil {
		return "", err
	}
	if req.ReceivedTime.IsZero() {
		// UnixNano of the zero time is not defined; make the "unset" case explicit.
		canonical = append(canonical, "|unset"...)
	}
	return s.keys.requestHash(canonical), nil
}

// checkSubmit enforces the rules the API schema cannot express.
func checkSubmit(req SubmitRequest, now time.Time) error {
	switch {
	case req.RequestID == "":
		return newError(KindInvalid, "INVALID_REQUEST", "request_id is required")
	case req.AccountID == "":
		return newError(KindInvalid, "INVALID_REQUEST", "account_id is required")
	case req.Subject.Kind == SubjectUnspecified:
		return newError(KindInvalid, "INVALID_REQUEST", "subject is required")
	case req.Subject.Kind == SubjectTargets && len(req.Subject.ConversationIDs)+len(req.Subject.EngagementIDs) == 0:
		return newError(KindInvalid, "INVALID_REQUEST", "subject.targets names no record")
	case req.Subject.Kind != SubjectTargets && req.Subject.Value == "":
		return newError(KindInvalid, "INVALID_REQUEST", "subject identifier is empty")
	case req.ReceivedTime.After(now.Add(clockSkew)):
		return newError(KindInvalid, "RECEIVED_TIME_IN_FUTURE", "received_time is in the future")
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

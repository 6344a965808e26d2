package service

import (
	"context"
	"errors"
	"log/slog"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// describe turns an error into a message for last_error: fixed phrases by kind, never the text
// of a LivePerson response (which could echo personal data).
func describe(err error) string {
	switch {
	case errors.Is(err, ErrQuotaExhausted):
		return "LivePerson deletion quota for this month is spent"
	case errors.Is(err, ErrResidency):
		return "refused: LivePerson host outside the account's region"
	case errors.Is(err, ErrUnauthorized):
		return "LivePerson refused the account's credentials"
	case errors.Is(err, ErrRejected):
		return "LivePerson rejected the request"
	case errors.Is(err, ErrPartial):
		return "LivePerson returned partial results"
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return "LivePerson unavailable"
	case errors.Is(err, errShredded):
		return "the erasure's data key is destroyed"
	case errors.Is(err, pipeline.ErrContentUnread):
		return "LivePerson returned a record without its content"
	case transitionRefused(err):
		return "the erasure cannot make the change LivePerson's answer calls for"
	}
	return "internal error"
}

// incidentMessages are the log messages of incidents, by kind.
var incidentMessages = map[string]string{
	IncidentAuthFailed:        "incident: LivePerson refused the account's credentials",
	IncidentStepRejected:      "incident: LivePerson refused a step",
	IncidentFailed:            "incident: erasure failed",
	IncidentTransitionRefused: "incident: a pipeline step asked for an erasure change the transition table refuses",
}

// report logs an incident an operator must see, then passes it to Config.OnIncident. The line
// names the kind, the account, the step, a fixed reason and attrs (an erasure or batch id),
// never personal data.
func (s *Service) report(inc Incident, attrs ...any) {
	level := slog.LevelError
	if inc.Kind == IncidentStepRejected {
		level = slog.LevelWarn
	}
	line := []any{"incident", inc.Kind, "account", inc.Account}
	if inc.Step != "" {
		line = append(line, "step", inc.Step)
	}
	line = append(append(line, "reason", inc.Reason), attrs...)
	s.log.Log(context.Background(), level, incidentMessages[inc.Kind], line...)
	if f := s.cfg.OnIncident; f != nil {
		f(inc)
	}
}

// reportRefusal reports LivePerson's refusal at a step of the pipeline: of the account's
// credentials, or of the request itself. Other failures (unavailable, quota spent, residency)
// are retried or shown on the erasure, and are not incidents.
func (s *Service) reportRefusal(account, step string, err error, attrs ...any) {
	switch {
	case errors.Is(err, ErrUnauthorized):
		s.report(Incident{Kind: IncidentAuthFailed, Account: account, Step: step, Reason: "credentials_refused"}, attrs...)
	case errors.Is(err, ErrRejected):
		s.report(Incident{Kind: IncidentStepRejected, Account: account, Step: step, Reason: "request_rejected"}, attrs...)
	}
}

// reportAuth reports a refusal of the account's credentials only: for calls on behalf of a
// caller (a preview, a cancel, a settle), whose other refusals are the caller's to see.
func (s *Service) reportAuth(account, step string, err error) {
	if errors.Is(err, ErrUnauthorized) {
		s.reportRefusal(account, step, err)
	}
}

// failErasure moves r to FAILED, in tx, and reports the move once tx commits (not at all if
// it does not, and once however often the store runs the transaction function). reason is a
// fixed string. It is half of a change: it only sets r.State, and the caller then stores the
// change through transition in this transaction, which checks the move.
func (s *Service) failErasure(tx store.Tx, r *record, reason string) error {
	from := apiName(r.State)
	r.State = StateFailed
	inc, id := Incident{Kind: IncidentFailed, Account: r.AccountID, Reason: reason}, r.ID
	return tx.OnCommit(func() { s.report(inc, "erasure", id, "from", from, "to", apiName(StateFailed)) })
}

// Package port adapts the LivePerson client to the erasure service's LivePerson port
// (service.LivePerson), so that cmd and the benchmarks plug the same adapter in.
package port

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/service"
)

// Port implements service.LivePerson over a liveperson.Client.
type Port struct {
	c *liveperson.Client
}

// New returns the adapter over c.
func New(c *liveperson.Client) Port { return Port{c: c} }

var _ service.LivePerson = Port{}

func (p Port) SearchChats(ctx context.Context, account string, from, to time.Time, keyword string) ([]service.ChatRecord, error) {
	ctx = noticeRetries(ctx)
	es, err := p.c.SearchEngagements(ctx, account, liveperson.EngagementQuery{From: from, To: to, Keyword: keyword})
	if err != nil {
		return nil, portErr(err)
	}
	out := make([]service.ChatRecord, 0, len(es))
	for _, e := range es {
		out = append(out, chatRecord(e))
	}
	return out, nil
}

// ChatByID reads one chat by engagement id. Engagement History always answers
// with the transcript, so the record says whether its content is masked.
func (p Port) ChatByID(ctx context.Context, account, id string, from, to time.Time) (service.ChatRecord, bool, error) {
	ctx = noticeRetries(ctx)
	es, err := p.c.SearchEngagements(ctx, account, liveperson.EngagementQuery{From: from, To: to, EngagementID: id})
	if err != nil {
		return service.ChatRecord{}, false, portErr(err)
	}
	for _, e := range es {
		if e.EngagementID == id {
			return chatRecord(e), true, nil
		}
	}
	return service.ChatRecord{}, false, nil
}

// chatRecord converts an engagement; its attributes are those of sdes and
// unAuthSdes together.
func chatRecord(e liveperson.Engagement) service.ChatRecord {
	return service.ChatRecord{EngagementID: e.EngagementID, Start: e.Start, CustomerIDs: e.CustomerIDs,
		Emails: e.Emails, Phones: e.Phones, ContentRead: e.ContentRead, Masked: e.Masked()}
}

func (p Port) SearchConversations(ctx context.Context, account string, from, to time.Time, sde service.SDESearch) ([]service.ConversationRecord, error) {
	ctx = noticeRetries(ctx)
	cs, err := p.c.SearchConversations(ctx, account, liveperson.ConversationQuery{From: from, To: to, Status: []string{"OPEN", "CLOSE"},
		CustomerInfo: sde.CustomerInfo, PersonalInfo: sde.PersonalInfo})
	if err != nil {
		return nil, portErr(err)
	}
	return conversationRecords(cs), nil
}

func (p Port) ConversationsByConsumer(ctx context.Context, account, consumer string) ([]service.ConversationRecord, error) {
	ctx = noticeRetries(ctx)
	cs, err := p.c.ConversationsByConsumer(ctx, account, consumer, []string{"OPEN", "CLOSE"}, nil)
	if err != nil {
		return nil, portErr(err)
	}
	return conversationRecords(cs), nil
}

// ConversationsByID reads conversations with their messages
// (liveperson.ContentByID), so that the records say whether they are masked.
func (p Port) ConversationsByID(ctx context.Context, account string, ids []string) ([]service.ConversationRecord, error) {
	ctx = noticeRetries(ctx)
	cs, err := p.c.ConversationsByID(ctx, account, ids, liveperson.ContentByID)
	if err != nil {
		return nil, portErr(err)
	}
	return conversationRecords(cs), nil
}

// conversationRecords converts conversations, with the values of sdes
// (authenticated) apart from those of unAuthSdes (unauthenticated): only an
// authenticated match makes a conversation's consumer the person's. The
// client's Attributes hold the authenticated values followed by Unauth's.
// Should they not end with Unauth's, every value Unauth holds counts as
// unauthenticated: better to follow a consumer too few than one too many.
func conversationRecords(cs []liveperson.Conversation) []service.ConversationRecord {
	authenticated := func(all, unauth []string) []string {
		in := func(vs []string, v string) bool {
			for _, x := range vs {
				if x == v {
					return true
				}
			}
			return false
		}
		n := len(all) - len(unauth)
		tail := n >= 0
		for i := 0; tail && i < len(unauth); i++ {
			tail = all[n+i] == unauth[i]
		}
		if tail && n == 0 {
			return nil
		}
		if tail {
			return all[:n:n]
		}
		var out []string
		for _, v := range all {
			if !in(unauth, v) {
				out = append(out, v)
			}
		}
		return out
	}
	out := make([]service.ConversationRecord, 0, len(cs))
	for _, c := range cs {
		out = append(out, service.ConversationRecord{ConversationID: c.ConversationID, Open: c.Status == "OPEN",
			Start: c.Start, ConsumerIDs: c.ConsumerIDs(), CustomerIDs: authenticated(c.CustomerIDs, c.Unauth.CustomerIDs),
			Emails: authenticated(c.Emails, c.Unauth.Emails), Phones: authenticated(c.Phones, c.Unauth.Phones),
			UnauthCustomerIDs: c.Unauth.CustomerIDs, UnauthEmails: c.Unauth.Emails, UnauthPhones: c.Unauth.Phones,
			ContentRead: c.ContentRead, Masked: c.Masked()})
	}
	return out
}

// CreateDeletion creates a request. An answer whose request id cannot be read
// leaves the outcome unknown: the request may well exist at LivePerson.
func (p Port) CreateDeletion(ctx context.Context, account string, kind service.TargetKind, ids []string) (service.Deletion, error) {
	ctx = noticeRetries(ctx)
	r, err := p.c.CreateDeletion(ctx, account, liveperson.DeletionKind(kind.String()), ids)
	if err != nil {
		return service.Deletion{}, portErr(err)
	}
	d, ok := deletion(r)
	if !ok {
		return service.Deletion{}, fmt.Errorf("%w: %s", service.ErrOutcomeUnknown, errUnreadableID)
	}
	return d, nil
}

// ListDeletions lists requests. An entry whose id cannot be read fails the
// whole list as unavailable rather than being skipped: the list serves
// reconciliation, and a request it cannot see might be the one a lost create
// made, which would then be sent again. A list that keeps failing ends with the
// batch held for an operator, never resent.
func (p Port) ListDeletions(ctx context.Context, account string, from, to time.Time) ([]service.Deletion, error) {
	ctx = noticeRetries(ctx)
	rs, err := p.c.ListDeletions(ctx, account, liveperson.DeletionFilter{FromDate: from, ToDate: to})
	if err != nil {
		return nil, portErr(err)
	}
	out := make([]service.Deletion, 0, len(rs))
	for _, r := range rs {
		d, ok := deletion(r)
		if !ok {
			return nil, fmt.Errorf("%w: %s", service.ErrUnavailable, errUnreadableID)
		}
		out = append(out, d)
	}
	return out, nil
}

func (p Port) GetDeletion(ctx context.Context, account string, id int64) (service.Deletion, error) {
	ctx = noticeRetries(ctx)
	r, err := p.c.GetDeletion(ctx, account, strconv.FormatInt(id, 10))
	if err != nil {
		return service.Deletion{}, portErr(err)
	}
	return readable(r)
}

func (p Port) CancelDeletion(ctx context.Context, account string, id int64) (service.Deletion, error) {
	ctx = noticeRetries(ctx)
	r, err := p.c.CancelDeletion(ctx, account, strconv.FormatInt(id, 10))
	if err != nil {
		return service.Deletion{}, portErr(err)
	}
	return readable(r)
}

// errUnreadableID is the fixed text of an answer whose request id is not a
// positive number.
const errUnreadableID = "LivePerson request id is not a number"

// readable converts a get or cancel answer; one whose id cannot be read
// leaves the request unavailable, to be read again later.
func readable(r liveperson.DeletionRequest) (service.Deletion, error) {
	d, ok := deletion(r)
	if !ok {
		return service.Deletion{}, fmt.Errorf("%w: %s", service.ErrUnavailable, errUnreadableID)
	}
	return d, nil
}

// deletion converts LivePerson's request; ok is false when its id is not a
// positive number. Its delete_json, when echoed, gives the kind and ids that
// reconciliation compares with a batch's intent; when it is absent (get and
// list answers document none) Kind and IDs stay empty and RequestedBy is what
// is left to go by.
func deletion(r liveperson.DeletionRequest) (d service.Deletion, ok bool) {
	id, err := strconv.ParseInt(r.ID, 10, 64)
	if err != nil || id <= 0 {
		return service.Deletion{}, false
	}
	d = service.Deletion{ID: id, Status: r.Status, Created: r.RequestTime, RequestedBy: r.RequestedBy}
	if r.IsCanceled && d.Status == "" {
		d.Status = service.LPCanceled
	}
	if kind, ids, err := r.Targets(); err == nil {
		switch kind {
		case liveperson.KindEngagement:
			d.Kind, d.IDs = service.KindEngagement, ids
		case liveperson.KindConversation:
			d.Kind, d.IDs = service.KindConversation, ids
		case liveperson.KindConsumer:
			d.Kind, d.IDs = service.KindConsumer, ids
		}
	}
	return d, true
}

// portErr classifies a LivePerson error for the pipeline, keeping the original wrapped, and
// passes on the wait LivePerson asked for (Retry-After): a call gives up at once when that wait
// would outlast it, and the pipeline must not come back sooner than asked.
func portErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return service.WithRetryAfter(classify(err), liveperson.RetryAfterOf(err))
}

// classify wraps err with the service error saying what the pipeline does next.
func classify(err error) error {
	var kind error
	if liveperson.IsUnauthorized(err) || statusOf(err) == http.StatusForbidden {
		// LivePerson refused the account's credentials (401), or they lack the rights (403).
		// Neither is the records' fault and both may be fixed by an operator: retry later, and
		// say why, so the service reports the refusal.
		return fmt.Errorf("%w: %w: %w", service.ErrUnavailable, service.ErrUnauthorized, err)
	}
	switch liveperson.KindOf(err) {
	case liveperson.KindQuotaExhausted:
		kind = service.ErrQuotaExhausted
	case liveperson.KindOutcomeUnknown:
		kind = service.ErrOutcomeUnknown
	case liveperson.KindResidency:
		kind = service.ErrResidency
	case liveperson.KindTerminal, liveperson.KindInvalid:
		kind = service.ErrRejected
	default: // retryable, rate limited, unknown
		kind = service.ErrUnavailable
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// statusOf is the HTTP status of a LivePerson error, 0 when none was received.
func statusOf(err error) int {
	var e *liveperson.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

package pipeline

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/erasured/erasured/service/model"
)

// resolution is the outcome of one search for a subject's records.
type resolution struct {
	targets []model.Target
	// unsearchable: messaging was searched, some identifier may be unsearchable there, and
	// the person's consumer was not found (see identifierUnsearchable).
	unsearchable bool
	// consumerFound: a conversation whose authenticated attributes carry a searchable
	// identifier named the person's consumer, whose conversations were then all read.
	consumerFound bool
	// consumers are the messaging consumers followed (sorted): named, found through
	// authenticated attributes, or followed by an earlier search.
	consumers []string
}

// LivePerson keeps chats and conversations for 13 months. Engagement History searches span at
// most "one month" and Messaging Interactions at most "three months", and LivePerson rounds a
// window's from down and its to up to 10 minutes. Windows are therefore aligned to 10 minutes
// (rounding leaves them as they are) and as long as the shortest reading of each limit allows:
// 28 and 89 days. Together they cover 13 calendar months and a day of margin.
const (
	retentionMonths = 13
	windowAlign     = 10 * time.Minute
	chatWindow      = 28 * 24 * time.Hour
	messagingWindow = 89 * 24 * time.Hour
)

// resolver finds a subject's records in one account.
type resolver struct {
	lp  model.LivePerson
	now time.Time
	// followed are consumers earlier searches found to be the person's; they are followed
	// again whether or not an attribute search still leads to them.
	followed []string
	// late narrows the chat search of identifiers swept completely before (see lateSweep);
	// zero, every identifier is searched over the whole retention.
	late lateSweep
}

// lateSweep describes an earlier complete sweep, so that a later one searches chats only where
// that sweep may have missed one: the first swept identifiers (the subject first, as resolve
// takes them) were searched over the whole retention, and every chat that started before from
// was searchable by then. Their chats are then searched only in the windows reaching back to
// from; identifiers after those, which joined since, are searched over the whole retention.
type lateSweep struct {
	swept int
	from  time.Time
}

// resolve searches every channel asked for with every identifier of the subject (ids: the
// subject first, then its aliases) and keeps only records whose attributes carry one of them
// exactly. LivePerson's keyword search is fuzzy: a hit that does not match exactly is never a
// target — deleting another person's data is the worst failure there is. Every conversation of
// a consumer found that way, or named by a consumer id, is the person's.
func (rv resolver) resolve(ctx context.Context, account string, ids []model.Subject, channels []model.Channel, consumerProfile bool) (resolution, error) {
	if len(ids) > 0 && ids[0].Kind == model.SubjectTargets {
		return rv.resolveExplicit(ctx, account, ids[0])
	}
	var res resolution
	seen := map[string]bool{}
	add := func(t model.Target) {
		if k := t.Kind.String() + "/" + t.ID; !seen[k] {
			seen[k] = true
			res.targets = append(res.targets, t)
		}
	}
	matches := func(customerIDs, emails, phones []string) bool {
		return slices.ContainsFunc(ids, func(s model.Subject) bool { return attributesMatch(s, customerIDs, emails, phones) })
	}
	if slices.Contains(channels, model.ChannelChat) {
		for _, q := range rv.chatSearches(ids) {
			for from, to := range windowsSince(rv.now, q.since, chatWindow) {
				recs, err := rv.lp.SearchChats(ctx, account, from, to, q.keyword)
				if err != nil {
					return resolution{}, fmt.Errorf("chat search: %w", err)
				}
				for _, r := range recs {
					if matches(r.CustomerIDs, r.Emails, r.Phones) && !erased(r.ContentRead, r.Masked) {
						add(model.Target{Kind: model.KindEngagement, ID: r.EngagementID, Status: model.TargetFound, Start: r.Start})
					}
				}
			}
		}
	}
	if slices.Contains(channels, model.ChannelMessaging) {
		refs := make([]model.IdentRef, len(ids))
		consumers := map[string]bool{}
		for _, c := range rv.followed {
			consumers[c] = true
		}
		for i, s := range ids {
			refs[i] = model.IdentRef{Kind: s.Kind, Digits: model.DigitsOnly(s)}
			if s.Kind == model.SubjectConsumerID {
				consumers[s.Value] = true
			}
		}
		// findsConsumer: the authenticated attributes carry an identifier that can be searched,
		// so the consumer they lead to is the person's, found without relying on a search that
		// may be unable to see numbers.
		findsConsumer := func(r model.ConversationRecord) bool {
			return len(r.ConsumerIDs) > 0 && slices.ContainsFunc(ids, func(s model.Subject) bool {
				return !model.DigitsOnly(s) && attributesMatch(s, r.CustomerIDs, r.Emails, r.Phones)
			})
		}
		for _, sde := range conversationSearches(ids) {
			// Searched even when the value may be unsearchable: LivePerson's limitation is
			// described loosely, and a search that finds something is never wasted.
			for from, to := range windows(rv.now, messagingWindow) {
				recs, err := rv.lp.SearchConversations(ctx, account, from, to, sde)
				if err != nil {
					return resolution{}, fmt.Errorf("messaging search: %w", err)
				}
				for _, r := range recs {
					authenticated := matches(r.CustomerIDs, r.Emails, r.Phones)
					if !authenticated && !matches(r.UnauthCustomerIDs, r.UnauthEmails, r.UnauthPhones) {
						continue
					}
					if !erased(r.ContentRead, r.Masked) {
						add(conversationTarget(r))
					}
					if !authenticated {
						// Anyone can type the person's e-mail into an unauthenticated form: the
						// conversation holds the person's identifier and is erased, but its
						// consumer may be someone else, whose other conversations and profile
						// are not the person's.
						continue
					}
					res.consumerFound = res.consumerFound || findsConsumer(r)
					for _, c := range r.ConsumerIDs {
						consumers[c] = true
					}
				}
			}
		}
		res.unsearchable = model.IdentifierUnsearchable(refs, channels, res.consumerFound)
		res.consumers = sortedKeys(consumers)
		for _, c := range res.consumers {
			recs, err := rv.lp.ConversationsByConsumer(ctx, account, c)
			if err != nil {
				return resolution{}, fmt.Errorf("conversations by consumer: %w", err)
			}
			for _, r := range recs {
				// The by-consumer search is exact by construction, but check anyway. Whether the
				// conversation carries attributes does not matter: it is the consumer's.
				if slices.Contains(r.ConsumerIDs, c) && !erased(r.ContentRead, r.Masked) {
					add(conversationTarget(r))
				}
			}
			if consumerProfile {
				// A consumer with no conversation at all is one LivePerson does not know (a
				// consumer id given by the caller): there is nothing to delete.
				st := model.TargetFound
				if len(recs) == 0 {
					st = model.TargetNotFound
				}
				add(model.Target{Kind: model.KindConsumer, ID: c, Status: st})
			}
		}
	}
	return res, nil
}

// chatSearch is one keyword searched in Engagement History: over the windows since since
// (zero: the whole retention).
type chatSearch struct {
	keyword string
	since   time.Time
}

// chatSearches are the keyword searches resolve runs for ids, in their order: one per distinct
// keyword (the value searched as one phrase, spaces around it trimmed), since every hit is
// matched against all of ids anyway. Consumer ids have none: messaging participants do not
// appear in chat attributes. A keyword shared by identifiers is searched as far back as the
// one searched least before needs: a hit is matched by kind (a customer id against the chat's
// customer ids, an email against its emails), so a chat the earlier search found under the
// phrase, and dropped as not the subject's, may be an alias's that joined since.
func (rv resolver) chatSearches(ids []model.Subject) []chatSearch {
	var out []chatSearch
	at := map[string]int{}
	for i, s := range ids {
		if s.Kind == model.SubjectConsumerID {
			continue
		}
		since := time.Time{}
		if i < rv.late.swept {
			since = rv.late.from
		}
		k := strings.TrimSpace(s.Value)
		if j, ok := at[k]; ok {
			if since.Before(out[j].since) {
				out[j].since = since
			}
			continue
		}
		at[k] = len(out)
		out = append(out, chatSearch{keyword: s.Value, since: since})
	}
	return out
}

// conversationSearches are the attribute searches resolve runs in Messaging Interactions for
// ids, in their order: a customer id in customerInfo, any other identifier but a consumer id in
// personalInfo, each distinct search (spaces around the value trimmed) once.
func conversationSearches(ids []model.Subject) []model.SDESearch {
	var out []model.SDESearch
	seen := map[model.SDESearch]bool{}
	for _, s := range ids {
		if s.Kind == model.SubjectConsumerID {
			continue
		}
		sde, key := model.SDESearch{PersonalInfo: s.Value}, model.SDESearch{PersonalInfo: strings.TrimSpace(s.Value)}
		if s.Kind == model.SubjectCustomerID {
			sde, key = model.SDESearch{CustomerInfo: s.Value}, model.SDESearch{CustomerInfo: key.PersonalInfo}
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, sde)
		}
	}
	return out
}

// resolveExplicit checks records named by id. Each that LivePerson has is a target (open
// conversations are held); each it does not have is reported as not found.
func (rv resolver) resolveExplicit(ctx context.Context, account string, s model.Subject) (resolution, error) {
	var res resolution
	for chunk := range slices.Chunk(s.ConversationIDs, 100) {
		recs, err := rv.lp.ConversationsByID(ctx, account, chunk)
		if err != nil {
			return resolution{}, fmt.Errorf("conversations by id: %w", err)
		}
		for _, id := range chunk {
			i := slices.IndexFunc(recs, func(r model.ConversationRecord) bool { return r.ConversationID == id })
			switch {
			case i < 0:
				res.targets = append(res.targets, model.Target{Kind: model.KindConversation, ID: id, Status: model.TargetNotFound})
			case !erased(recs[i].ContentRead, recs[i].Masked):
				res.targets = append(res.targets, conversationTarget(recs[i]))
			}
		}
	}
	for _, id := range s.EngagementIDs {
		r, found, err := rv.chatByID(ctx, account, id)
		switch {
		case err != nil:
			return resolution{}, err
		case !found:
			res.targets = append(res.targets, model.Target{Kind: model.KindEngagement, ID: id, Status: model.TargetNotFound})
		case !erased(r.ContentRead, r.Masked):
			res.targets = append(res.targets, model.Target{Kind: model.KindEngagement, ID: id, Status: model.TargetFound, Start: r.Start})
		}
	}
	return res, nil
}

// chatByID looks for one engagement in every window of the retention.
func (rv resolver) chatByID(ctx context.Context, account, id string) (model.ChatRecord, bool, error) {
	for from, to := range windows(rv.now, chatWindow) {
		r, found, err := rv.lp.ChatByID(ctx, account, id, from, to)
		if err != nil {
			return model.ChatRecord{}, false, fmt.Errorf("chat by id: %w", err)
		}
		if found && r.EngagementID == id {
			return r, true, nil
		}
	}
	return model.ChatRecord{}, false, nil
}

// erased reports whether a record is known to be erased already: read with its content, masked.
// Masked without the content read would prove nothing.
func erased(contentRead, masked bool) bool { return contentRead && masked }

func conversationTarget(r model.ConversationRecord) model.Target {
	st := model.TargetFound
	if r.Open {
		st = model.TargetDeferredOpen
	}
	return model.Target{Kind: model.KindConversation, ID: r.ConversationID, Status: st}
}

func attributesMatch(s model.Subject, customerIDs, emails, phones []string) bool {
	switch s.Kind {
	case model.SubjectCustomerID:
		return slices.Contains(customerIDs, s.Value)
	case model.SubjectEmail:
		want := model.NormalizeSubject(s)
		return slices.ContainsFunc(emails, func(e string) bool { return strings.ToLower(strings.TrimSpace(e)) == want })
	case model.SubjectPhone:
		want := model.NormalizeSubject(s)
		return want != "" && slices.ContainsFunc(phones, func(p string) bool {
			return model.NormalizeSubject(model.Subject{Kind: model.SubjectPhone, Value: p}) == want
		})
	}
	return false
}

// windows yields consecutive [from, to) windows of at most span, aligned to 10 minutes, from 13
// calendar months and a day before now (rounded down) to now (rounded up), oldest first.
func windows(now time.Time, span time.Duration) iter.Seq2[time.Time, time.Time] {
	return windowsSince(now, time.Time{}, span)
}

// windowsSince yields the fewest windows of windows(now, span) that cover since (rounded down)
// to now, oldest first. They are laid back from now, each span long, so that the earliest
// reaches as far before since as its span allows, never before the retention; with since zero
// or before the retention, they are all of windows(now, span).
func windowsSince(now, since time.Time, span time.Duration) iter.Seq2[time.Time, time.Time] {
	return func(yield func(time.Time, time.Time) bool) {
		start := retentionStart(now).Truncate(windowAlign)
		end := now.Truncate(windowAlign)
		if end.Before(now) {
			end = end.Add(windowAlign)
		}
		if s := since.Truncate(windowAlign); s.After(start) {
			n := max((end.Sub(s)+span-1)/span, 1)
			if first := end.Add(-time.Duration(n) * span); first.After(start) {
				start = first
			}
		}
		for from := start; from.Before(end); from = from.Add(span) {
			to := from.Add(span)
			if to.After(end) {
				to = end
			}
			if !yield(from, to) {
				return
			}
		}
	}
}

// retentionStart is 13 calendar months and a day before now. The month step clamps to the end of
// a shorter month (31 March less 13 months is 28 February, not 3 March as time.AddDate would
// have it), so that the search never starts after a day LivePerson may still keep.
func retentionStart(now time.Time) time.Time {
	y, m, d := now.Date()
	first := time.Date(y, m-retentionMonths, 1, 0, 0, 0, 0, now.Location())
	last := first.AddDate(0, 1, -1).Day()
	back := time.Date(first.Year(), first.Month(), min(d, last), now.Hour(), now.Minute(), now.Second(),
		now.Nanosecond(), now.Location())
	return back.AddDate(0, 0, -1)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// searched records what a search with ids (the subject first) showed of the identifiers. The
// person's consumer, once found, stays found: the records that led to it may be erased since,
// and a later search then no longer sees them, but the consumer was the person's.
func searched(r *model.Record, res resolution, ids []model.Subject) {
	r.SubjectDigits = model.DigitsOnly(ids[0])
	r.ConsumerFound = r.ConsumerFound || res.consumerFound
	r.IdentifierUnsearchable = model.IdentifierUnsearchable(model.IdentRefs(&r.Erasure, &r.Private), r.Channels, r.ConsumerFound)
}

// Found is what a search for a subject's records found.
type Found struct {
	Targets []model.Target
	// Unsearchable: messaging was searched, some identifier may be unsearchable there, and the
	// person's consumer was not found (see model.IdentifierUnsearchable).
	Unsearchable bool
	// ConsumerFound: a conversation whose authenticated attributes carry a searchable identifier
	// named the person's consumer.
	ConsumerFound bool
}

// Search searches LivePerson at now for the records of a subject of account (ids: the subject
// first, then its aliases) in the channels asked for, as the resolve step does for an erasure
// searched for the first time: only records whose attributes carry one of the identifiers
// exactly are found. It stores nothing (a preview).
func Search(ctx context.Context, lp model.LivePerson, now time.Time, account string, ids []model.Subject, channels []model.Channel, consumerProfile bool) (Found, error) {
	res, err := resolver{lp: lp, now: now}.resolve(ctx, account, ids, channels, consumerProfile)
	return Found{Targets: res.targets, Unsearchable: res.unsearchable, ConsumerFound: res.consumerFound}, err
}

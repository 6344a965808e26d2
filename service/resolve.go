package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Target is one LivePerson record to erase. Its id is personal data: targets are stored sealed.
type Target struct {
	Kind      TargetKind   `json:"k"`
	ID        string       `json:"i"`
	Status    TargetStatus `json:"s"`
	LPRequest int64        `json:"r,omitempty"` // the LivePerson deletion request holding it
	Batch     uint64       `json:"b,omitempty"` // our batch holding it (intent committed)
	Requeued  int          `json:"q,omitempty"` // times verification found it not erased
	Rejected  int          `json:"x,omitempty"` // times LivePerson rejected a request holding it
	// Start is when a chat began: verification re-reads it in the one search window holding it.
	Start time.Time `json:"t,omitzero"`
}

// resolution is the outcome of one search for a subject's records.
type resolution struct {
	targets      []Target
	unsearchable bool // the identifier cannot be searched in Messaging Interactions
}

// LivePerson keeps chats and conversations for 13 months; Engagement History searches span at
// most one month and Messaging Interactions at most three. Windows are fixed lengths (30 and 90
// days over 395) so that no reading of "month" makes LivePerson refuse one.
const (
	retention       = 395 * 24 * time.Hour
	chatWindow      = 30 * 24 * time.Hour
	messagingWindow = 90 * 24 * time.Hour
)

// resolver finds a subject's records in one account.
type resolver struct {
	lp  LivePerson
	now time.Time
}

// resolve searches every channel asked for and keeps only records whose attributes carry the
// subject's identifier exactly. LivePerson's keyword search is fuzzy: a hit that does not match
// exactly is never a target — deleting another person's data is the worst failure there is.
func (rv resolver) resolve(ctx context.Context, account string, s Subject, channels []Channel, consumerProfile bool) (resolution, error) {
	var res resolution
	add := func(t Target) {
		for _, have := range res.targets {
			if have.Kind == t.Kind && have.ID == t.ID {
				return
			}
		}
		res.targets = append(res.targets, t)
	}
	if s.Kind == SubjectTargets {
		return rv.resolveExplicit(ctx, account, s)
	}
	if slices.Contains(channels, ChannelChat) && s.Kind != SubjectConsumerID {
		for from, to := range windows(rv.now, chatWindow) {
			recs, err := rv.lp.SearchChats(ctx, account, from, to, s.Value)
			if err != nil {
				return resolution{}, fmt.Errorf("chat search: %w", err)
			}
			for _, r := range recs {
				if chatMatches(s, r) && !r.Masked {
					add(Target{Kind: KindEngagement, ID: r.EngagementID, Status: TargetFound, Start: r.Start})
				}
			}
		}
	}
	if slices.Contains(channels, ChannelMessaging) {
		consumers := map[string]bool{}
		if s.Kind == SubjectConsumerID {
			consumers[s.Value] = true
		} else if res.unsearchable = unsearchableInMessaging(s); !res.unsearchable {
			// (An unsearchable identifier would find nothing in Messaging Interactions: it is
			// reported on the erasure instead of searched.)
			sde := SDESearch{}
			if s.Kind == SubjectCustomerID {
				sde.CustomerInfo = s.Value
			} else {
				sde.PersonalInfo = s.Value
			}
			for from, to := range windows(rv.now, messagingWindow) {
				recs, err := rv.lp.SearchConversations(ctx, account, from, to, sde)
				if err != nil {
					return resolution{}, fmt.Errorf("messaging search: %w", err)
				}
				for _, r := range recs {
					if !conversationMatches(s, r) {
						continue
					}
					add(conversationTarget(r))
					for _, c := range r.ConsumerIDs {
						consumers[c] = true
					}
				}
			}
		}
		for _, c := range sortedKeys(consumers) {
			recs, err := rv.lp.ConversationsByConsumer(ctx, account, c)
			if err != nil {
				return resolution{}, fmt.Errorf("conversations by consumer: %w", err)
			}
			for _, r := range recs {
				// The by-consumer search is exact by construction, but check anyway.
				if slices.Contains(r.ConsumerIDs, c) && !r.Masked {
					add(conversationTarget(r))
				}
			}
			if consumerProfile {
				add(Target{Kind: KindConsumer, ID: c, Status: TargetFound})
			}
		}
	}
	return res, nil
}

// resolveExplicit checks records named by id: each must exist; open conversations are held.
// Engagements that cannot be found are not targets (there is nothing to erase).
func (rv resolver) resolveExplicit(ctx context.Context, account string, s Subject) (resolution, error) {
	var res resolution
	for chunk := range slices.Chunk(s.ConversationIDs, 100) {
		recs, err := rv.lp.ConversationsByID(ctx, account, chunk)
		if err != nil {
			return resolution{}, fmt.Errorf("conversations by id: %w", err)
		}
		for _, r := range recs {
			if slices.Contains(chunk, r.ConversationID) && !r.Masked {
				res.targets = append(res.targets, conversationTarget(r))
			}
		}
	}
	for _, id := range s.EngagementIDs {
		for from, to := range windows(rv.now, chatWindow) {
			r, found, err := rv.lp.ChatByID(ctx, account, id, from, to)
			if err != nil {
				return resolution{}, fmt.Errorf("chat by id: %w", err)
			}
			if found && r.EngagementID == id {
				if !r.Masked {
					res.targets = append(res.targets, Target{Kind: KindEngagement, ID: id, Status: TargetFound, Start: r.Start})
				}
				break
			}
		}
	}
	return res, nil
}

func conversationTarget(r ConversationRecord) Target {
	st := TargetFound
	if r.Open {
		st = TargetDeferredOpen
	}
	return Target{Kind: KindConversation, ID: r.ConversationID, Status: st}
}

// chatMatches reports whether a chat's attributes carry the subject's identifier exactly.
func chatMatches(s Subject, r ChatRecord) bool {
	return attributesMatch(s, r.CustomerIDs, r.Emails, r.Phones)
}

func conversationMatches(s Subject, r ConversationRecord) bool {
	return attributesMatch(s, r.CustomerIDs, r.Emails, r.Phones)
}

func attributesMatch(s Subject, customerIDs, emails, phones []string) bool {
	switch s.Kind {
	case SubjectCustomerID:
		return slices.Contains(customerIDs, s.Value)
	case SubjectEmail:
		want := normalizeSubject(s)
		return slices.ContainsFunc(emails, func(e string) bool { return strings.ToLower(strings.TrimSpace(e)) == want })
	case SubjectPhone:
		want := normalizeSubject(s)
		return want != "" && slices.ContainsFunc(phones, func(p string) bool {
			return normalizeSubject(Subject{Kind: SubjectPhone, Value: p}) == want
		})
	}
	return false
}

// unsearchableInMessaging: Messaging Interactions cannot search values holding a run of more
// than three digits, so such an identifier finds nothing there — reported, never silently empty.
func unsearchableInMessaging(s Subject) bool {
	run := 0
	for _, r := range s.Value {
		if r >= '0' && r <= '9' {
			run++
			if run > 3 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// windows yields consecutive [from, to) windows of at most span covering LivePerson's retention
// up to now, oldest first.
func windows(now time.Time, span time.Duration) func(yield func(time.Time, time.Time) bool) {
	return func(yield func(time.Time, time.Time) bool) {
		end := now.Add(time.Minute)
		for from := end.Add(-retention); from.Before(end); from = from.Add(span) {
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

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

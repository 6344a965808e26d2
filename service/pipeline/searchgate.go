package pipeline

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/erasured/erasured/service/model"
)

// When LivePerson answers a search service's call with a 429 and a Retry-After, it will refuse
// every other search of that account and service until then. Starting the resolve step of each
// other erasure anyway would only collect a 429 and a backoff write per erasure, competing with
// Submit's commits for the store's writer. The search gate remembers the wait instead: the
// resolve steps of that account and service are held (HoldTask) until it has passed, without a
// write, and run then. The gate lives in memory; after a restart the first search meets the
// 429 again and closes it again.

// searchService is a LivePerson search service, as far as the gate tells them apart.
type searchService int

const (
	searchChats     searchService = iota // Engagement History: chat searches and re-reads
	searchMessaging                      // Messaging History: conversation searches and re-reads
)

type gateKey struct {
	account string
	service searchService
}

// SearchGate is a model.LivePerson that closes an account's search service when one of its
// calls fails with a wait LivePerson asked for (model.ServerWait), until that wait has passed.
type SearchGate struct {
	model.LivePerson
	now func() time.Time

	mu    sync.Mutex
	until map[gateKey]time.Time
}

// GateSearches returns lp behind a search gate on the clock now. The pipeline holds the resolve
// steps the gate closes (see Pipeline's resolving step); every call still goes to lp.
func GateSearches(lp model.LivePerson, now func() time.Time) *SearchGate {
	return &SearchGate{LivePerson: lp, now: now, until: map[gateKey]time.Time{}}
}

// note closes the gate of account and svc when err carries a wait LivePerson asked for.
func (g *SearchGate) note(account string, svc searchService, err error) {
	w := model.ServerWait(err)
	if w <= 0 || !errors.Is(err, model.ErrUnavailable) {
		return
	}
	until := g.now().Add(w)
	k := gateKey{account, svc}
	g.mu.Lock()
	if until.After(g.until[k]) {
		g.until[k] = until
	}
	g.mu.Unlock()
}

// Closed reports until when a search of account in the given channels must wait: the latest
// Retry-After still to pass of the services those channels need (zero: none, search now).
func (g *SearchGate) Closed(account string, channels []model.Channel, now time.Time) time.Time {
	var until time.Time
	g.mu.Lock()
	defer g.mu.Unlock()
	for svc, ch := range map[searchService]model.Channel{searchChats: model.ChannelChat, searchMessaging: model.ChannelMessaging} {
		if !slices.Contains(channels, ch) {
			continue
		}
		k := gateKey{account, svc}
		switch u, ok := g.until[k]; {
		case !ok:
		case !u.After(now):
			delete(g.until, k)
		case u.After(until):
			until = u
		}
	}
	return until
}

// SearchChats implements model.LivePerson.
func (g *SearchGate) SearchChats(ctx context.Context, account string, from, to time.Time, keyword string) ([]model.ChatRecord, error) {
	recs, err := g.LivePerson.SearchChats(ctx, account, from, to, keyword)
	g.note(account, searchChats, err)
	return recs, err
}

// ChatByID implements model.LivePerson.
func (g *SearchGate) ChatByID(ctx context.Context, account, engagementID string, from, to time.Time) (model.ChatRecord, bool, error) {
	rec, found, err := g.LivePerson.ChatByID(ctx, account, engagementID, from, to)
	g.note(account, searchChats, err)
	return rec, found, err
}

// SearchConversations implements model.LivePerson.
func (g *SearchGate) SearchConversations(ctx context.Context, account string, from, to time.Time, sde model.SDESearch) ([]model.ConversationRecord, error) {
	recs, err := g.LivePerson.SearchConversations(ctx, account, from, to, sde)
	g.note(account, searchMessaging, err)
	return recs, err
}

// ConversationsByConsumer implements model.LivePerson.
func (g *SearchGate) ConversationsByConsumer(ctx context.Context, account, consumerID string) ([]model.ConversationRecord, error) {
	recs, err := g.LivePerson.ConversationsByConsumer(ctx, account, consumerID)
	g.note(account, searchMessaging, err)
	return recs, err
}

// ConversationsByID implements model.LivePerson.
func (g *SearchGate) ConversationsByID(ctx context.Context, account string, ids []string) ([]model.ConversationRecord, error) {
	recs, err := g.LivePerson.ConversationsByID(ctx, account, ids)
	g.note(account, searchMessaging, err)
	return recs, err
}

// holdSearch holds the resolve step of snap while the gate closes a search it needs, and
// reports whether it did: the erasure is left as it is, still due, with no write.
func (p *Pipeline) holdSearch(ctx context.Context, snap *snapshot) bool {
	g, ok := p.lp.(*SearchGate)
	if !ok {
		return false
	}
	until := g.Closed(snap.r.AccountID, snap.r.Channels, p.now())
	return !until.IsZero() && HoldTask(ctx, until)
}

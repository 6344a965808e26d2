package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeLivePerson is an in-memory LivePerson with deletion requests whose status tests set, and
// switches that make calls fail the ways LivePerson can. Its keyword search is deliberately
// fuzzy (substring, case-insensitive), like LivePerson's, so exact matching is on us.
//
// Records are returned as stored: a test that stores a record with Masked but without
// ContentRead gets exactly that back. Deletion (advance to DONE) masks a record the way
// LivePerson does: the record stays, with its start and consumer participants, its content read
// and masked.
type fakeLivePerson struct {
	mu        sync.Mutex
	chats     []ChatRecord
	convs     []ConversationRecord
	requests  []Deletion
	nextID    int64
	quota     int // creates allowed; 0 = unlimited
	created   int
	bodies    []string // every created request's body, kind:sorted ids
	createErr error    // returned by the next CreateDeletion (after creating, for ErrOutcomeUnknown)
	searchErr error    // returned by every search while set
	rejectIDs map[string]bool
	// unauth holds unauthenticated engagement attributes by conversation id (in the record's
	// CustomerIDs, Emails and Phones); they are searched like the authenticated ones and
	// returned apart from them (UnauthCustomerIDs, UnauthEmails, UnauthPhones), as the port
	// promises.
	unauth map[string]ConversationRecord
	// Reads by id return a record with its content (ContentRead) unless its id is in unread:
	// then without (as a client that did not ask for transcripts or messages would), or in
	// flaggedUnread: without, yet flagged Masked (as an adapter that took "no unmasked line
	// seen" for masked would).
	unread, flaggedUnread map[string]bool
	// kept lists record ids whose content deletion leaves as it was (LivePerson said DONE but
	// the person's words are still there).
	kept map[string]bool
	// digitBlind makes Messaging Interactions find nothing for a phrase made of numbers with
	// more than three consecutive digits, as LivePerson documents it may.
	digitBlind bool
	// calls logs every search and read: "chat:<keyword>", "sde:<customerInfo>|<personalInfo>",
	// "consumer:<id>", "convs:<ids>".
	calls []string
	// gets counts GetDeletion calls.
	gets int
}

func newFakeLP() *fakeLivePerson {
	return &fakeLivePerson{nextID: 1000, rejectIDs: map[string]bool{}, unauth: map[string]ConversationRecord{},
		unread: map[string]bool{}, flaggedUnread: map[string]bool{}, kept: map[string]bool{}}
}

func (f *fakeLivePerson) logCall(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// searchCalls returns the logged calls that start with prefix, in order.
func (f *fakeLivePerson) searchCalls(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func fuzzy(hay []string, needle string) bool {
	n := strings.ToLower(strings.Trim(needle, `"`))
	for _, h := range hay {
		h = strings.ToLower(h)
		if strings.Contains(h, n) || strings.Contains(n, h) {
			return true
		}
	}
	return false
}

// chatsWhere returns the chats keep accepts, or the injected search error.
func (f *fakeLivePerson) chatsWhere(keep func(ChatRecord) bool) ([]ChatRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.searchErr != nil {
		return nil, f.searchErr
	}
	var out []ChatRecord
	for _, c := range f.chats {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// convsWhere returns the conversations keep accepts, or the injected search error.
func (f *fakeLivePerson) convsWhere(keep func(ConversationRecord) bool) ([]ConversationRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.searchErr != nil {
		return nil, f.searchErr
	}
	var out []ConversationRecord
	for _, c := range f.convs {
		if u, ok := f.unauth[c.ConversationID]; ok {
			c.UnauthCustomerIDs, c.UnauthEmails, c.UnauthPhones = u.CustomerIDs, u.Emails, u.Phones
		}
		if keep(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// readByID sets what a read by id of record id knows of its content.
func (f *fakeLivePerson) readByID(id string, contentRead, masked *bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.unread[id]:
		*contentRead, *masked = false, false
	case f.flaggedUnread[id]:
		*contentRead, *masked = false, true
	default:
		*contentRead = true
	}
}

func (f *fakeLivePerson) SearchChats(_ context.Context, _ string, from, to time.Time, kw string) ([]ChatRecord, error) {
	f.logCall("chat:%s", kw)
	return f.chatsWhere(func(c ChatRecord) bool {
		return !c.Start.Before(from) && c.Start.Before(to) && (fuzzy(c.CustomerIDs, kw) || fuzzy(c.Emails, kw) || fuzzy(c.Phones, kw))
	})
}

func (f *fakeLivePerson) ChatByID(_ context.Context, _ string, id string, from, to time.Time) (ChatRecord, bool, error) {
	found, err := f.chatsWhere(func(c ChatRecord) bool {
		return c.EngagementID == id && !c.Start.Before(from) && c.Start.Before(to)
	})
	if err != nil || len(found) == 0 {
		return ChatRecord{}, false, err
	}
	rec := found[0]
	f.readByID(id, &rec.ContentRead, &rec.Masked)
	return rec, true, nil
}

func (f *fakeLivePerson) SearchConversations(_ context.Context, _ string, from, to time.Time, sde SDESearch) ([]ConversationRecord, error) {
	f.logCall("sde:%s|%s", sde.CustomerInfo, sde.PersonalInfo)
	f.mu.Lock()
	blind := f.digitBlind
	f.mu.Unlock()
	return f.convsWhere(func(c ConversationRecord) bool {
		if c.Start.Before(from) || !c.Start.Before(to) || blind && possiblyUnsearchable(sde.CustomerInfo+sde.PersonalInfo) {
			return false
		}
		customerIDs := append(slices.Clone(c.CustomerIDs), c.UnauthCustomerIDs...)
		contacts := slices.Concat(c.Emails, c.Phones, c.UnauthEmails, c.UnauthPhones)
		return (sde.CustomerInfo != "" && fuzzy(customerIDs, sde.CustomerInfo)) ||
			(sde.PersonalInfo != "" && fuzzy(contacts, sde.PersonalInfo))
	})
}

func (f *fakeLivePerson) ConversationsByConsumer(_ context.Context, _ string, consumer string) ([]ConversationRecord, error) {
	f.logCall("consumer:%s", consumer)
	return f.convsWhere(func(c ConversationRecord) bool { return slices.Contains(c.ConsumerIDs, consumer) })
}

func (f *fakeLivePerson) ConversationsByID(_ context.Context, _ string, ids []string) ([]ConversationRecord, error) {
	f.logCall("convs:%s", strings.Join(ids, ","))
	recs, err := f.convsWhere(func(c ConversationRecord) bool { return slices.Contains(ids, c.ConversationID) })
	for i := range recs {
		f.readByID(recs[i].ConversationID, &recs[i].ContentRead, &recs[i].Masked)
	}
	return recs, err
}

func (f *fakeLivePerson) CreateDeletion(_ context.Context, _ string, kind TargetKind, ids []string) (Deletion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ids) == 0 || len(ids) > 100 {
		return Deletion{}, fmt.Errorf("%w: %d ids", ErrRejected, len(ids))
	}
	for _, id := range ids {
		if f.rejectIDs[id] {
			return Deletion{}, ErrRejected
		}
	}
	if f.quota > 0 && f.created >= f.quota {
		return Deletion{}, ErrQuotaExhausted
	}
	f.created++
	f.nextID++
	d := Deletion{ID: f.nextID, Status: LPNotStarted, Kind: kind, IDs: slices.Sorted(slices.Values(ids)), Created: time.Now()}
	f.requests = append(f.requests, d)
	f.bodies = append(f.bodies, fmt.Sprint(kind, ":", d.IDs))
	if err := f.createErr; err != nil {
		f.createErr = nil
		return Deletion{}, err // created, but the answer is lost
	}
	return d, nil
}

func (f *fakeLivePerson) ListDeletions(context.Context, string, time.Time, time.Time) ([]Deletion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests), nil
}

func (f *fakeLivePerson) GetDeletion(_ context.Context, _ string, id int64) (Deletion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	for _, d := range f.requests {
		if d.ID == id {
			return d, nil
		}
	}
	return Deletion{}, ErrRejected
}

func (f *fakeLivePerson) CancelDeletion(_ context.Context, _ string, id int64) (Deletion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.requests {
		if d.ID == id {
			if d.Status != LPNotStarted {
				return Deletion{}, ErrRejected
			}
			f.requests[i].Status = LPCanceled
			return f.requests[i], nil
		}
	}
	return Deletion{}, ErrRejected
}

// advance moves every request in status from to status to; with DONE it masks the records.
func (f *fakeLivePerson) advance(from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.requests {
		if d.Status != from {
			continue
		}
		f.requests[i].Status = to
		if to != LPDone {
			continue
		}
		for j := range f.chats {
			if c := f.chats[j]; d.Kind == KindEngagement && slices.Contains(d.IDs, c.EngagementID) && !f.kept[c.EngagementID] {
				f.chats[j] = ChatRecord{EngagementID: c.EngagementID, Start: c.Start, ContentRead: true, Masked: true}
			}
		}
		for j := range f.convs {
			if c := f.convs[j]; d.Kind == KindConversation && slices.Contains(d.IDs, c.ConversationID) && !f.kept[c.ConversationID] {
				f.convs[j] = ConversationRecord{ConversationID: c.ConversationID, Start: c.Start, ConsumerIDs: c.ConsumerIDs,
					ContentRead: true, Masked: true}
				delete(f.unauth, c.ConversationID)
			}
		}
	}
}

func (f *fakeLivePerson) createdBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bodies)
}

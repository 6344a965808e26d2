package lpsim

import (
	"net/http"
	"slices"
)

// msgSource checks the source parameter every Messaging Interactions
// method requires.
func msgSource(w http.ResponseWriter, r *http.Request) bool {
	src := r.URL.Query().Get("source")
	if src == "" || len(src) > maxSourceLen {
		badRequest(w, "source is required (at most 20 characters)")
		return false
	}
	return true
}

func statusSet(w http.ResponseWriter, status []string) (map[string]bool, bool) {
	set := map[string]bool{}
	for _, st := range status {
		if st != "OPEN" && st != "CLOSE" {
			badRequest(w, "status must be OPEN or CLOSE")
			return nil, false
		}
		set[st] = true
	}
	return set, true
}

// msgSearch is Messaging Interactions' conversations search.
func (s *Sim) msgSearch(w http.ResponseWriter, r *http.Request) {
	if !msgSource(w, r) {
		return
	}
	offset, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	var body struct {
		Start     *window           `json:"start"`
		Status    []string          `json:"status"`
		SdeSearch map[string]string `json:"sdeSearch"`
		Content   []string          `json:"contentToRetrieve"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	from, to, ok := checkStart(w, body.Start, s.cfg.Variants.msgWindow())
	if !ok {
		return
	}
	status, ok := statusSet(w, body.Status)
	if !ok {
		return
	}
	for k := range body.SdeSearch {
		if k != "customerInfo" && k != "personalInfo" {
			badRequest(w, "unsupported sdeSearch key")
			return
		}
	}
	v2 := r.URL.Query().Get("v") == "2"
	s.mu.Lock()
	now := s.clock.Now()
	hits := s.conversations(r, status, body.Content, func(c *Conversation) bool {
		if c.Start.Before(from) || c.Start.After(to) {
			return false
		}
		if len(body.SdeSearch) == 0 {
			return true
		}
		indexed := c.Start
		if c.Status == "CLOSE" {
			indexed = c.End
		}
		if indexed.Add(s.cfg.SearchLag).After(now) {
			return false
		}
		return sdeMatches(c, body.SdeSearch, v2)
	})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":                  metadata(len(hits), offset, limit, r.URL.String()),
		"conversationHistoryRecords": page(hits, offset, limit),
	})
}

// sdeMatches ORs the sdeSearch keys. Unauthenticated attributes are
// searched only by v=2 requests. A purely numeric value of more than three
// digits is never found, whether it is the phrase or the attribute: the
// limitation LivePerson documents.
func sdeMatches(c *Conversation, q map[string]string, v2 bool) bool {
	if c.Unauthenticated && !v2 {
		return false
	}
	searchable := func(vals ...string) []string {
		var out []string
		for _, v := range vals {
			if !unsearchableNumber(v) {
				out = append(out, v)
			}
		}
		return out
	}
	for k, phrase := range q {
		if unsearchableNumber(phrase) {
			continue
		}
		switch k {
		case "customerInfo":
			if fuzzyMatch(phrase, searchable(c.CustomerID)...) {
				return true
			}
		case "personalInfo":
			if fuzzyMatch(phrase, searchable(c.Name, c.Surname, c.Email, c.Phone)...) {
				return true
			}
		}
	}
	return false
}

// msgByConsumer is the conversations-by-consumer search (no time window).
func (s *Sim) msgByConsumer(w http.ResponseWriter, r *http.Request) {
	if !msgSource(w, r) {
		return
	}
	offset, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	var body struct {
		Consumer string   `json:"consumer"`
		Status   []string `json:"status"`
		Content  []string `json:"contentToRetrieve"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.Consumer == "" {
		badRequest(w, "consumer is required")
		return
	}
	status, ok := statusSet(w, body.Status)
	if !ok {
		return
	}
	s.mu.Lock()
	hits := s.conversations(r, status, body.Content, func(c *Conversation) bool {
		return c.ConsumerID == body.Consumer
	})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":                  metadata(len(hits), offset, limit, r.URL.String()),
		"conversationHistoryRecords": page(hits, offset, limit),
	})
}

// msgByID reads conversations by id (at most 100).
func (s *Sim) msgByID(w http.ResponseWriter, r *http.Request) {
	if !msgSource(w, r) {
		return
	}
	var body struct {
		ID      string   `json:"conversationId"`
		IDs     []string `json:"conversationIds"`
		Content []string `json:"contentToRetrieve"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	ids := body.IDs
	if body.ID != "" {
		ids = append(ids, body.ID)
	}
	if len(ids) == 0 || len(ids) > maxLimit {
		badRequest(w, "conversationId or 1 to 100 conversationIds required")
		return
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	s.mu.Lock()
	hits := s.conversations(r, nil, body.Content, func(c *Conversation) bool { return want[c.ID] })
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":                  metadata(len(hits), 0, len(hits), r.URL.String()),
		"conversationHistoryRecords": hits,
	})
}

// conversations renders the account's retained conversations that pass the
// status set (empty = any) and keep. Caller holds s.mu.
func (s *Sim) conversations(r *http.Request, status map[string]bool, content []string, keep func(*Conversation) bool) []map[string]any {
	acct, v2 := r.PathValue("acct"), r.URL.Query().Get("v") == "2"
	oldest := s.retainedFrom(s.clock.Now())
	var out []map[string]any
	for _, c := range s.sortedConversations() {
		if c.Account != acct || (len(status) > 0 && !status[c.Status]) || c.Start.Before(oldest) || !keep(c) {
			continue
		}
		out = append(out, s.conversationJSON(c, content, v2))
	}
	return out
}

// conversationJSON renders a conversation with the parts contentToRetrieve
// names (all of them when it names none). unAuthSdes exist only for v=2.
func (s *Sim) conversationJSON(c *Conversation, content []string, v2 bool) map[string]any {
	want := func(k string) bool { return len(content) == 0 || slices.Contains(content, k) }
	info := map[string]any{"conversationId": c.ID, "brandId": c.Account, "status": c.Status,
		"startTimeL": c.Start.UnixMilli(), "isPartial": false}
	if c.Status == "CLOSE" {
		info["endTimeL"] = c.End.UnixMilli()
	} else {
		info["endTimeL"] = -1
	}
	m := map[string]any{"info": info}
	if want("consumerParticipants") {
		p := map[string]any{"participantId": c.ConsumerID, "role": "CONSUMER"}
		if prof, ok := s.consumers[c.Account+"/"+c.ConsumerID]; ok {
			p["firstName"], p["lastName"], p["email"], p["phone"] = prof.FirstName, prof.LastName, prof.Email, prof.Phone
		}
		m[s.cfg.Quirks.ParticipantsKey] = []any{p}
	}
	auth, unauth := s.sdeEvents(c.attributes(), c.Start), []any{}
	if c.Unauthenticated {
		auth, unauth = unauth, auth
	}
	if want("sdes") {
		m["sdes"] = map[string]any{"events": auth}
	}
	if v2 && want("unAuthSdes") {
		m["unAuthSdes"] = map[string]any{"events": unauth}
	}
	if want("messageRecords") {
		m["messageRecords"] = s.messageRecordsJSON(c)
	}
	return m
}

// sortedChats returns the chats by start time (LivePerson's sort=start:asc).
// Caller holds s.mu.
func (s *Sim) sortedChats() []*Chat {
	if !s.chatsSorted {
		slices.SortStableFunc(s.chatOrder, func(a, b *Chat) int { return a.Start.Compare(b.Start) })
		s.chatsSorted = true
	}
	return s.chatOrder
}

// sortedConversations returns the conversations by start time. Caller holds s.mu.
func (s *Sim) sortedConversations() []*Conversation {
	if !s.convsSorted {
		slices.SortStableFunc(s.convOrder, func(a, b *Conversation) int { return a.Start.Compare(b.Start) })
		s.convsSorted = true
	}
	return s.convOrder
}

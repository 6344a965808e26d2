package lpsim

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// engSearch is Engagement History's interactions search.
func (s *Sim) engSearch(w http.ResponseWriter, r *http.Request) {
	acct := r.PathValue("acct")
	offset, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	var body struct {
		Start   *window `json:"start"`
		Keyword string  `json:"keyword"`
		Area    *struct {
			Types []string `json:"types"`
		} `json:"keyword_search_area"`
		EngagementID string `json:"engagementId"`
		Visitor      string `json:"visitor"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	from, to, ok := checkStart(w, body.Start, maxEngWindow)
	if !ok {
		return
	}
	var areas []string
	if body.Area != nil {
		areas = body.Area.Types
		for _, a := range areas {
			if !strings.HasPrefix(a, "ea.") && a != "transcript" {
				badRequest(w, "unknown keyword_search_area type")
				return
			}
		}
	}
	s.mu.Lock()
	now := s.clock.Now()
	var hits []map[string]any
	for _, c := range s.sortedChats() {
		if c.Account != acct || !c.Ended || c.Start.Before(from) || c.Start.After(to) ||
			c.Start.Before(now.Add(-s.cfg.Retention)) ||
			(body.EngagementID != "" && c.EngagementID != body.EngagementID) ||
			(body.Visitor != "" && c.VisitorID != body.Visitor) {
			continue
		}
		if body.Keyword != "" && (c.End.Add(s.cfg.SearchLag).After(now) || !chatMatches(c, body.Keyword, areas)) {
			continue
		}
		hits = append(hits, chatJSON(c))
	}
	s.mu.Unlock()
	if r.URL.Query().Get("sort") == "start:desc" {
		slices.Reverse(hits)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":                 metadata(len(hits), offset, limit, r.URL.String()),
		"interactionHistoryRecords": page(hits, offset, limit),
	})
}

func chatMatches(c *Chat, keyword string, areas []string) bool {
	if len(areas) == 0 {
		fields := append([]string{c.CustomerID, c.Name, c.Surname, c.Email, c.Phone}, c.Lines...)
		return fuzzyMatch(keyword, fields...)
	}
	for _, a := range areas {
		switch a {
		case "ea.customerInfo":
			if fuzzyMatch(keyword, c.CustomerID) {
				return true
			}
		case "ea.personalInfo":
			if fuzzyMatch(keyword, c.Name, c.Surname, c.Email, c.Phone) {
				return true
			}
		case "transcript":
			if fuzzyMatch(keyword, c.Lines...) {
				return true
			}
		}
	}
	return false
}

func chatJSON(c *Chat) map[string]any {
	lines := make([]any, len(c.Lines))
	for i, l := range c.Lines {
		by := "visitor"
		if i%2 == 1 {
			by = "agent"
		}
		at := c.Start.Add(time.Duration(i) * time.Minute)
		lines[i] = map[string]any{"timeL": at.UnixMilli(), "by": by, "source": by, "text": l}
	}
	return map[string]any{
		"info": map[string]any{"engagementId": c.EngagementID, "accountId": c.Account, "visitorId": c.VisitorID,
			"startTimeL": c.Start.UnixMilli(), "endTimeL": c.End.UnixMilli(), "startTime": c.Start.Format(time.RFC3339),
			"isPartial": false, "ended": c.Ended},
		"sdes":       map[string]any{"events": sdeEvents(c.CustomerID, c.Name, c.Surname, c.Email, c.Phone, c.Start)},
		"transcript": map[string]any{"lines": lines},
	}
}

// msgCommon checks what every Messaging Interactions method requires.
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
	from, to, ok := checkStart(w, body.Start, maxMsgWindow)
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
	s.mu.Lock()
	now := s.clock.Now()
	hits := s.conversations(r.PathValue("acct"), status, body.Content, func(c *Conversation) bool {
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
		return sdeMatches(c, body.SdeSearch)
	})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":                  metadata(len(hits), offset, limit, r.URL.String()),
		"conversationHistoryRecords": page(hits, offset, limit),
	})
}

// sdeMatches ORs the sdeSearch keys. A phrase with a run of more than three
// digits never matches: LivePerson cannot search such values.
func sdeMatches(c *Conversation, q map[string]string) bool {
	for k, phrase := range q {
		if longDigitRun(phrase) {
			continue
		}
		switch k {
		case "customerInfo":
			if fuzzyMatch(phrase, c.CustomerID) {
				return true
			}
		case "personalInfo":
			if fuzzyMatch(phrase, c.Name, c.Surname, c.Email, c.Phone) {
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
	hits := s.conversations(r.PathValue("acct"), status, body.Content, func(c *Conversation) bool {
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
	hits := s.conversations(r.PathValue("acct"), nil, body.Content, func(c *Conversation) bool { return want[c.ID] })
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":                  metadata(len(hits), 0, len(hits), r.URL.String()),
		"conversationHistoryRecords": hits,
	})
}

// conversations renders the account's retained conversations that pass the
// status set (empty = any) and keep. Caller holds s.mu.
func (s *Sim) conversations(acct string, status map[string]bool, content []string, keep func(*Conversation) bool) []map[string]any {
	now := s.clock.Now()
	var out []map[string]any
	for _, c := range s.sortedConversations() {
		if c.Account != acct || (len(status) > 0 && !status[c.Status]) || c.Start.Before(now.Add(-s.cfg.Retention)) || !keep(c) {
			continue
		}
		out = append(out, s.conversationJSON(c, content))
	}
	return out
}

func (s *Sim) conversationJSON(c *Conversation, content []string) map[string]any {
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
	if want("sdes") {
		m["sdes"] = map[string]any{"events": sdeEvents(c.CustomerID, c.Name, c.Surname, c.Email, c.Phone, c.Start)}
	}
	if want("messageRecords") {
		recs := make([]any, len(c.Messages))
		for i, msg := range c.Messages {
			by := "Consumer"
			if i%2 == 1 {
				by = "Agent"
			}
			recs[i] = map[string]any{"type": "TEXT_PLAIN", "sentBy": by,
				"messageData": map[string]any{"msg": map[string]any{"text": msg}}}
		}
		m["messageRecords"] = recs
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

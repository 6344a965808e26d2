package lpsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// engSearch is Engagement History's interactions search.
func (s *Sim) engSearch(w http.ResponseWriter, r *http.Request) {
	acct := r.PathValue("acct")
	if s.cfg.Variants.EngSourceRequired && !msgSource(w, r) {
		return
	}
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
		EngagementID json.RawMessage `json:"engagementId"`
		Visitor      string          `json:"visitor"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	engagementID, ok := s.engagementIDFilter(w, body.EngagementID, body.Area != nil)
	if !ok {
		return
	}
	from, to, ok := checkStart(w, body.Start, s.cfg.Variants.engWindow())
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
	oldest := s.retainedFrom(now)
	var hits []map[string]any
	for _, c := range s.sortedChats() {
		if c.Account != acct || !c.Ended || c.Start.Before(from) || c.Start.After(to) || c.Start.Before(oldest) ||
			(engagementID != "" && c.EngagementID != engagementID) ||
			(body.Visitor != "" && c.VisitorID != body.Visitor) {
			continue
		}
		if body.Keyword != "" && (c.End.Add(s.cfg.SearchLag).After(now) || !chatMatches(c, body.Keyword, areas)) {
			continue
		}
		hits = append(hits, s.chatJSON(c))
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

// engagementIDFilter reads the engagementId filter, which the documentation
// types as a number and whose keyword_search_area it marks required. The
// strict reading holds a client to both; the lenient one also takes a
// string and no area.
func (s *Sim) engagementIDFilter(w http.ResponseWriter, raw json.RawMessage, hasArea bool) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	strict := s.cfg.Variants.ByIDStrict
	if strict && !hasArea {
		badRequest(w, "keyword_search_area is required")
		return "", false
	}
	if raw[0] == '"' {
		var id string
		if strict || json.Unmarshal(raw, &id) != nil {
			badRequest(w, "engagementId must be a number")
			return "", false
		}
		return id, true
	}
	for _, b := range raw {
		if b < '0' || b > '9' {
			badRequest(w, "engagementId must be a number")
			return "", false
		}
	}
	return string(raw), true
}

// retainedFrom is the start of the oldest record LivePerson still keeps:
// 13 calendar months back, or Config.Retention when set.
func (s *Sim) retainedFrom(now time.Time) time.Time {
	if s.cfg.Retention > 0 {
		return now.Add(-s.cfg.Retention)
	}
	return monthsBack(now, 13)
}

// monthsBack steps n calendar months back from t, keeping the day of the
// month but clamping it to the last day of a shorter month: 31 March
// steps 13 months back to 28 (or 29) February, not to 3 March as AddDate
// overflows. The simulator so keeps every record a clamping backend keeps.
func monthsBack(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m-time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

func chatMatches(c *Chat, keyword string, areas []string) bool {
	var text []string
	for _, l := range c.Transcript {
		text = append(text, l.Text)
	}
	if len(areas) == 0 {
		return fuzzyMatch(keyword, append([]string{c.CustomerID, c.Name, c.Surname, c.Email, c.Phone}, text...)...)
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
			if fuzzyMatch(keyword, text...) {
				return true
			}
		}
	}
	return false
}

// chatJSON renders a chat; Engagement History always sends the transcript.
func (s *Sim) chatJSON(c *Chat) map[string]any {
	return map[string]any{
		"info": map[string]any{"engagementId": c.EngagementID, "accountId": c.Account, "visitorId": c.VisitorID,
			"startTimeL": c.Start.UnixMilli(), "endTimeL": c.End.UnixMilli(), "startTime": c.Start.Format(time.RFC3339),
			"isPartial": false, "ended": c.Ended},
		"sdes":       map[string]any{"events": s.sdeEvents(c.attributes(), c.Start)},
		"transcript": transcriptJSON(c),
	}
}

package liveperson

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxPageSize is the largest page both history APIs serve.
const MaxPageSize = 100

const (
	opEngSearch       = "engagements.search"
	partialRereads    = 3
	defaultKeywordMax = 200
)

// DefaultKeywordAreas are the engagement attribute areas a subject's
// identifier is searched in.
var DefaultKeywordAreas = []string{"ea.customerInfo", "ea.personalInfo"}

// EngagementQuery is one Engagement History search.
type EngagementQuery struct {
	From, To time.Time // required; at most MaxEngagementWindow apart once rounded
	Keyword  string    // optional; sent as one phrase in double quotes
	Areas    []string  // keyword_search_area types; default DefaultKeywordAreas
	// EngagementID is an optional filter: decimal digits, sent as a number.
	EngagementID string
	VisitorID    string // optional filter ("visitor")
}

// Engagement is a chat as Engagement History returns it.
type Engagement struct {
	EngagementID string
	AccountID    string
	VisitorID    string
	Start, End   time.Time
	Ended        bool
	Partial      bool // LivePerson returned a partial record
	// Attributes holds the values of both sdes and unAuthSdes; Unauth those
	// of unAuthSdes alone.
	Attributes
	Unauth Attributes
	// ContentRead is true when the answer carried the transcript.
	ContentRead bool
	Transcript  []Line
}

// Masked reports whether LivePerson has masked the chat: its transcript was
// read, and every consumer-authored line and every attribute value shows the
// deletion mask. Agent and system lines may stay; a chat read without its
// transcript is never Masked.
func (e Engagement) Masked() bool { return contentMasked(e.ContentRead, e.Transcript, e.Attributes) }

// SearchEngagements returns every chat matching q, all pages read. Records
// LivePerson marks partial are re-read by engagement id; a result flagged
// partial is retried. LivePerson's keyword match is fuzzy: callers must filter
// the records for an exact match themselves.
func (c *Client) SearchEngagements(ctx context.Context, account string, q EngagementQuery) ([]Engagement, error) {
	body, err := engagementBody(q)
	if err != nil {
		return nil, err
	}
	var out []Engagement
	for offset := 0; ; {
		page, count, err := c.engagementPage(ctx, account, body, offset)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		offset += len(page)
		if len(out) > c.maxResults {
			return nil, &Error{Kind: KindTerminal, Service: ServiceEngagements, Op: opEngSearch,
				Reason: "too many results; narrow the search"}
		}
		if len(page) == 0 || offset >= count {
			break
		}
	}
	for i := range out {
		if out[i].Partial {
			full, err := c.rereadEngagement(ctx, account, q, out[i].EngagementID)
			if err != nil {
				return nil, err
			}
			out[i] = full
		}
	}
	return out, nil
}

func (c *Client) rereadEngagement(ctx context.Context, account string, q EngagementQuery, id string) (Engagement, error) {
	body, err := engagementBody(EngagementQuery{From: q.From, To: q.To, EngagementID: id})
	if err != nil {
		return Engagement{}, err
	}
	for range partialRereads {
		page, _, err := c.engagementPage(ctx, account, body, 0)
		if err != nil {
			return Engagement{}, err
		}
		for _, e := range page {
			if e.EngagementID == id && !e.Partial {
				return e, nil
			}
		}
	}
	return Engagement{}, &Error{Kind: KindRetryable, Service: ServiceEngagements, Op: opEngSearch,
		Reason: "record stays partial"}
}

func (c *Client) engagementPage(ctx context.Context, account string, body []byte, offset int) ([]Engagement, int, error) {
	var page []Engagement
	var count int
	err := c.do(ctx, request{
		service: ServiceEngagements, op: opEngSearch, account: account, method: http.MethodPost,
		path: "/interaction_history/api/account/" + url.PathEscape(account) + "/interactions/search",
		query: url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(MaxPageSize)},
			"sort": {"start:asc"}, "source": {c.source}},
		body: body, contentType: "application/json",
		decode: func(_ int, b []byte) error {
			var err error
			page, count, err = decodeEngagements(b)
			return err
		},
	})
	return page, count, err
}

func engagementBody(q EngagementQuery) ([]byte, error) {
	if err := checkWindow(ServiceEngagements, opEngSearch, q.From, q.To, MaxEngagementWindow); err != nil {
		return nil, err
	}
	m := map[string]any{"start": window(q.From, q.To)}
	areas := q.Areas
	if len(areas) == 0 {
		areas = DefaultKeywordAreas
	}
	if q.Keyword != "" {
		phrase, err := quote(ServiceEngagements, opEngSearch, q.Keyword)
		if err != nil {
			return nil, err
		}
		m["keyword"] = phrase
		m["keyword_search_area"] = map[string]any{"types": areas}
	}
	if q.EngagementID != "" {
		// The id is typed numeric, and the search area is marked required
		// even without a keyword.
		if !decimal(q.EngagementID) {
			return nil, invalid(ServiceEngagements, opEngSearch, "engagement id is not a decimal number")
		}
		m["engagementId"] = json.Number(q.EngagementID)
		m["keyword_search_area"] = map[string]any{"types": areas}
	}
	if q.VisitorID != "" {
		m["visitor"] = q.VisitorID
	}
	return json.Marshal(m)
}

// decimal reports whether s is a JSON integer literal: digits, no sign, no
// leading zero. Engagement ids are sent as numbers with all their digits.
func decimal(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// quote makes a value one search phrase. A value holding a double quote cannot
// be expressed as one phrase, so it is refused rather than half-searched.
func quote(service, op, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || strings.ContainsRune(v, '"') || len(v) > defaultKeywordMax {
		return "", invalid(service, op, "value cannot be searched as one phrase")
	}
	return `"` + v + `"`, nil
}

type ehResponse struct {
	Metadata metadata   `json:"_metadata"`
	Records  []ehRecord `json:"interactionHistoryRecords"`
}

type ehRecord struct {
	Info *struct {
		EngagementID flexString `json:"engagementId"`
		AccountID    flexString `json:"accountId"`
		VisitorID    flexString `json:"visitorId"`
		StartTimeL   millis     `json:"startTimeL"`
		EndTimeL     millis     `json:"endTimeL"`
		IsPartial    bool       `json:"isPartial"`
		Ended        *bool      `json:"ended"`
	} `json:"info"`
	SDEs       *sdes           `json:"sdes"`
	UnAuthSDEs *sdes           `json:"unAuthSdes"`
	Transcript json.RawMessage `json:"transcript"`
}

// decodeEngagements decodes one Engagement History page. It returns
// errPartial when LivePerson flags the result as incomplete.
func decodeEngagements(b []byte) ([]Engagement, int, error) {
	var r ehResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, 0, err
	}
	if r.Metadata.partial() {
		return nil, 0, errPartial
	}
	out := make([]Engagement, 0, len(r.Records))
	for _, rec := range r.Records {
		if rec.Info == nil || rec.Info.EngagementID == "" {
			return nil, 0, errMissingID
		}
		unauth := rec.UnAuthSDEs.attributes()
		lines, read := chatLines(rec.Transcript)
		e := Engagement{
			EngagementID: string(rec.Info.EngagementID), AccountID: string(rec.Info.AccountID),
			VisitorID: string(rec.Info.VisitorID), Start: rec.Info.StartTimeL.time(), End: rec.Info.EndTimeL.time(),
			Ended: rec.Info.Ended == nil || *rec.Info.Ended, Partial: rec.Info.IsPartial,
			Attributes: rec.SDEs.attributes().merge(unauth), Unauth: unauth,
			ContentRead: read, Transcript: lines,
		}
		out = append(out, e)
	}
	return out, max(r.Metadata.Count, len(out)), nil
}

package liveperson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// DeletionKind is the one kind of ids a deletion request holds.
type DeletionKind string

// The deletion kinds erasured uses (ticketing is out of scope).
const (
	KindEngagement   DeletionKind = "engagement"
	KindConversation DeletionKind = "conversation"
	KindConsumer     DeletionKind = "consumer"
)

// Deletion request statuses.
const (
	StatusNotStarted = "NOT_STARTED"
	StatusInProgress = "IN_PROGRESS"
	StatusCanceled   = "CANCELED"
	StatusDone       = "DONE"
)

// MaxDeletionIDs bounds one deletion request.
const MaxDeletionIDs = 100

const (
	opCreate = "deletion.create"
	opGet    = "deletion.get"
	opList   = "deletion.list"
	opCancel = "deletion.cancel"
	opToken  = "token"
)

// DeletionRequest is a Personal Data Deletion request as LivePerson reports it.
// Get and list answers document only request_id, siteId, request_time,
// requested_by and status; the other fields may be empty.
type DeletionRequest struct {
	ID              string // request_id (a number at LivePerson, kept as its decimal text)
	SiteID          string
	RequestTime     time.Time
	RequestedBy     string // requested_by: the user or application that created it
	Status          string // empty on the create response
	DeleteJSON      string // the body LivePerson recorded, when it echoes it
	IsCanceled      bool
	CancelledBy     string
	CancelTimestamp time.Time
}

// ErrNotEchoed: LivePerson's answer did not echo the request's body
// (delete_json), so its kind and ids are unknown.
var ErrNotEchoed = errors.New("liveperson: delete_json not returned")

// Echoed reports whether LivePerson echoed the request's body (delete_json).
// Without it a request cannot be matched against an intent by its ids.
func (r DeletionRequest) Echoed() bool { return r.DeleteJSON != "" }

// Targets decodes DeleteJSON into its kind and sorted ids, so that a request
// whose creation outcome was unknown can be matched against the intent. It
// returns ErrNotEchoed when LivePerson did not return the body, and another
// error when the body is not one kind of ids.
func (r DeletionRequest) Targets() (DeletionKind, []string, error) {
	if !r.Echoed() {
		return "", nil, ErrNotEchoed
	}
	var m map[string][]string
	if err := json.Unmarshal([]byte(r.DeleteJSON), &m); err != nil || len(m) != 1 {
		return "", nil, errors.New("liveperson: delete_json is not one kind of ids")
	}
	for k, ids := range m {
		sorted := append([]string(nil), ids...)
		sort.Strings(sorted)
		return DeletionKind(k), sorted, nil
	}
	return "", nil, nil
}

// DeletionBody is the exact body Create sends for kind and ids: ids sorted,
// so that one intent always produces one body.
func DeletionBody(kind DeletionKind, ids []string) ([]byte, error) {
	switch kind {
	case KindEngagement, KindConversation, KindConsumer:
	default:
		return nil, invalid(ServiceDeletion, opCreate, "unknown deletion kind")
	}
	uniq, err := uniqueIDs(ServiceDeletion, opCreate, ids, false)
	if err != nil {
		return nil, err
	}
	sort.Strings(uniq)
	return json.Marshal(map[string][]string{string(kind): uniq})
}

// uniqueIDs checks 1..100 non-empty ids. Duplicates are an error for a
// deletion (LivePerson refuses them) and dropped for a lookup.
func uniqueIDs(service, op string, ids []string, dedupe bool) ([]string, error) {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id == "" {
			return nil, invalid(service, op, "empty id")
		}
		if seen[id] {
			if dedupe {
				continue
			}
			return nil, invalid(service, op, "duplicate id")
		}
		seen[id] = true
		out = append(out, id)
	}
	if len(out) == 0 || len(out) > MaxDeletionIDs {
		return nil, invalid(service, op, "between 1 and 100 ids required")
	}
	return out, nil
}

// CreateDeletion asks LivePerson to delete ids of one kind. It is never
// retried: every 201 costs monthly quota and the API is not idempotent. A
// failure after the request may have been sent returns KindOutcomeUnknown; the
// caller must list requests and match DeleteJSON before sending again. A 429
// returns KindQuotaExhausted.
func (c *Client) CreateDeletion(ctx context.Context, account string, kind DeletionKind, ids []string) (DeletionRequest, error) {
	body, err := DeletionBody(kind, ids)
	if err != nil {
		return DeletionRequest{}, err
	}
	var out DeletionRequest
	err = c.do(ctx, request{
		service: ServiceDeletion, op: opCreate, account: account, method: http.MethodPost,
		path: deletionPath(account, ""), body: body, contentType: "application/json", unsafe: true,
		decode: func(_ int, b []byte) error {
			rs, err := decodeDeletions(b)
			if err != nil || len(rs) != 1 || rs[0].ID == "" {
				return errMissingID
			}
			out = rs[0]
			return nil
		},
	})
	return out, err
}

// GetDeletion reads one request by id.
func (c *Client) GetDeletion(ctx context.Context, account, id string) (DeletionRequest, error) {
	if id == "" {
		return DeletionRequest{}, invalid(ServiceDeletion, opGet, "request id required")
	}
	var out DeletionRequest
	err := c.do(ctx, request{
		service: ServiceDeletion, op: opGet, account: account, method: http.MethodGet,
		path: deletionPath(account, id),
		decode: func(_ int, b []byte) error {
			rs, err := decodeDeletions(b)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.ID == id {
					out = r
					return nil
				}
			}
			return errMissingID
		},
	})
	return out, err
}

// DeletionFilter narrows ListDeletions. Zero fields are not sent.
type DeletionFilter struct {
	Status           string
	FromDate, ToDate time.Time // sent as yyyy-mm-dd (UTC)
}

// ListDeletions lists the account's deletion requests.
func (c *Client) ListDeletions(ctx context.Context, account string, f DeletionFilter) ([]DeletionRequest, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if !f.FromDate.IsZero() {
		q.Set("fromDate", f.FromDate.UTC().Format(time.DateOnly))
	}
	if !f.ToDate.IsZero() {
		q.Set("toDate", f.ToDate.UTC().Format(time.DateOnly))
	}
	var out []DeletionRequest
	err := c.do(ctx, request{
		service: ServiceDeletion, op: opList, account: account, method: http.MethodGet,
		path: deletionPath(account, ""), query: q,
		decode: func(_ int, b []byte) error {
			var err error
			out, err = decodeDeletions(b)
			return err
		},
	})
	return out, err
}

// CancelDeletion cancels a request still NOT_STARTED. Like create it is not
// retried once sent: an unknown outcome is KindOutcomeUnknown, to be settled
// with GetDeletion.
func (c *Client) CancelDeletion(ctx context.Context, account, id string) (DeletionRequest, error) {
	if id == "" {
		return DeletionRequest{}, invalid(ServiceDeletion, opCancel, "request id required")
	}
	var out DeletionRequest
	err := c.do(ctx, request{
		service: ServiceDeletion, op: opCancel, account: account, method: http.MethodPost,
		path: deletionPath(account, id) + "/cancel", unsafe: true,
		decode: func(_ int, b []byte) error {
			rs, err := decodeDeletions(b)
			if err != nil || len(rs) == 0 {
				return errMissingID
			}
			out = rs[0]
			return nil
		},
	})
	return out, err
}

func deletionPath(account, id string) string {
	p := "/api/account/" + url.PathEscape(account) + "/personal-data-deletion"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

type deletionJSON struct {
	RequestID       flexString  `json:"request_id"`
	SiteIDLower     flexString  `json:"siteid"`
	SiteIDCamel     flexString  `json:"siteId"`
	RequestTime     flexString  `json:"request_time"`
	RequestedBy     flexString  `json:"requested_by"`
	Status          flexString  `json:"status"`
	DeleteJSON      rawOrString `json:"delete_json"`
	IsCanceled      flexString  `json:"is_canceled"`
	CancelledBy     flexString  `json:"cancelled_by"`
	CancelTimestamp flexString  `json:"cancel_timestamp"`
}

// rawOrString takes delete_json as documented (a JSON string holding JSON) or
// as an embedded object.
type rawOrString string

func (r *rawOrString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		*r = rawOrString(b)
		return nil
	}
	var f flexString
	err := f.UnmarshalJSON(b)
	*r = rawOrString(f)
	return err
}

// decodeDeletions decodes a create, get, list or cancel answer: an array of
// requests or a single object. One odd entry does not make the whole answer
// unreadable: a field that cannot be read is left empty (an entry that is not
// an object at all is kept with every field empty), so that a list still
// shows every request whose id it can tell.
func decodeDeletions(b []byte) ([]DeletionRequest, error) {
	b = bytes.TrimSpace(b)
	var entries []json.RawMessage
	if len(b) > 0 && b[0] == '{' {
		entries = []json.RawMessage{b}
	} else if err := json.Unmarshal(b, &entries); err != nil {
		return nil, err
	}
	out := make([]DeletionRequest, 0, len(entries))
	for _, e := range entries {
		d := decodeDeletionEntry(e)
		site := d.SiteIDLower
		if site == "" {
			site = d.SiteIDCamel
		}
		out = append(out, DeletionRequest{
			ID: string(d.RequestID), SiteID: string(site), RequestTime: parseTime(string(d.RequestTime)),
			RequestedBy: string(d.RequestedBy), Status: string(d.Status), DeleteJSON: string(d.DeleteJSON),
			IsCanceled: d.IsCanceled == "true", CancelledBy: string(d.CancelledBy),
			CancelTimestamp: parseTime(string(d.CancelTimestamp)),
		})
	}
	return out, nil
}

// decodeDeletionEntry reads one request, field by field when the entry as a
// whole does not decode.
func decodeDeletionEntry(e json.RawMessage) deletionJSON {
	var d deletionJSON
	if json.Unmarshal(e, &d) == nil {
		return d
	}
	var raw struct {
		RequestID       json.RawMessage `json:"request_id"`
		SiteIDLower     json.RawMessage `json:"siteid"`
		SiteIDCamel     json.RawMessage `json:"siteId"`
		RequestTime     json.RawMessage `json:"request_time"`
		RequestedBy     json.RawMessage `json:"requested_by"`
		Status          json.RawMessage `json:"status"`
		DeleteJSON      json.RawMessage `json:"delete_json"`
		IsCanceled      json.RawMessage `json:"is_canceled"`
		CancelledBy     json.RawMessage `json:"cancelled_by"`
		CancelTimestamp json.RawMessage `json:"cancel_timestamp"`
	}
	d = deletionJSON{}
	if json.Unmarshal(e, &raw) != nil {
		return d
	}
	field := func(dst *flexString, b json.RawMessage) {
		if len(b) > 0 && dst.UnmarshalJSON(b) != nil {
			*dst = ""
		}
	}
	field(&d.RequestID, raw.RequestID)
	field(&d.SiteIDLower, raw.SiteIDLower)
	field(&d.SiteIDCamel, raw.SiteIDCamel)
	field(&d.RequestTime, raw.RequestTime)
	field(&d.RequestedBy, raw.RequestedBy)
	field(&d.Status, raw.Status)
	field(&d.IsCanceled, raw.IsCanceled)
	field(&d.CancelledBy, raw.CancelledBy)
	field(&d.CancelTimestamp, raw.CancelTimestamp)
	if len(raw.DeleteJSON) > 0 && d.DeleteJSON.UnmarshalJSON(raw.DeleteJSON) != nil {
		d.DeleteJSON = ""
	}
	return d
}

// parseTime reads LivePerson's timestamps: RFC 3339 text, or epoch millis
// (the docs warn formats may change). Unreadable → zero.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02 15:04:05", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	var m millis
	if m.UnmarshalJSON([]byte(s)) == nil {
		return m.time()
	}
	return time.Time{}
}

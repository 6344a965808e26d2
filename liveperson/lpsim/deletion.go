package lpsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Deletion is a Personal Data Deletion request held by the simulator.
type Deletion struct {
	ID          int64
	Account     string
	Kind        string
	IDs         []string
	Body        string // delete_json: the body as received
	RequestedBy string
	Created     time.Time
	Canceled    bool
	CanceledAt  time.Time
	Applied     bool // masking done
	// Recorded is when LivePerson has processed the create: list and get show
	// the request only from then (FaultSlowCreate). Created otherwise.
	Recorded time.Time
}

// status derives the lifecycle from the sim clock: NOT_STARTED during the
// cancel window, then IN_PROGRESS for DeletionTime, then DONE.
func (s *Sim) status(d *Deletion, now time.Time) string {
	switch {
	case d.Canceled:
		return "CANCELED"
	case now.Before(d.Created.Add(s.cfg.CancelWindow)):
		return "NOT_STARTED"
	case now.Before(d.Created.Add(s.cfg.CancelWindow + s.cfg.DeletionTime)):
		return "IN_PROGRESS"
	}
	return "DONE"
}

// advance applies the masking of every request that has become DONE. It runs
// lazily before each request and inspection, so no goroutine drives the
// clock. Caller holds s.mu.
func (s *Sim) advance() {
	now := s.clock.Now()
	for _, d := range s.deletions {
		if d.Applied || s.status(d, now) != "DONE" {
			continue
		}
		d.Applied = true
		for _, id := range d.IDs {
			switch d.Kind {
			case "engagement":
				if c, ok := s.chats[id]; ok && c.Account == d.Account {
					maskAll(&c.CustomerID, &c.Name, &c.Surname, &c.Email, &c.Phone)
					s.maskTranscript(c.Transcript)
				}
			case "conversation":
				if c, ok := s.convs[id]; ok && c.Account == d.Account {
					maskAll(&c.CustomerID, &c.Name, &c.Surname, &c.Email, &c.Phone)
					s.maskTranscript(c.Transcript)
				}
			case "consumer":
				// Consumer deletion masks the consumer's profile, not the
				// conversations: those need their own request.
				if p, ok := s.consumers[d.Account+"/"+id]; ok {
					maskAll(&p.FirstName, &p.LastName, &p.Email, &p.Phone)
				}
			}
		}
	}
}

// Deletions returns copies of the account's deletion requests, oldest first.
func (s *Sim) Deletions(account string) []Deletion {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	var out []Deletion
	for _, d := range s.deletions {
		if account == "" || d.Account == account {
			c := *d
			c.IDs = append([]string(nil), d.IDs...)
			out = append(out, c)
		}
	}
	return out
}

// DeletionStatus returns the current status of a request ("" if unknown).
func (s *Sim) DeletionStatus(id int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deletions {
		if d.ID == id {
			return s.status(d, s.clock.Now())
		}
	}
	return ""
}

func (s *Sim) delCreate(w http.ResponseWriter, r *http.Request) {
	acct := r.PathValue("acct")
	raw, _ := readAll(r)
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || len(body) != 1 {
		badRequest(w, "body must hold exactly one of engagement, conversation, consumer")
		return
	}
	var kind string
	var ids []string
	for k, v := range body {
		kind = k
		if err := json.Unmarshal(v, &ids); err != nil {
			badRequest(w, "ids must be an array of strings")
			return
		}
	}
	switch kind {
	case "engagement", "conversation", "consumer":
	case "ticketing":
		badRequest(w, "account is not a ticketing account")
		return
	default:
		badRequest(w, "unknown deletion type")
		return
	}
	if len(ids) == 0 || len(ids) > 100 {
		badRequest(w, "between 1 and 100 ids required")
		return
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			badRequest(w, "ids must be unique and non-empty")
			return
		}
		seen[id] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if kind == "conversation" {
			if c, ok := s.convs[id]; ok && c.Account == acct && c.Status != "CLOSE" {
				badRequest(w, "only closed conversations can be deleted")
				return
			}
		}
		if kind == "engagement" {
			if c, ok := s.chats[id]; ok && c.Account == acct && !c.Ended {
				badRequest(w, "only ended chats can be deleted")
				return
			}
		}
	}
	now := s.clock.Now()
	a := s.accounts[acct]
	used := 0
	for _, d := range s.deletions {
		if d.Account == acct && d.Created.Year() == now.Year() && d.Created.Month() == now.Month() {
			used++
		}
	}
	if used >= a.MonthlyQuota {
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "Requests threshold for current month was reached"})
		return
	}
	d := &Deletion{ID: s.nextReq, Account: acct, Kind: kind, IDs: ids, Body: compact(raw),
		RequestedBy: principal(r), Created: now, Recorded: now}
	if slow, ok := recordDelay(r); ok {
		d.Recorded = now.Add(slow.delay)
		slow.until = d.Recorded
	}
	s.nextReq++
	s.deletions = append(s.deletions, d)
	s.created[canonicalBody(kind, ids)]++
	writeJSON(w, http.StatusCreated, s.deletionJSON(d, answerCreate))
}

// listed reports whether LivePerson shows request d at now: once it has
// recorded it.
func listed(d *Deletion, now time.Time) bool { return !now.Before(d.Recorded) }

func (s *Sim) delList(w http.ResponseWriter, r *http.Request) {
	acct := r.PathValue("acct")
	q := r.URL.Query()
	st := q.Get("status")
	switch st {
	case "", "NOT_STARTED", "IN_PROGRESS", "CANCELED", "DONE":
	default:
		badRequest(w, "bad status")
		return
	}
	var from, to time.Time
	var err error
	if v := q.Get("fromDate"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			badRequest(w, "fromDate must be yyyy-mm-dd")
			return
		}
	}
	if v := q.Get("toDate"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			badRequest(w, "toDate must be yyyy-mm-dd")
			return
		}
		to = to.Add(24 * time.Hour) // the whole day
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, d := range s.deletions {
		if d.Account != acct || !listed(d, s.clock.Now()) || (st != "" && s.status(d, s.clock.Now()) != st) ||
			(!from.IsZero() && d.Created.Before(from)) || (!to.IsZero() && !d.Created.Before(to)) {
			continue
		}
		out = append(out, s.deletionJSON(d, answerRead))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) find(w http.ResponseWriter, r *http.Request) *Deletion {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err == nil {
		for _, d := range s.deletions {
			if d.ID == id && d.Account == r.PathValue("acct") && listed(d, s.clock.Now()) {
				return d
			}
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "request not found"})
	return nil
}

func (s *Sim) delGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.find(w, r)
	if d == nil {
		return
	}
	if s.cfg.Quirks.GetByIDObject {
		writeJSON(w, http.StatusOK, s.deletionJSON(d, answerRead))
		return
	}
	writeJSON(w, http.StatusOK, []any{s.deletionJSON(d, answerRead)})
}

// delCancel cancels a request still in its cancel window.
func (s *Sim) delCancel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.find(w, r)
	if d == nil {
		return
	}
	if s.status(d, s.clock.Now()) != "NOT_STARTED" {
		badRequest(w, "request can no longer be canceled")
		return
	}
	d.Canceled, d.CanceledAt = true, s.clock.Now()
	writeJSON(w, http.StatusOK, []any{s.deletionJSON(d, answerCancel)})
}

// Which answer a deletion request is rendered for.
const (
	answerCreate = iota // 201 of create: everything, delete_json included, no status
	answerRead          // get and list
	answerCancel        // cancel
)

// deletionJSON renders a request. Get and list document only request_id,
// siteId, request_time, requested_by and status: in the create-only reading
// that is all they answer, and cancel adds only its own fields.
func (s *Sim) deletionJSON(d *Deletion, answer int) map[string]any {
	m := map[string]any{
		"request_id": d.ID, s.cfg.Quirks.SiteIDKey: d.Account, "request_time": d.Created.Format("2006-01-02T15:04:05.000Z"),
		"requested_by": d.RequestedBy,
	}
	if s.cfg.Quirks.RequestIDAsText {
		m["request_id"] = strconv.FormatInt(d.ID, 10)
	}
	if answer != answerCreate {
		m["status"] = s.status(d, s.clock.Now())
	}
	full := answer == answerCreate || s.cfg.Variants.DeleteJSON != DeleteJSONCreateOnly
	if full {
		m["delete_json"] = d.Body
		if s.cfg.Quirks.DeleteJSONObject {
			m["delete_json"] = json.RawMessage(d.Body)
		}
	}
	if full || answer == answerCancel {
		m["is_canceled"], m["cancelled_by"], m["cancel_timestamp"] = d.Canceled, nil, nil
		if d.Canceled {
			m["cancelled_by"] = d.RequestedBy
			m["cancel_timestamp"] = d.CanceledAt.Format("2006-01-02T15:04:05.000Z")
		}
	}
	return m
}

func readAll(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}

func compact(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

package lpsim

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Search windows: a month is 30 days, three months 90 (the client's reading).
const (
	maxEngWindow = 30 * 24 * time.Hour
	maxMsgWindow = 90 * 24 * time.Hour
	maxLimit     = 100
	maxSourceLen = 20
)

// tokens splits s into lowercase letter/digit runs.
func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func longDigitRun(s string) bool {
	run := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if run++; run > 3 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// fuzzyMatch imitates LivePerson's keyword search: tokenised, case
// insensitive and partial. A query token hits a field token when either is a
// prefix of the other (at least two characters shared) or equals it, and a record matches
// when at least 60% of the query tokens hit. So "ABC-123" finds "ABC-1234",
// and "jane.doe@example.com" finds "john.doe@example.com": exact filtering
// is the client's job.
func fuzzyMatch(query string, fields ...string) bool {
	q := tokens(strings.Trim(strings.TrimSpace(query), `"`))
	if len(q) == 0 {
		return false
	}
	var t []string
	for _, f := range fields {
		t = append(t, tokens(f)...)
	}
	hits := 0
	for _, qt := range q {
		for _, ft := range t {
			short := min(len(qt), len(ft))
			if qt == ft || short >= 2 && (strings.HasPrefix(ft, qt) || strings.HasPrefix(qt, ft)) {
				hits++
				break
			}
		}
	}
	return hits >= int(math.Ceil(0.6*float64(len(q))))
}

type window struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// pageParams reads offset and limit; limit over 100 is a 400.
func pageParams(w http.ResponseWriter, r *http.Request) (offset, limit int, ok bool) {
	q := r.URL.Query()
	offset, limit = 0, 50
	var err error
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			badRequest(w, "bad offset")
			return 0, 0, false
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxLimit {
			badRequest(w, "limit must be 1 to 100")
			return 0, 0, false
		}
	}
	return offset, limit, true
}

// checkStart validates the required start window.
func checkStart(w http.ResponseWriter, st *window, max time.Duration) (from, to time.Time, ok bool) {
	if st == nil || st.From == 0 || st.To == 0 {
		badRequest(w, "start is required")
		return from, to, false
	}
	from, to = time.UnixMilli(st.From), time.UnixMilli(st.To)
	if !to.After(from) {
		badRequest(w, "start.to must be after start.from")
		return from, to, false
	}
	if to.Sub(from) > max {
		badRequest(w, "time range too long")
		return from, to, false
	}
	return from, to, true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		badRequest(w, "malformed JSON body")
		return false
	}
	return true
}

func metadata(count, offset, limit int, self string) map[string]any {
	md := map[string]any{
		"count": count,
		"self":  map[string]string{"rel": "self", "href": self},
		// LivePerson's next links point at localhost; ours do too, so that a
		// client following them instead of computing offsets fails.
		"shardsStatusResult": map[string]any{"partialResult": false},
	}
	if offset+limit < count {
		md["next"] = map[string]string{"rel": "next",
			"href": "http://localhost:8080/search?offset=" + strconv.Itoa(offset+limit) + "&limit=" + strconv.Itoa(limit)}
	}
	return md
}

func page[T any](all []T, offset, limit int) []T {
	if offset >= len(all) {
		return []T{}
	}
	return all[offset:min(len(all), offset+limit)]
}

func sdeEvents(customerID, name, surname, email, phone string, at time.Time) []any {
	var ev []any
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	if customerID != "" {
		ev = append(ev, map[string]any{"sdeType": "CUSTOMER_INFO", "customerInfo": map[string]any{
			"serverTimeStamp": ts, "customerInfo": map[string]any{"customerId": customerID, "customerStatus": "active"}}})
	}
	if name != "" || surname != "" || email != "" || phone != "" {
		ev = append(ev, map[string]any{"sdeType": "PERSONAL_INFO", "personalInfo": map[string]any{
			"serverTimeStamp": ts, "personalInfo": map[string]any{"name": name, "surname": surname,
				"contacts": []any{map[string]any{"personalContact": map[string]any{"email": email, "phone": phone}}}}}})
	}
	return ev
}

package lpsim

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// Limits every search method shares.
const (
	maxLimit     = 100
	maxSourceLen = 20
)

// tokens splits s into lowercase letter/digit runs.
func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// unsearchableNumber reports a purely numeric value with more than three
// consecutive digits: Messaging Interactions can neither index nor search
// such attribute values.
func unsearchableNumber(s string) bool {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), `"`))
	if len(s) <= 3 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
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

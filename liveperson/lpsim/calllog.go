package lpsim

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// StatusReset is the status logged for a connection the simulator reset.
const StatusReset = -1

// Call is one request the simulator received. Bodies are kept whole: this is
// a test tool and the data is synthetic.
type Call struct {
	Time    time.Time `json:"time"` // sim clock
	Method  string    `json:"method"`
	Host    string    `json:"host"` // the Host header: which name the client called
	Path    string    `json:"path"`
	Query   string    `json:"query"`
	Body    string    `json:"body"`
	Auth    string    `json:"auth"` // "none", "bearer", "oauth1", "other"
	Service string    `json:"service"`
	Op      string    `json:"op"`
	Status  int       `json:"status"` // StatusReset for a reset connection
	Fault   string    `json:"fault,omitempty"`
}

func authKind(h string) string {
	switch {
	case h == "":
		return "none"
	case strings.HasPrefix(h, "Bearer "):
		return "bearer"
	case strings.HasPrefix(h, "OAuth "):
		return "oauth1"
	}
	return "other"
}

// Calls returns a copy of the call log.
func (s *Sim) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
	}
	return out
}

// CallsTo returns the logged calls of one service and operation.
func (s *Sim) CallsTo(service, op string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Service == service && (op == "" || c.Op == op) {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls empties the call log.
func (s *Sim) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// Stats summarises what the simulator did; GET /_lpsim/stats serves it.
type Stats struct {
	Calls            int            `json:"calls"`
	ByStatus         map[int]int    `json:"by_status"`
	DeletionsCreated int            `json:"deletions_created"`
	DeletionBodies   map[string]int `json:"deletion_bodies"` // canonical body (kind, sorted ids) → times created
	Duplicates       []string       `json:"duplicates"`      // bodies created more than once
}

// Stats returns the current statistics.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Calls: len(s.calls), ByStatus: map[int]int{}, DeletionBodies: map[string]int{}, Duplicates: []string{}}
	for _, c := range s.calls {
		st.ByStatus[c.Status]++
	}
	for b, n := range s.created {
		st.DeletionBodies[b] = n
		st.DeletionsCreated += n
		if n > 1 {
			st.Duplicates = append(st.Duplicates, b)
		}
	}
	sort.Strings(st.Duplicates)
	return st
}

// canonicalBody identifies a deletion request by kind and sorted ids, so a
// resend with the ids in another order still counts as the same batch.
func canonicalBody(kind string, ids []string) string {
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	b, _ := json.Marshal(map[string][]string{kind: sorted})
	return string(b)
}

// statusWriter records the status and supports hijacking for reset faults.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("lpsim: connection cannot be hijacked")
	}
	w.hijacked = true
	return h.Hijack()
}

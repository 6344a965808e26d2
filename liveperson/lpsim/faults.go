package lpsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// FaultKind is what an injected fault does.
type FaultKind int

// Fault kinds.
const (
	// FaultStatus answers Status (default 503) with an optional Retry-After.
	FaultStatus FaultKind = iota + 1
	// FaultLatency delays the request by Latency, then serves it.
	FaultLatency
	// FaultHang holds the request until the client gives up (or Close).
	FaultHang
	// FaultReset closes the connection without an answer.
	FaultReset
	// FaultMalformed answers 200 with a body that is not JSON.
	FaultMalformed
	// FaultTruncated serves the request and cuts its answer in half.
	FaultTruncated
	// FaultPartialResult serves the request with half its records and
	// _metadata.shardsStatusResult.partialResult = true.
	FaultPartialResult
	// FaultPartialRecord serves the request with every record isPartial and
	// without its sdes and unAuthSdes.
	FaultPartialRecord
	// FaultWrongHost makes the Domain API answer Host (for ForService, or for
	// every service when empty).
	FaultWrongHost
	// FaultSlowCreate has LivePerson record a deletion create Latency after
	// receiving it (simulator time): list and get show the request only from
	// then, and the answer comes then, unless the client has given up by then;
	// with After the connection is dropped at once instead. The quota unit is
	// taken on receipt.
	FaultSlowCreate
)

var faultNames = map[FaultKind]string{FaultStatus: "status", FaultLatency: "latency", FaultHang: "hang",
	FaultReset: "reset", FaultMalformed: "malformed", FaultTruncated: "truncated",
	FaultPartialResult: "partialResult", FaultPartialRecord: "partialRecord", FaultWrongHost: "wrongHost",
	FaultSlowCreate: "slowCreate"}

func (k FaultKind) String() string {
	if n, ok := faultNames[k]; ok {
		return n
	}
	return "fault" + strconv.Itoa(int(k))
}

// Fault is injected into the calls matching Service and Op ("" matches any).
type Fault struct {
	Service, Op string
	Kind        FaultKind
	// Nth fires from the nth matching call on (1-based; 0 = from the first).
	Nth int
	// Times bounds how often it fires (0 = every time).
	Times int
	// Probability, when > 0, fires on that share of calls (seeded RNG).
	Probability float64
	Status      int           // FaultStatus
	RetryAfter  string        // FaultStatus: Retry-After header value
	Latency     time.Duration // FaultLatency; FaultSlowCreate, in simulator time
	Host        string        // FaultWrongHost
	ForService  string        // FaultWrongHost
	// After serves the request first and then fails the answer (FaultStatus,
	// FaultReset, FaultHang, FaultMalformed): the change happened but the
	// client cannot know. Kinds that edit the real answer always serve first.
	After bool
}

type faultState struct {
	Fault
	seen, fired int
}

func (f *faultState) after() bool {
	switch f.Kind {
	case FaultTruncated, FaultPartialResult, FaultPartialRecord, FaultWrongHost, FaultSlowCreate:
		return true
	}
	return f.After
}

// AddFault injects a fault; faults are tried in the order added and the first
// that fires wins.
func (s *Sim) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{Fault: f})
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Sim) fault(service, op string) *faultState {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if (f.Service != "" && f.Service != service) || (f.Op != "" && f.Op != op) {
			continue
		}
		f.seen++
		if (f.Nth > 0 && f.seen < f.Nth) || (f.Times > 0 && f.fired >= f.Times) ||
			(f.Probability > 0 && s.rng.Float64() >= f.Probability) {
			continue
		}
		f.fired++
		return f
	}
	return nil
}

// injectBefore applies a fault before the request is served. It reports
// whether the request is finished.
func (s *Sim) injectBefore(w http.ResponseWriter, r *http.Request, f *faultState) bool {
	if f.after() {
		return false
	}
	switch f.Kind {
	case FaultLatency:
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
		case <-s.closing:
		}
		return false
	case FaultStatus:
		writeStatus(w, f)
	case FaultHang:
		s.hang(r)
	case FaultReset:
		reset(w)
	case FaultMalformed:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"_metadata": {"count": 1}, "interactionHistoryRecords": [<html>oops`))
	default:
		return false
	}
	return true
}

// injectAfter serves the request into a recorder, then delivers a damaged
// or lost answer.
func (s *Sim) injectAfter(w http.ResponseWriter, r *http.Request, f *faultState, fn http.HandlerFunc) {
	rec := httptest.NewRecorder()
	var slow *slowCreate
	if f.Kind == FaultSlowCreate {
		slow = &slowCreate{delay: f.Latency}
		r = r.WithContext(context.WithValue(r.Context(), slowCreateKey{}, slow))
	}
	fn(rec, r)
	body := rec.Body.Bytes()
	switch f.Kind {
	case FaultSlowCreate:
		if f.After || !s.waitRecorded(r, slow.until) {
			reset(w)
			return
		}
	case FaultStatus:
		writeStatus(w, f)
		return
	case FaultHang:
		s.hang(r)
		return
	case FaultReset:
		reset(w)
		return
	case FaultMalformed:
		body = []byte("<html>502 Bad Gateway")
	case FaultTruncated:
		body = body[:len(body)/2]
	case FaultPartialResult, FaultPartialRecord, FaultWrongHost:
		if rec.Code < 300 {
			body = rewrite(body, f)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// slowCreate carries FaultSlowCreate's delay to the create handler, which
// sets until to when it records the request (zero: it created none).
type slowCreate struct {
	delay time.Duration
	until time.Time
}

type slowCreateKey struct{}

// recordDelay returns the FaultSlowCreate state r carries, if any.
func recordDelay(r *http.Request) (*slowCreate, bool) {
	sc, ok := r.Context().Value(slowCreateKey{}).(*slowCreate)
	return sc, ok
}

// waitRecorded holds a slow create's answer until the simulator's clock
// reaches until, which may be moved by hand (ManualClock). It reports false
// when the client gave up or the simulator closed first.
func (s *Sim) waitRecorded(r *http.Request, until time.Time) bool {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for s.clock.Now().Before(until) {
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return false
		case <-s.closing:
			return false
		}
	}
	return true
}

func writeStatus(w http.ResponseWriter, f *faultState) {
	st := f.Status
	if st == 0 {
		st = http.StatusServiceUnavailable
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeJSON(w, st, map[string]string{"error": fmt.Sprintf("injected %d", st)})
}

func (s *Sim) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closing:
	case <-time.After(5 * time.Minute):
	}
}

// reset closes the connection abruptly (RST where the platform allows).
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// rewrite edits a JSON answer for the partial and wrong-host faults.
func rewrite(body []byte, f *faultState) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	switch f.Kind {
	case FaultWrongHost:
		if list, ok := m["baseURIs"].([]any); ok {
			for _, e := range list {
				if em, ok := e.(map[string]any); ok && (f.ForService == "" || em["service"] == f.ForService) {
					em["baseURI"] = f.Host
				}
			}
		} else if f.ForService == "" || m["service"] == f.ForService {
			m["baseURI"] = f.Host
		}
	case FaultPartialResult, FaultPartialRecord:
		for _, key := range []string{"interactionHistoryRecords", "conversationHistoryRecords"} {
			recs, ok := m[key].([]any)
			if !ok {
				continue
			}
			if f.Kind == FaultPartialResult {
				m[key] = recs[:len(recs)/2]
				if md, ok := m["_metadata"].(map[string]any); ok {
					md["shardsStatusResult"] = map[string]any{"partialResult": true}
				}
				continue
			}
			for _, rec := range recs {
				if rm, ok := rec.(map[string]any); ok {
					delete(rm, "sdes")
					delete(rm, "unAuthSdes")
					if info, ok := rm["info"].(map[string]any); ok {
						info["isPartial"] = true
					}
				}
			}
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}

// ThrottleSearches are the faults of a LivePerson that refuses every search for now: each call
// to Engagement History and Messaging History is answered 429 with Retry-After retryAfter
// (rounded up to whole seconds, at least one). Deletion requests are served as usual.
func ThrottleSearches(retryAfter time.Duration) []Fault {
	secs := max(int64((retryAfter+time.Second-1)/time.Second), 1)
	var out []Fault
	for _, svc := range []string{ServiceEngHist, ServiceMsgHist} {
		out = append(out, Fault{Service: svc, Kind: FaultStatus, Status: http.StatusTooManyRequests,
			RetryAfter: strconv.FormatInt(secs, 10)})
	}
	return out
}

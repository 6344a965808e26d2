package bench

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
)

// PipelineResult is one run of the pipeline scenario.
type PipelineResult struct {
	Config   PipelineConfig
	Targets  map[service.TargetKind]int             // the subjects' records, known from the data
	Requests map[service.TargetKind][]int           // ids of each LivePerson deletion request created, by kind
	Formed   map[service.TargetKind][]time.Duration // when erasured formed each (intent committed), after the first Submit
	Sent     map[service.TargetKind][]time.Duration // when LivePerson created each, after the first Submit
	ByState  map[service.State]int

	Duplicates    int // deletion bodies LivePerson received more than once
	Erased        int // of the subjects' Records, masked at the end
	Records       int
	WronglyErased int // generated records (other people's) masked at the end

	Calls           CallSummary
	ClientThrottled int            // 429s the client saw on search services (retried)
	Warnings        map[string]int // pipeline warnings and errors by message

	SubmitTime   time.Duration // to submit every subject
	ResolvePhase time.Duration // first Submit → the last erasure out of RESOLVING
	EndToEnd     time.Duration // first Submit → the last erasure final
	Latency      Summary       // per erasure, first Submit → its final state
}

// collectTimes derives the phases from what the tracker saw of the erasures ids.
func (r *PipelineResult) collectTimes(t *tracker, ids []string, start time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lat []time.Duration
	for _, id := range ids {
		if at, ok := t.resolved[id]; ok {
			r.ResolvePhase = max(r.ResolvePhase, at.Sub(start))
		}
		if at, ok := t.final[id]; ok {
			r.EndToEnd = max(r.EndToEnd, at.Sub(start))
			lat = append(lat, at.Sub(start))
		}
	}
	r.Latency = Summarize(lat)
}

var kinds = []service.TargetKind{service.KindEngagement, service.KindConversation, service.KindConsumer}

// IdealRequests is the fewest LivePerson deletion requests the targets of kind k fit in (0 for
// all kinds): 100 ids per request.
func (r PipelineResult) IdealRequests(k service.TargetKind) int {
	if k == service.KindUnspecified {
		n := 0
		for _, k := range kinds {
			n += r.IdealRequests(k)
		}
		return n
	}
	return (r.Targets[k] + 99) / 100
}

// UsedRequests is how many deletion requests erasured created for kind k (0: all kinds).
func (r PipelineResult) UsedRequests(k service.TargetKind) int {
	if k == service.KindUnspecified {
		n := 0
		for _, k := range kinds {
			n += len(r.Requests[k])
		}
		return n
	}
	return len(r.Requests[k])
}

// IDsPerRequest is the mean number of ids per deletion request of kind k (0: all kinds).
func (r PipelineResult) IDsPerRequest(k service.TargetKind) float64 {
	ids, n := 0, 0
	for _, kk := range kinds {
		if k == service.KindUnspecified || k == kk {
			for _, c := range r.Requests[kk] {
				ids += c
			}
			n += len(r.Requests[kk])
		}
	}
	return ratioOf(float64(ids), float64(n))
}

// SendDelay summarizes how long formed batches waited to be sent (formed → LivePerson created).
func (r PipelineResult) SendDelay() Summary {
	var d []time.Duration
	for _, k := range kinds {
		for i, sent := range r.Sent[k] {
			d = append(d, sent-r.Formed[k][i])
		}
	}
	return Summarize(d)
}

// QuotaRatio is ideal requests / requests used for kind k (0: all kinds): 1 is perfect packing.
func (r PipelineResult) QuotaRatio(k service.TargetKind) float64 {
	return ratioOf(float64(r.IdealRequests(k)), float64(r.UsedRequests(k)))
}

// SearchRate is the rate of served calls to a search service during the resolution phase.
func (r PipelineResult) SearchRate(svc string) float64 {
	return ratioOf(float64(r.Calls.PhaseServed[svc]), r.ResolvePhase.Seconds())
}

// PostRate is the rate of served calls to a search service after the resolution phase, until
// the last erasure ended: verification and final sweeps.
func (r PipelineResult) PostRate(svc string) float64 {
	return ratioOf(float64(r.Calls.PostServed[svc]), (r.EndToEnd - r.ResolvePhase).Seconds())
}

// Utilisation is SearchRate over the simulator's limit.
func (r PipelineResult) Utilisation(svc string) float64 {
	return r.SearchRate(svc) / r.Config.SearchRate
}

// SearchTime is the least time the limits allow for the search calls the run made (served ones,
// whole run): the busiest search service's calls at its limit. It also names that service.
func (r PipelineResult) SearchTime() (time.Duration, string) {
	var best time.Duration
	name := ""
	for _, s := range searchServices {
		d := time.Duration(float64(r.Calls.Served[s]) / r.Config.SearchRate * float64(time.Second))
		if d > best || name == "" {
			best, name = d, s
		}
	}
	return best, name
}

// The fewest searches one resolution sweep of one identifier takes under LivePerson's window
// limits, as erasured reads them: Engagement History searches at most 28 days and Messaging
// Interactions 89 days at a time (the shortest readings of "one month" and "three months", after
// LivePerson rounds from and to to 10 minutes), over 13 calendar months plus a day of retention
// (at most 397 days).
const (
	lpRetention    = 397 * 24 * time.Hour
	sweepEngHist   = int((lpRetention + 28*24*time.Hour - 1) / (28 * 24 * time.Hour)) // 15
	sweepMessaging = int((lpRetention + 89*24*time.Hour - 1) / (89 * 24 * time.Hour)) // 5
)

// MinSearchTime is the least time the limits allow for one resolution sweep of every subject:
// the slower of the search services at its limit. Later searches (verification, the final
// sweep after search_lag) are left out: an ideal pipeline runs them while other subjects'
// deletions wait out LivePerson's windows. It also names the service.
func (r PipelineResult) MinSearchTime() (time.Duration, string) {
	n := float64(r.Config.Subjects)
	eh, mi := n*float64(sweepEngHist), n*float64(sweepMessaging)
	if eh >= mi {
		return time.Duration(eh / r.Config.SearchRate * float64(time.Second)), lpsim.ServiceEngHist
	}
	return time.Duration(mi / r.Config.SearchRate * float64(time.Second)), lpsim.ServiceMsgHist
}

// FixedTime is the part of the ideal that no rate changes: LivePerson's cancel and deletion
// windows (scaled), and one poll interval to see the last request DONE. An ideal batcher sends
// the last part-full request of each kind as soon as the last subject is resolved (nothing more
// can join it then), so no wait for a fuller batch is part of it; batch_max_wait, when set, is
// only an upper bound on that wait.
func (r PipelineResult) FixedTime() time.Duration {
	c := r.Config
	return c.scale(lpCancelWindow) + c.scale(lpDeletionWindow) + c.PollInterval
}

// Ideal is the end-to-end time the limits allow: MinSearchTime + FixedTime.
func (r PipelineResult) Ideal() time.Duration {
	s, _ := r.MinSearchTime()
	return s + r.FixedTime()
}

// TimeRatio is Ideal / EndToEnd: 1 means as fast as the limits allow.
func (r PipelineResult) TimeRatio() float64 {
	return ratioOf(r.Ideal().Seconds(), r.EndToEnd.Seconds())
}

// IdealAsRun is the ideal for the search calls this run made (every served call, whole run, as
// if all came before the deletion timeline): SearchTime + FixedTime.
func (r PipelineResult) IdealAsRun() time.Duration {
	s, _ := r.SearchTime()
	return s + r.FixedTime()
}

// TimeRatioAsRun is IdealAsRun / EndToEnd.
func (r PipelineResult) TimeRatioAsRun() float64 {
	return ratioOf(r.IdealAsRun().Seconds(), r.EndToEnd.Seconds())
}

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// CallSummary counts the LivePerson calls the simulator received, as it answered them.
type CallSummary struct {
	Served       map[string]int // by service, whole run, not 429
	Throttled    map[string]int // by service, whole run, 429
	PhaseServed  map[string]int // by service, during the resolution phase
	PhaseLimited map[string]int
	PostServed   map[string]int // by service, after the resolution phase
	ByOp         map[string]int // by "service op", served, whole run
}

// callLog records every call the simulator receives, in real time (the simulator's own log runs
// on its fast clock): arrival, operation and status.
type callLog struct {
	mu    sync.Mutex
	calls []loggedCall
}

type loggedCall struct {
	at      time.Time
	service string
	op      string
	status  int
}

func (l *callLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := loggedCall{at: time.Now()}
		c.service, c.op = classify(r)
		sw := &codeWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		c.status = sw.code
		l.mu.Lock()
		l.calls = append(l.calls, c)
		l.mu.Unlock()
	})
}

// classify names a call's service and operation from its path (and, for Engagement History,
// its body: a keyword search or a read by engagement id).
func classify(r *http.Request) (string, string) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/interaction_history/"):
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"engagementId"`)) {
			return lpsim.ServiceEngHist, "by id"
		}
		return lpsim.ServiceEngHist, "keyword search"
	case strings.HasPrefix(p, "/messaging_history/"):
		switch {
		case strings.HasSuffix(p, "/consumer/search"):
			return lpsim.ServiceMsgHist, "by consumer"
		case strings.HasSuffix(p, "/conversation/search"):
			return lpsim.ServiceMsgHist, "by id"
		}
		return lpsim.ServiceMsgHist, "search"
	case strings.Contains(p, "/personal-data-deletion"):
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(p, "/cancel"):
			return lpsim.ServiceRTBF, "cancel"
		case r.Method == http.MethodPost:
			return lpsim.ServiceRTBF, "create"
		case strings.HasSuffix(p, "/personal-data-deletion"):
			return lpsim.ServiceRTBF, "list"
		}
		return lpsim.ServiceRTBF, "get"
	case strings.HasPrefix(p, "/sentinel/"):
		return lpsim.ServiceSentinel, "token"
	}
	return lpsim.ServiceDomain, "baseURI"
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// summarize counts the calls, those that arrived in [from, to) and those after.
func (l *callLog) summarize(from, to time.Time) CallSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := CallSummary{Served: map[string]int{}, Throttled: map[string]int{}, PhaseServed: map[string]int{},
		PhaseLimited: map[string]int{}, PostServed: map[string]int{}, ByOp: map[string]int{}}
	for _, c := range l.calls {
		in := !c.at.Before(from) && c.at.Before(to)
		if c.status == http.StatusTooManyRequests {
			s.Throttled[c.service]++
			if in {
				s.PhaseLimited[c.service]++
			}
			continue
		}
		s.Served[c.service]++
		s.ByOp[c.service+" "+c.op]++
		switch {
		case in:
			s.PhaseServed[c.service]++
		case !c.at.Before(to):
			s.PostServed[c.service]++
		}
	}
	return s
}

// opNames lists the operations seen, in a stable order.
func (s CallSummary) opNames() []string {
	var out []string
	for k := range s.ByOp {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

package service

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// incidentLog collects the incidents a service reports, and its log output.
type incidentLog struct {
	mu        sync.Mutex
	incidents []Incident
	out       bytes.Buffer
}

func (l *incidentLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.Write(p)
}

func (l *incidentLog) add(inc Incident) {
	l.mu.Lock()
	l.incidents = append(l.incidents, inc)
	l.mu.Unlock()
}

// of returns the incidents of kind reported so far.
func (l *incidentLog) of(kind string) []Incident {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Incident
	for _, inc := range l.incidents {
		if inc.Kind == kind {
			out = append(out, inc)
		}
	}
	return out
}

func (l *incidentLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.String()
}

// watchIncidents makes e's service, and a new pipeline of it over e.lp, report incidents and
// log to the returned collector.
func watchIncidents(e *pipeEnv) *incidentLog {
	l := &incidentLog{}
	e.svc.log = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // wall-clock digits would make the canary checks flaky
			}
			return a
		}}))
	e.svc.cfg.OnIncident = l.add
	e.p = e.svc.NewPipeline(e.lp, e.cfg) // a pipeline logs to the service's logger of its making
	return l
}

// wantIncidents checks that exactly want were reported of want's kinds, and that no log line
// holds one of the canaries (identifiers of the subject).
func wantIncidents(t *testing.T, l *incidentLog, kind string, want []Incident, canaries ...string) {
	t.Helper()
	if got := l.of(kind); !slices.Equal(got, want) {
		t.Errorf("%s incidents = %+v, want %+v", kind, got, want)
	}
	logged := l.text()
	for _, c := range canaries {
		if strings.Contains(strings.ToLower(logged), strings.ToLower(c)) {
			t.Errorf("the log holds the identifier %q:\n%s", c, logged)
		}
	}
}

// TestIncidentStepRejected: LivePerson refusing a search is reported once per refusal, as a
// warning naming the step; after the last refusal allowed the erasure fails, which is
// reported once too.
func TestIncidentStepRejected(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.lp.searchErr = fmt.Errorf("%w: 400", ErrRejected)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-REJ-1"))).Erasure.Name()
	e.settle()
	rejected := Incident{Kind: IncidentStepRejected, Account: "1234", Step: "resolve", Reason: "request_rejected"}
	wantIncidents(t, l, IncidentStepRejected, []Incident{rejected}, "CANARY-REJ-1")
	wantIncidents(t, l, IncidentFailed, nil)
	if !strings.Contains(l.text(), `level=WARN msg="incident: LivePerson refused a step" incident=step_rejected account=1234 step=resolve reason=request_rejected erasure=`) {
		t.Errorf("log lacks the step_rejected line:\n%s", l.text())
	}
	for range maxRejections {
		e.advance(time.Minute)
	}
	e.wantState(name, StateFailed)
	wantIncidents(t, l, IncidentStepRejected, slices.Repeat([]Incident{rejected}, maxRejections), "CANARY-REJ-1")
	wantIncidents(t, l, IncidentFailed, []Incident{{Kind: IncidentFailed, Account: "1234", Reason: "steps_rejected"}}, "CANARY-REJ-1")
	if !strings.Contains(l.text(), `level=ERROR msg="incident: erasure failed" incident=erasure_failed account=1234 reason=steps_rejected erasure=`+strings.TrimPrefix(name, NamePrefix)) {
		t.Errorf("log lacks the erasure_failed line:\n%s", l.text())
	}
}

// TestIncidentAuthFailed: credentials LivePerson refuses are reported as such (not as a
// rejected step), and the erasure waits to be retried rather than failing.
func TestIncidentAuthFailed(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.lp.searchErr = fmt.Errorf("%w: %w: 401", ErrUnavailable, ErrUnauthorized)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-AUTH-1"))).Erasure.Name()
	e.settle()
	wantIncidents(t, l, IncidentAuthFailed, []Incident{{Kind: IncidentAuthFailed, Account: "1234", Step: "resolve", Reason: "credentials_refused"}}, "CANARY-AUTH-1")
	wantIncidents(t, l, IncidentStepRejected, nil)
	got := e.wantState(name, StateResolving)
	if got.LastError != "LivePerson refused the account's credentials" || got.BlockedOn != BlockedLivePersonUnavailable {
		t.Errorf("last_error %q blocked %d, want the credentials named and LIVEPERSON_UNAVAILABLE", got.LastError, got.BlockedOn)
	}
	if !strings.Contains(l.text(), `level=ERROR msg="incident: LivePerson refused the account's credentials" incident=auth_failed account=1234 step=resolve`) {
		t.Errorf("log lacks the auth_failed line:\n%s", l.text())
	}
}

// refusingCreates is a LivePerson whose deletion creates all fail with err.
type refusingCreates struct {
	*fakeLivePerson
	err error
}

func (r refusingCreates) CreateDeletion(context.Context, string, TargetKind, []string) (Deletion, error) {
	return Deletion{}, r.err
}

// TestIncidentForbiddenCreate: a 403 on a create is a rejection that is the credentials'
// fault: reported as auth_failed at the submit step, not as a rejected step.
func TestIncidentForbiddenCreate(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.p = e.svc.NewPipeline(refusingCreates{e.lp, fmt.Errorf("%w: %w: 403", ErrRejected, ErrUnauthorized)}, e.cfg)
	e.lp.chats = []ChatRecord{{EngagementID: "4242000055", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"CANARY-403-1"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-403-1"))
	req.Channels = []Channel{ChannelChat}
	e.submit(req)
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	wantIncidents(t, l, IncidentAuthFailed, []Incident{{Kind: IncidentAuthFailed, Account: "1234", Step: "submit", Reason: "credentials_refused"}},
		"CANARY-403-1", "4242000055")
	wantIncidents(t, l, IncidentStepRejected, nil)
}

// TestIncidentDeletionRejected: LivePerson refusing a deletion request is reported at the
// submit step, and a record refused twice fails its erasure, reported once.
func TestIncidentDeletionRejected(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.lp.chats = []ChatRecord{{EngagementID: "4242000066", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"CANARY-DEL-1"}}}
	e.lp.rejectIDs["4242000066"] = true
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-DEL-1"))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	for range 3 {
		e.advance(e.cfg.BatchMaxWait)
	}
	e.wantState(name, StateFailed)
	submit := Incident{Kind: IncidentStepRejected, Account: "1234", Step: "submit", Reason: "request_rejected"}
	wantIncidents(t, l, IncidentStepRejected, []Incident{submit, submit}, "CANARY-DEL-1", "4242000066")
	wantIncidents(t, l, IncidentFailed, []Incident{{Kind: IncidentFailed, Account: "1234", Reason: "deletion_rejected"}}, "CANARY-DEL-1")
}

// TestIncidentVerificationFailed: a record that keeps its data after two deletions fails the
// erasure; the move to FAILED is reported once although it passes through several states.
func TestIncidentVerificationFailed(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.lp.chats = []ChatRecord{{EngagementID: "77", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"CANARY-VER-1"}}}
	e.lp.kept["77"] = true
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-VER-1"))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	for range 2 {
		e.runLivePersonTimeline()
	}
	e.wantState(name, StateFailed)
	wantIncidents(t, l, IncidentFailed, []Incident{{Kind: IncidentFailed, Account: "1234", Reason: "verification_failed"}}, "CANARY-VER-1")
	wantIncidents(t, l, IncidentStepRejected, nil)
	wantIncidents(t, l, IncidentAuthFailed, nil)
}

// TestNoIncidentWhenLivePersonIsMerelyDown: unavailability is retried and shown on the
// erasure; it is not an incident.
func TestNoIncidentWhenLivePersonIsMerelyDown(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.lp.searchErr = fmt.Errorf("%w: 503", ErrUnavailable)
	e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-DOWN-1")))
	e.settle()
	e.advance(time.Minute)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.incidents) != 0 {
		t.Errorf("incidents = %+v, want none", l.incidents)
	}
}

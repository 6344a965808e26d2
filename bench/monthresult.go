package bench

import (
	"slices"
	"time"

	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/pipeline"
)

// monthKinds are the record kinds of deletion requests, in report order, with LivePerson's
// name of each.
var monthKinds = []struct {
	kind service.TargetKind
	name string
}{{service.KindEngagement, "engagement"}, {service.KindConversation, "conversation"}, {service.KindConsumer, "consumer"}}

// forecastLead is how early a miss must have been forecast.
const forecastLead = 7 * 24 * time.Hour

// monthResult is one run's figures (one demand level, one policy).
type monthResult struct {
	Policy    pipeline.FlushPolicy
	Level     float64
	Quota     int
	Demand    int // the month's arrivals' deadline ideal (see monthDemand.Ideal)
	IdsOnly   int // their ids-only ideal
	Subjects  int // generated
	Bursty    int // of them, arriving in a burst
	Submitted int
	Completed int
	// LivePerson's record of creates, per kind: requests, distinct ids, the deadline ideal for
	// those ids (deadlineIdeal: each sent by its erasure's latest safe submit time) and the
	// ids-only ideal (ceil(ids/100)); the ratio's ideal is the deadline ideal.
	Requests, IDs, Ideal, IdsOnlyIdeal map[service.TargetKind]int
	Used, IdealAll, IdsOnlyAll         int
	// ErasureKinds counts (erasure, kind) pairs with records sent: the requests one request
	// per subject and kind would use.
	ErasureKinds int
	// Months: requests created in each calendar month of the run, in order.
	Months []int
	// Sanity: every generated record is sent once or not at all; nothing else is sent.
	Records, IDsSent, NotSentOpen, NotSentFinal, Foreign, SentTwice int
	Duplicates                                                      int // bodies created twice
	Erased, WronglyErased                                           int
	// Deadlines: met = COMPLETED by due_time; a miss's lead = due_time − at_risk_time.
	Met, Missed int
	Leads       []time.Duration // of the misses forecast, sorted
	NotForecast int             // misses with at_risk_time unset
	// At-risk first: erasures sent after another of the same kind that was not at risk, while
	// their own records waited in the queue and they were at risk.
	AtRiskLate, AtRiskWaited int
	Unfinished               int
	OpenStates               map[string]int // erasures open at the end, by state and what blocks them
	Real                     time.Duration
	SimEnd                   time.Duration // after the month's start
	Warnings                 map[string]int
}

// analyzeMonth computes a run's figures from what it left behind.
func analyzeMonth(o monthOutcome) monthResult {
	d := o.Demand
	r := monthResult{Policy: o.Policy, Level: d.Level, Quota: d.Quota, Demand: d.Ideal, IdsOnly: d.IdsOnly, Subjects: len(d.Subjects),
		Submitted: o.Submitted, Requests: map[service.TargetKind]int{}, IDs: map[service.TargetKind]int{},
		Ideal: map[service.TargetKind]int{}, Duplicates: o.Duplicates, Erased: o.Erased,
		WronglyErased: o.WronglyErased, Unfinished: o.Unfinished, Real: o.Real, SimEnd: o.End.Sub(monthStart),
		Warnings: o.Warnings}

	// What LivePerson saw: requests, their ids, and when each was created.
	kindOf := map[string]service.TargetKind{}
	for _, k := range monthKinds {
		kindOf[k.name] = k.kind
	}
	created, formed := map[int64]time.Time{}, map[int64]time.Time{}
	sent := map[string]int{} // kind/id → requests holding it
	sentIDs := map[service.TargetKind]map[string]bool{}
	month := ""
	for _, del := range o.Deletions {
		k := kindOf[del.Kind]
		r.Requests[k]++
		created[del.ID] = del.Created
		if t, ok := o.Formed[del.ID]; ok {
			formed[del.ID] = t
		} else {
			formed[del.ID] = del.Created
		}
		for _, id := range del.IDs {
			if sent[del.Kind+"/"+id]++; sent[del.Kind+"/"+id] == 1 {
				r.IDs[k]++
				if sentIDs[k] == nil {
					sentIDs[k] = map[string]bool{}
				}
				sentIDs[k][id] = true
			}
		}
		if m := del.Created.Format("2006-01"); m != month {
			month = m
			r.Months = append(r.Months, 0)
		}
		r.Months[len(r.Months)-1]++
	}
	r.Ideal, r.IdsOnlyIdeal = idealOf(d.Subjects, sentIDs)
	for _, k := range monthKinds {
		r.Used += r.Requests[k.kind]
		r.IdealAll += r.Ideal[k.kind]
		r.IdsOnlyAll += r.IdsOnlyIdeal[k.kind]
	}

	// Sanity: the generated records against the ids sent.
	mine := map[string]bool{}
	for i, s := range d.Subjects {
		final := i < len(o.Erasures) && o.Erasures[i].State.Final()
		ids := map[string][]string{"engagement": s.chats, "conversation": s.convs}
		if s.profileOf != "" {
			ids["consumer"] = []string{s.profileOf}
		}
		for kind, list := range ids {
			for _, id := range list {
				r.Records++
				mine[kind+"/"+id] = true
				switch n := sent[kind+"/"+id]; {
				case n == 0 && final:
					r.NotSentFinal++
				case n == 0:
					r.NotSentOpen++
				default:
					r.IDsSent++
					if n > 1 {
						r.SentTwice++
					}
				}
			}
		}
	}
	for id := range sent {
		if !mine[id] {
			r.Foreign++
		}
	}

	// Deadlines and forecasts, from erasured's Status of each erasure.
	type sentAt struct {
		queued, atRisk, at time.Time // at: its batch of the kind was formed (zero: never)
	}
	byKind := map[service.TargetKind][]sentAt{}
	r.OpenStates = map[string]int{}
	for _, e := range o.Erasures {
		if !e.State.Final() {
			key := e.State.String()
			if e.BlockedOn != service.BlockedNone {
				key += "/" + blockedNames[e.BlockedOn]
			}
			r.OpenStates[key]++
		}
		if e.State == service.StateCompleted {
			r.Completed++
		}
		done := e.UpdateTime
		if e.Receipt != nil {
			done = e.Receipt.CompleteTime
		}
		if e.State == service.StateCompleted && !done.After(e.DueTime) {
			r.Met++
		} else {
			r.Missed++
			if e.AtRiskTime.IsZero() {
				r.NotForecast++
			} else {
				r.Leads = append(r.Leads, e.DueTime.Sub(e.AtRiskTime))
			}
		}
		atRisk := e.AtRiskTime
		if t, ok := o.AtRiskSeen[e.ID]; ok && (atRisk.IsZero() || t.Before(atRisk)) {
			atRisk = t
		}
		kinds := map[service.TargetKind]time.Time{}
		for _, lr := range e.LPRequests {
			if t, ok := formed[lr.ID]; ok && (kinds[lr.Kind].IsZero() || t.Before(kinds[lr.Kind])) {
				kinds[lr.Kind] = t
			}
		}
		for k, t := range kinds {
			r.ErasureKinds++
			byKind[k] = append(byKind[k], sentAt{queued: o.Queued[e.ID], atRisk: atRisk, at: t})
		}
		// An erasure still waiting at the end waits with records of the kinds it has.
		if !e.State.Final() {
			for _, c := range e.TargetCounts {
				if _, ok := kinds[c.Kind]; !ok && c.Count > 0 && !o.Queued[e.ID].IsZero() {
					byKind[c.Kind] = append(byKind[c.Kind], sentAt{queued: o.Queued[e.ID], atRisk: atRisk})
				}
			}
		}
	}
	slices.Sort(r.Leads)
	for _, s := range d.Subjects {
		if s.burst {
			r.Bursty++
		}
	}

	// At-risk first: A was at risk and its records waited in the queue when the batch of B,
	// not at risk, was formed; A's was formed later (or never). Batches are compared by when
	// erasured formed them: LivePerson receives them one at a time, in turn.
	for _, list := range byKind {
		for _, a := range list {
			if a.atRisk.IsZero() {
				continue
			}
			waited, late := false, false
			for _, b := range list {
				if b.at.IsZero() || a.queued.IsZero() || a.queued.After(b.at) || a.atRisk.After(b.at) {
					continue
				}
				if !a.at.IsZero() && !a.at.After(b.at) {
					continue
				}
				waited = true
				if b.atRisk.IsZero() || b.atRisk.After(b.at) {
					late = true
				}
			}
			if waited {
				r.AtRiskWaited++
			}
			if late {
				r.AtRiskLate++
			}
		}
	}
	return r
}

// ratio is the deadline ideal over the requests used (1 when none were used).
func (r monthResult) ratio() float64 {
	if r.Used == 0 {
		return 1
	}
	return float64(r.IdealAll) / float64(r.Used)
}

// idsOnlyRatio is the ids-only ideal over the requests used.
func (r monthResult) idsOnlyRatio() float64 {
	if r.Used == 0 {
		return 1
	}
	return float64(r.IdsOnlyAll) / float64(r.Used)
}

// minLead and medianLead of the forecast misses (zero when none).
func (r monthResult) minLead() time.Duration {
	if len(r.Leads) == 0 {
		return 0
	}
	return r.Leads[0]
}

func (r monthResult) medianLead() time.Duration {
	if len(r.Leads) == 0 {
		return 0
	}
	return r.Leads[len(r.Leads)/2]
}

// forecastEarly reports whether every miss was forecast at least forecastLead ahead.
func (r monthResult) forecastEarly() bool {
	return r.NotForecast == 0 && (len(r.Leads) == 0 || r.minLead() >= forecastLead)
}

// blockedNames name what an open erasure waits for, in the report.
var blockedNames = map[service.BlockedOn]string{service.BlockedQuota: "quota", service.BlockedOpenConversations: "open conversations",
	service.BlockedSearchLag: "search lag", service.BlockedLivePersonUnavailable: "LivePerson unavailable",
	service.BlockedConfirmation: "confirmation", service.BlockedIdentifierUnsearchable: "identifier unsearchable",
	service.BlockedDeletionOutcomeUnknown: "deletion outcome unknown"}

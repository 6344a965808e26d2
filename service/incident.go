package service

// Incident is a failure an operator must see: the service logs it (without personal data) and
// passes it to Config.OnIncident, which the binary counts as a metric.
type Incident struct {
	// Kind is one of the Incident* constants.
	Kind string
	// Account is the LivePerson account concerned.
	Account string
	// Step names the pipeline step concerned (resolve, submit, poll, verify, ...), when there is one.
	Step string
	// Reason is a short, fixed description (an ErrorInfo-style reason), never personal data.
	Reason string
}

// Incident kinds.
const (
	// IncidentStepRejected: LivePerson refused a step outright (a 4xx other than auth and quota).
	IncidentStepRejected = "step_rejected"
	// IncidentAuthFailed: LivePerson refused the account's credentials.
	IncidentAuthFailed = "auth_failed"
	// IncidentFailed: an erasure moved to FAILED.
	IncidentFailed = "erasure_failed"
	// IncidentTransitionRefused: a pipeline step asked for a change of an erasure that the
	// transition table does not allow (a gap in the table, or a step that read a stale state).
	// The step backs off instead of retrying at once, and the batch concerned says which.
	IncidentTransitionRefused = "transition_refused"
)

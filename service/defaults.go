package service

import "time"

// The defaults of the service and its pipeline live here alone: New and NewPipeline fill a zero
// field from them, and the server's configuration file starts from them, so that a deployment
// and a program using the package get the same values (docs/operations.md lists them; a test
// in cmd/erasured keeps that table equal to these).

// DefaultMonthlyQuota is an account's monthly LivePerson deletion-request quota when none is
// configured.
const DefaultMonthlyQuota = 100

// DefaultKeyPeriod is how long one period key wraps new data keys, when the retention is not
// shorter (a period key never outlives the retention).
const DefaultKeyPeriod = 24 * time.Hour

// DefaultConfig is the Service configuration New applies to each zero field. Now, Logger, the
// callbacks and Accounts have no default; KeepInterval follows the key period and Margin the
// windows (see Config). Shared is false: the store is this process's alone, as a bbolt file is;
// the server sets it for a store other replicas share.
func DefaultConfig() Config {
	return Config{
		DefaultConfirmation: ConfirmationAutomatic,
		CancelWindow:        120 * time.Hour, // LivePerson's 5 days in NOT_STARTED
		DeletionWindow:      480 * time.Hour, // LivePerson's 20 days to finish a deletion
		Retention:           720 * time.Hour,
		PollInterval:        time.Hour,
	}
}

// DefaultPipelineConfig is the pipeline configuration NewPipeline applies to each zero field.
// Margin has no fixed default: it follows the service's windows (see PipelineConfig).
func DefaultPipelineConfig() PipelineConfig {
	return PipelineConfig{
		SearchLag:    2 * time.Hour,
		BatchMaxWait: 0, // no bound: a part-full batch waits as the flush policy says
		Quota:        func(string) int { return DefaultMonthlyQuota },
		Reserve:      0.1,
		Workers:      8,
		StepTimeout:  10 * time.Minute,
		CallTimeout:  30 * time.Second, // the LivePerson client's default
	}
}

// withDefaults fills each zero field of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DefaultConfirmation == ConfirmationUnspecified {
		c.DefaultConfirmation = d.DefaultConfirmation
	}
	if c.CancelWindow == 0 {
		c.CancelWindow = d.CancelWindow
	}
	if c.DeletionWindow == 0 {
		c.DeletionWindow = d.DeletionWindow
	}
	if c.Retention == 0 {
		c.Retention = d.Retention
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.Margin == 0 {
		c.Margin = min(24*time.Hour, (c.CancelWindow+c.DeletionWindow)/25)
	}
	return c
}

// withDefaults fills each zero field of c from DefaultPipelineConfig.
func (c PipelineConfig) withDefaults() PipelineConfig {
	d := DefaultPipelineConfig()
	if c.SearchLag == 0 {
		c.SearchLag = d.SearchLag
	}
	if c.BatchMaxWait == 0 {
		c.BatchMaxWait = d.BatchMaxWait
	}
	if c.Quota == nil {
		c.Quota = d.Quota
	}
	if c.Reserve == 0 {
		c.Reserve = d.Reserve
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.StepTimeout <= 0 {
		c.StepTimeout = d.StepTimeout
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = d.CallTimeout
	}
	return c
}

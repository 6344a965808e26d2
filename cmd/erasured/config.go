package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the configuration file (YAML). The keys named in SPEC §7 are a contract.
type Config struct {
	Listen        string `yaml:"listen"`
	MetricsListen string `yaml:"metrics_listen"`
	DB            string `yaml:"db"`
	LivePerson    struct {
		DomainAPIURL   string   `yaml:"domain_api_url"`
		Source         string   `yaml:"source"`
		CancelWindow   Duration `yaml:"cancel_window"`
		DeletionWindow Duration `yaml:"deletion_window"`
	} `yaml:"liveperson"`
	Accounts []Account `yaml:"accounts"`
	Pipeline struct {
		SearchLag    Duration `yaml:"search_lag"`
		BatchMaxWait Duration `yaml:"batch_max_wait"`
		PollInterval Duration `yaml:"poll_interval"`
		Confirmation string   `yaml:"confirmation"`
		// Workers bounds how many erasures are worked on at once; each runs its LivePerson
		// searches one after another, so it also bounds searches in flight.
		Workers int `yaml:"workers"`
	} `yaml:"pipeline"`
	Privacy struct {
		MasterKeyFile string   `yaml:"master_key_file"`
		MasterKeyID   string   `yaml:"master_key_id"`
		Retention     Duration `yaml:"retention"`
	} `yaml:"privacy"`
	Shutdown struct {
		Timeout Duration `yaml:"timeout"`
	} `yaml:"shutdown"`
	// History bounds the change history Watch replays from: the newest KeepRevisions are kept.
	History struct {
		KeepRevisions uint64 `yaml:"keep_revisions"`
	} `yaml:"history"`

	sandbox       bool   // no config file: the sandbox
	sandboxSecret string // the simulator's client secret, in the sandbox only
}

// Account is one LivePerson account the service may act on.
type Account struct {
	ID           string `yaml:"id"`
	Region       string `yaml:"region"`
	MonthlyQuota int    `yaml:"monthly_quota"`
	Auth         struct {
		OAuth2 struct {
			ClientID         string `yaml:"client_id"`
			ClientSecretFile string `yaml:"client_secret_file"`
		} `yaml:"oauth2"`
		// OAuth1 is LivePerson's legacy app-key authentication (ended 2026-05-31).
		OAuth1 *struct {
			ConsumerKey        string `yaml:"consumer_key"`
			ConsumerSecretFile string `yaml:"consumer_secret_file"`
			Token              string `yaml:"token"`
			TokenSecretFile    string `yaml:"token_secret_file"`
		} `yaml:"oauth1"`
	} `yaml:"auth"`
}

// Duration is a time.Duration written as a Go duration string ("2h", "90s").
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

func defaultConfig() Config {
	var c Config
	c.Listen = "127.0.0.1:50051"
	c.DB = "var/erasure.db"
	c.LivePerson.DomainAPIURL = "https://api.liveperson.net"
	c.LivePerson.Source = "erasured"
	c.LivePerson.CancelWindow = Duration{120 * time.Hour}
	c.LivePerson.DeletionWindow = Duration{480 * time.Hour}
	c.Pipeline.SearchLag = Duration{2 * time.Hour}
	c.Pipeline.BatchMaxWait = Duration{6 * time.Hour}
	c.Pipeline.PollInterval = Duration{time.Hour}
	c.Pipeline.Confirmation = "automatic"
	c.Pipeline.Workers = 8
	c.Privacy.Retention = Duration{720 * time.Hour}
	c.Shutdown.Timeout = Duration{10 * time.Second}
	c.History.KeepRevisions = 1_000_000
	return c
}

// loadConfig reads flags, then the config file they name (if any), then lets flags and ERASURED_*
// environment variables override file values (flags win). getenv is injectable for tests.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("erasured", flag.ContinueOnError)
	var (
		configPath    = fs.String("config", "", "configuration file (YAML); without it erasured runs the sandbox")
		listen        = fs.String("listen", "", "gRPC listen address (default 127.0.0.1:50051)")
		db            = fs.String("db", "", "bbolt database file (default var/erasure.db)")
		metricsListen = fs.String("metrics-listen", "", "Prometheus metrics listen address (default: off)")
	)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := defaultConfig()
	path := firstNonEmpty(*configPath, getenv("ERASURED_CONFIG"))
	if path == "" {
		c.sandbox = true
	} else {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Config{}, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c.Listen = firstNonEmpty(*listen, getenv("ERASURED_LISTEN"), c.Listen)
	c.DB = firstNonEmpty(*db, getenv("ERASURED_DB"), c.DB)
	c.MetricsListen = firstNonEmpty(*metricsListen, getenv("ERASURED_METRICS_LISTEN"), c.MetricsListen)
	if c.sandbox && c.Privacy.MasterKeyFile == "" {
		c.Privacy.MasterKeyFile = "var/master.key"
	}
	return c, c.validate()
}

// validate reports every problem of the configuration at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	}
	if c.DB == "" {
		bad("db is empty")
	}
	if c.Pipeline.Workers < 1 || c.Pipeline.Workers > 1000 {
		bad("pipeline.workers must be between 1 and 1000")
	}
	if c.History.KeepRevisions == 0 {
		bad("history.keep_revisions must be positive")
	}
	if c.Privacy.MasterKeyFile == "" {
		bad("privacy.master_key_file is required")
	}
	if n := len(c.LivePerson.Source); n == 0 || n > 20 {
		bad("liveperson.source must be 1 to 20 characters")
	}
	switch c.Pipeline.Confirmation {
	case "automatic", "manual":
	default:
		bad("pipeline.confirmation must be automatic or manual, not %q", c.Pipeline.Confirmation)
	}
	for name, d := range map[string]Duration{
		"pipeline.search_lag": c.Pipeline.SearchLag, "pipeline.batch_max_wait": c.Pipeline.BatchMaxWait,
		"pipeline.poll_interval": c.Pipeline.PollInterval, "liveperson.cancel_window": c.LivePerson.CancelWindow,
		"liveperson.deletion_window": c.LivePerson.DeletionWindow, "privacy.retention": c.Privacy.Retention,
		"shutdown.timeout": c.Shutdown.Timeout,
	} {
		if d.Duration < 0 {
			bad("%s must not be negative", name)
		}
	}
	seen := map[string]bool{}
	for i, a := range c.Accounts {
		switch {
		case a.ID == "":
			bad("accounts[%d].id is empty", i)
		case seen[a.ID]:
			bad("accounts[%d].id %q is listed twice", i, a.ID)
		}
		seen[a.ID] = true
		switch a.Region {
		case "us", "uk", "apac":
		default:
			bad("accounts[%d].region must be us, uk or apac, not %q", i, a.Region)
		}
		if a.MonthlyQuota < 0 {
			bad("accounts[%d].monthly_quota must not be negative", i)
		}
	}
	return errors.Join(errs...)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

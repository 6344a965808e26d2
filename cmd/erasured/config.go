package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/region"
	"github.com/erasured/erasured/service"
	"go.yaml.in/yaml/v3"
)

// Config is the configuration file (YAML). Its key names are a contract: deployments and test
// setups outside the project write them.
type Config struct {
	Listen        string `yaml:"listen"`
	MetricsListen string `yaml:"metrics_listen"`
	// DB is the bbolt file of store.backend bbolt; unused with etcd.
	DB string `yaml:"db"`
	// Store chooses the backend: bbolt at DB, or an etcd cluster shared by replicas.
	Store StoreConfig `yaml:"store"`
	// LogLevel is debug, info, warn or error (default info); SIGHUP reads it again.
	LogLevel   string `yaml:"log_level"`
	LivePerson struct {
		DomainAPIURL   string   `yaml:"domain_api_url"`
		Source         string   `yaml:"source"`
		CancelWindow   Duration `yaml:"cancel_window"`
		DeletionWindow Duration `yaml:"deletion_window"`
		// HostPatterns replace the residency guard's host patterns (path.Match syntax) of the
		// regions given, e.g. {uk: ["lo.*.liveperson.net", "lo-*.liveperson.net"]}.
		HostPatterns map[string][]string `yaml:"host_patterns"`
		// DiscoveryListForm asks the Domain API for all of an account's services at once before
		// asking for each alone. Off by default: LivePerson documents only the single form.
		DiscoveryListForm bool `yaml:"discovery_list_form"`
	} `yaml:"liveperson"`
	Accounts []Account `yaml:"accounts"`
	Pipeline struct {
		SearchLag Duration `yaml:"search_lag"`
		// BatchMaxWait bounds how long a record waits for a fuller batch (0, the default: no
		// bound). A part-full batch usually leaves when the first of its erasures must be sent
		// to meet its deadline, or when nothing more can join it; this is an upper bound on top.
		BatchMaxWait Duration `yaml:"batch_max_wait"`
		PollInterval Duration `yaml:"poll_interval"`
		Confirmation string   `yaml:"confirmation"`
		// Workers bounds how many erasures are worked on at once; each runs its LivePerson
		// searches one after another, so it also bounds searches in flight.
		Workers int `yaml:"workers"`
	} `yaml:"pipeline"`
	Privacy struct {
		// MasterKeyFile holds the master key (32 random bytes, base64); ERASURED_MASTER_KEY
		// (base64), when set, wins over it.
		MasterKeyFile string `yaml:"master_key_file"`
		MasterKeyID   string `yaml:"master_key_id"`
		// Retention is how long an erasure's sealed data is kept after its final state.
		Retention Duration `yaml:"retention"`
		// KeyDir holds the period keys and the root secret, sealed by the master key (default:
		// a "keys" directory beside the db file). KeyPeriod is how long one period key wraps new
		// data keys (default 24h, or the retention if shorter; at most the retention).
		KeyDir    string   `yaml:"key_dir"`
		KeyPeriod Duration `yaml:"key_period"`
	} `yaml:"privacy"`
	// TLS serves the gRPC listener, and a metrics listener beyond loopback, over TLS.
	TLS TLSConfig `yaml:"tls"`
	// Auth names the callers and their roles; see AuthConfig.
	Auth AuthConfig `yaml:"auth"`
	// Limits cap Watch streams and in-flight calls.
	Limits   LimitsConfig `yaml:"limits"`
	Shutdown struct {
		Timeout Duration `yaml:"timeout"`
	} `yaml:"shutdown"`
	// History bounds the change history Watch replays from: the newest KeepRevisions are kept.
	History struct {
		KeepRevisions uint64 `yaml:"keep_revisions"`
	} `yaml:"history"`
	// Tracing exports OpenTelemetry traces of the gRPC calls served and the LivePerson calls
	// made; see TracingConfig.
	Tracing TracingConfig `yaml:"tracing"`

	path              string              // the configuration file; "" in the sandbox
	sandbox           bool                // no config file: the sandbox
	sandboxSecret     string              // the simulator's client secret, in the sandbox only
	noCredentialCheck bool                // --no-credential-check
	noFiles           bool                // config check --no-files: referenced files are not opened
	getenv            func(string) string // where secrets in the environment are read; nil: none
	args              []string            // the command line, read again on SIGHUP
	// skipSecrets checks the account auth sections without reading a secret file: a SIGHUP
	// checks the whole file again, but the secrets are read at start only.
	skipSecrets bool
}

// Account is one LivePerson account the service may act on.
type Account struct {
	ID           string      `yaml:"id"`
	Region       string      `yaml:"region"`
	MonthlyQuota int         `yaml:"monthly_quota"`
	Auth         AccountAuth `yaml:"auth"`
}

// AccountAuth holds an account's LivePerson credentials and the method each service uses. Each
// secret is read from the file named, or from the environment, which wins:
// ERASURED_ACCOUNT_<id>_OAUTH2_CLIENT_SECRET, ERASURED_ACCOUNT_<id>_OAUTH1_CONSUMER_SECRET,
// ERASURED_ACCOUNT_<id>_OAUTH1_TOKEN_SECRET.
type AccountAuth struct {
	OAuth2 OAuth2Auth `yaml:"oauth2"`
	// OAuth1 is LivePerson's legacy app-key authentication (ended 2026-05-31).
	OAuth1 *OAuth1Auth `yaml:"oauth1"`
	// Services maps a LivePerson service (rtbf, engHistDomain, msgHist) to the method it uses,
	// oauth2 or oauth1. A service not listed uses oauth2 when it is configured, else oauth1:
	// LivePerson documents OAuth 2.0 only for Engagement History, so another service may need
	// the app keys.
	Services map[string]string `yaml:"services"`
}

// OAuth2Auth are OAuth 2.0 client credentials, exchanged at sentinel for tokens.
type OAuth2Auth struct {
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
}

// OAuth1Auth are LivePerson's four app-key values.
type OAuth1Auth struct {
	ConsumerKey        string `yaml:"consumer_key"`
	ConsumerSecretFile string `yaml:"consumer_secret_file"`
	Token              string `yaml:"token"`
	TokenSecretFile    string `yaml:"token_secret_file"`
}

// Duration is a time.Duration written as a Go duration string ("2h", "90s").
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// A type error lets decoding go on, so that every problem of the file is reported.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration", n.Line, s)}}
	}
	d.Duration = v
	return nil
}

// defaultConfig is the configuration before the file, the environment and the flags: the
// service's and the pipeline's defaults (service.DefaultConfig, service.DefaultPipelineConfig)
// and the server's own. docs/operations.md lists them; TestDocumentedDefaults keeps it true.
func defaultConfig() Config {
	sd, pd := service.DefaultConfig(), service.DefaultPipelineConfig()
	var c Config
	c.Listen = "127.0.0.1:50051"
	c.DB = "var/erasure.db"
	c.Store.Backend = backendBolt
	c.Store.Etcd = etcdDefaults()
	c.LivePerson.DomainAPIURL = "https://api.liveperson.net"
	c.LivePerson.Source = "erasured"
	c.LivePerson.CancelWindow = Duration{sd.CancelWindow}
	c.LivePerson.DeletionWindow = Duration{sd.DeletionWindow}
	c.Pipeline.SearchLag = Duration{pd.SearchLag}
	c.Pipeline.BatchMaxWait = Duration{pd.BatchMaxWait}
	c.Pipeline.PollInterval = Duration{sd.PollInterval}
	c.Pipeline.Confirmation = confirmationName(sd.DefaultConfirmation)
	c.Pipeline.Workers = pd.Workers
	c.Privacy.Retention = Duration{sd.Retention}
	c.Shutdown.Timeout = Duration{10 * time.Second}
	c.History.KeepRevisions = 1_000_000
	c.Tracing.SampleRatio = 1
	c.Tracing.ServiceName = "erasured"
	return c
}

// confirmations are the values of pipeline.confirmation.
var confirmations = map[string]service.Confirmation{
	"automatic": service.ConfirmationAutomatic,
	"manual":    service.ConfirmationManual,
}

// confirmationName is the pipeline.confirmation value of c.
func confirmationName(c service.Confirmation) string {
	for name, v := range confirmations {
		if v == c {
			return name
		}
	}
	return ""
}

// loadConfig reads flags, then the config file they name (if any), then lets ERASURED_*
// environment variables and flags override file values (flags win over the environment, the
// environment over the file). Account secrets are read too, from their files or
// ERASURED_ACCOUNT_* variables (see AccountAuth), so that every problem is reported at once,
// each by its key path and, when the file gives it, its line. getenv is injectable for tests.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	c, problems, lines, err := readConfigFile(args, getenv)
	if err != nil {
		return Config{}, err
	}
	return c, c.check(problems, lines)
}

// check is the one validation of a configuration, for the server's start and `config check`
// alike: the problems found while reading it and those of validate, with their lines.
func (c *Config) check(problems []error, lines map[string]int) error {
	return withLines(errors.Join(append(problems, c.validate())...), lines)
}

// readConfig is loadConfig without the checks: the flags, the file they name, the overrides.
// A problem of the file's shape (an unknown key, a value of the wrong kind) is an error.
func readConfig(args []string, getenv func(string) string) (Config, error) {
	c, problems, _, err := readConfigFile(args, getenv)
	if err == nil {
		err = errors.Join(problems...)
	}
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

// readConfigFile reads the flags, the file they name and the environment. problems are those
// of the file's shape and of the environment's values, all of them; lines maps each key path
// the file gives to its line. err is a problem that stops the reading.
func readConfigFile(args []string, getenv func(string) string) (c Config, problems []error, lines map[string]int, err error) {
	fs := flag.NewFlagSet("erasured", flag.ContinueOnError)
	var (
		configPath    = fs.String("config", "", "configuration file (YAML); without it erasured runs the sandbox")
		listen        = fs.String("listen", "", "gRPC listen address (default 127.0.0.1:50051)")
		db            = fs.String("db", "", "bbolt database file (default var/erasure.db)")
		metricsListen = fs.String("metrics-listen", "", "Prometheus metrics listen address (default: off)")
		logLevel      = fs.String("log-level", "", "debug, info, warn or error (default info)")
		noCheck       = fs.Bool("no-credential-check", false, "skip the start-up call that checks each account's LivePerson credentials")
	)
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, nil, err
	}
	if fs.NArg() > 0 {
		return Config{}, nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c = defaultConfig()
	c.getenv, c.noCredentialCheck = getenv, *noCheck
	path := firstNonEmpty(*configPath, getenv("ERASURED_CONFIG"))
	c.path = path
	lines = map[string]int{}
	if path == "" {
		c.sandbox = true
	} else {
		raw, err := readTrustFile(path) // whoever may write it decides who the callers are
		if err != nil {
			return Config{}, nil, nil, err
		}
		var root yaml.Node
		if err := yaml.Unmarshal(raw, &root); err != nil {
			return Config{}, nil, nil, fmt.Errorf("config %s: %w", path, err)
		}
		if root.Kind != 0 { // an empty file keeps the defaults
			problems = checkNode(&root, reflect.TypeFor[Config](), "", lines)
			// Every value of the wrong kind was reported above; decoding goes on past them
			// (see Duration), so that what follows in the file is still read and checked.
			if err := root.Decode(&c); err != nil && len(problems) == 0 {
				return Config{}, nil, nil, fmt.Errorf("config %s: %w", path, err)
			}
		}
	}
	problems = append(problems, c.applyEnv(getenv)...)
	c.Listen = firstNonEmpty(*listen, c.Listen)
	c.DB = firstNonEmpty(*db, c.DB)
	c.MetricsListen = firstNonEmpty(*metricsListen, c.MetricsListen)
	c.LogLevel = firstNonEmpty(*logLevel, c.LogLevel)
	if c.sandbox && c.Privacy.MasterKeyFile == "" {
		c.Privacy.MasterKeyFile = "var/master.key"
	}
	c.args = args
	return c, problems, lines, nil
}

// validate reports every problem of the configuration at once.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Pipeline.Workers < 1 || c.Pipeline.Workers > 1000 {
		bad("pipeline.workers must be between 1 and 1000")
	}
	if c.History.KeepRevisions == 0 {
		bad("history.keep_revisions must be positive")
	}
	switch {
	case c.Privacy.MasterKeyFile == "" && c.env("ERASURED_MASTER_KEY") == "":
		bad("privacy.master_key_file is required")
	case c.sandbox || c.skipSecrets || (c.noFiles && c.env("ERASURED_MASTER_KEY") == ""):
		// the sandbox creates its key; a reload and --no-files read no secret
	default:
		if _, source, err := readMasterKey(c.Privacy.MasterKeyFile, false, c.env); err != nil {
			if source == "ERASURED_MASTER_KEY" {
				bad("%v", err)
			} else {
				bad("privacy.master_key_file: %v", err)
			}
		}
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		bad("log_level: %v", err)
	}
	if err := checkURL("liveperson.domain_api_url", c.LivePerson.DomainAPIURL); err != nil {
		bad("%v", err)
	}
	for key, addr := range map[string]string{"listen": c.Listen, "metrics_listen": c.MetricsListen} {
		if err := checkPort(addr); addr != "" && err != nil {
			bad("%s: %v", key, err)
		}
	}
	if c.Privacy.KeyPeriod.Duration == 0 { // unset: a day, or the retention if shorter
		c.Privacy.KeyPeriod.Duration = min(service.DefaultKeyPeriod, c.Privacy.Retention.Duration)
	}
	if c.Privacy.Retention.Duration <= 0 || c.Privacy.KeyPeriod.Duration <= 0 {
		bad("privacy.retention and privacy.key_period must be positive")
	} else if c.Privacy.KeyPeriod.Duration > c.Privacy.Retention.Duration {
		bad("privacy.key_period (%s) must not be longer than privacy.retention (%s)", c.Privacy.KeyPeriod.Duration, c.Privacy.Retention.Duration)
	}
	if n := len(c.LivePerson.Source); n == 0 || n > 20 {
		bad("liveperson.source must be 1 to 20 characters")
	}
	if _, ok := confirmations[c.Pipeline.Confirmation]; !ok {
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
	if len(c.Accounts) == 0 && !c.sandbox {
		// The service refuses an erasure of an account not listed; with none listed it would
		// take any account's, and then fail it at LivePerson, having stored the subject.
		bad("accounts is empty: list the LivePerson accounts erasured may erase in (accounts[].id, .region, .auth)")
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
		if !slices.Contains(region.Regions(), a.Region) {
			bad("accounts[%d].region must be us, uk or apac, not %q", i, a.Region)
		}
		if a.MonthlyQuota < 0 {
			bad("accounts[%d].monthly_quota must not be negative", i)
		}
	}
	for _, reg := range slices.Sorted(maps.Keys(c.LivePerson.HostPatterns)) {
		pats := c.LivePerson.HostPatterns[reg]
		if !slices.Contains(region.Regions(), reg) {
			bad("liveperson.host_patterns.%s: unknown region (us, uk or apac)", reg)
		}
		if len(pats) == 0 {
			bad("liveperson.host_patterns.%s is empty", reg)
		}
		for i, p := range pats {
			if err := region.CheckPattern(p); err != nil {
				bad("liveperson.host_patterns.%s[%d]: %v", reg, i, err)
			}
		}
	}
	_, cerr := c.credentials()
	_, aerr := c.callers()
	return errors.Join(append(errs, cerr, aerr, c.checkListeners(), c.Tracing.check(), c.checkStore())...)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// authServices are the LivePerson services erasured calls with an account's credentials.
var authServices = []string{liveperson.ServiceDeletion, liveperson.ServiceEngagements, liveperson.ServiceMessaging}

// credentials are one account's secrets, read, and the method each service uses.
type credentials struct {
	oauth2 *liveperson.ClientCredentials // nil when not configured
	oauth1 *liveperson.OAuth1Keys        // nil when not configured
	// methods is the method of every one of authServices, and under "" the method of any
	// other service.
	methods map[string]string
}

// credentials checks every account's auth section and reads its secrets from files or the
// environment. It reports every problem at once, naming the key, never a secret.
func (c *Config) credentials() (map[string]credentials, error) {
	out := make(map[string]credentials, len(c.Accounts))
	var errs []error
	for i, a := range c.Accounts {
		cr, aerrs := c.accountCredentials(i, a)
		out[a.ID] = cr
		errs = append(errs, aerrs...)
	}
	return out, errors.Join(errs...)
}

func (c *Config) accountCredentials(i int, a Account) (credentials, []error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("accounts[%d].auth%s", i, fmt.Sprintf(format, args...)))
	}
	// secret reads one secret: the environment variable wins over the file. ok is false when a
	// problem was reported already.
	secret := func(key, file, env string) (v string, ok bool) {
		if v := strings.TrimSpace(c.env(env)); v != "" {
			return v, true
		}
		if file == "" {
			return "", true
		}
		if c.skipSecrets || c.noFiles {
			return "(not read)", true
		}
		raw, err := readSecretFile(file)
		if err != nil {
			bad(".%s: %v", key, err)
			return "", false
		}
		if v = strings.TrimSpace(string(raw)); v == "" {
			bad(".%s: %s is empty", key, file)
			return "", false
		}
		return v, true
	}
	var cr credentials
	if o2 := a.Auth.OAuth2; o2.ClientID != "" || o2.ClientSecretFile != "" {
		if o2.ClientID == "" {
			bad(".oauth2.client_id is required")
		}
		env := secretEnv(a.ID, "OAUTH2_CLIENT_SECRET")
		v, ok := secret("oauth2.client_secret_file", o2.ClientSecretFile, env)
		if ok && v == "" {
			v = c.sandboxSecret
		}
		if ok && v == "" {
			bad(".oauth2: a client secret is required (client_secret_file or %s)", env)
		}
		cr.oauth2 = &liveperson.ClientCredentials{ClientID: o2.ClientID, ClientSecret: v}
	}
	if o1 := a.Auth.OAuth1; o1 != nil {
		if o1.ConsumerKey == "" {
			bad(".oauth1.consumer_key is required")
		}
		if o1.Token == "" {
			bad(".oauth1.token is required")
		}
		keys := liveperson.OAuth1Keys{ConsumerKey: o1.ConsumerKey, Token: o1.Token}
		for _, s := range []struct {
			key, file, env string
			into           *string
		}{
			{"oauth1.consumer_secret_file", o1.ConsumerSecretFile, secretEnv(a.ID, "OAUTH1_CONSUMER_SECRET"), &keys.ConsumerSecret},
			{"oauth1.token_secret_file", o1.TokenSecretFile, secretEnv(a.ID, "OAUTH1_TOKEN_SECRET"), &keys.TokenSecret},
		} {
			v, ok := secret(s.key, s.file, s.env)
			if ok && v == "" {
				bad(".%s or %s is required", s.key, s.env)
			}
			*s.into = v
		}
		cr.oauth1 = &keys
	}
	def := liveperson.MethodOAuth2
	switch {
	case cr.oauth2 != nil:
	case cr.oauth1 != nil:
		def = liveperson.MethodOAuth1
	default:
		bad(": oauth2 or oauth1 credentials are required")
	}
	for _, svc := range slices.Sorted(maps.Keys(a.Auth.Services)) {
		m := a.Auth.Services[svc]
		switch {
		case !slices.Contains(authServices, svc):
			bad(".services.%s: unknown service (rtbf, engHistDomain or msgHist)", svc)
		case m == liveperson.MethodOAuth2 && cr.oauth2 == nil, m == liveperson.MethodOAuth1 && cr.oauth1 == nil:
			bad(".services.%s: %s is not configured for the account", svc, m)
		case m != liveperson.MethodOAuth2 && m != liveperson.MethodOAuth1:
			bad(".services.%s: unknown method %q (oauth2 or oauth1)", svc, m)
		}
	}
	cr.methods = map[string]string{"": def}
	for _, svc := range authServices {
		cr.methods[svc] = cmp.Or(a.Auth.Services[svc], def)
	}
	return cr, errs
}

// secretEnv names the environment variable of one of an account's secrets, e.g.
// ERASURED_ACCOUNT_12345678_OAUTH2_CLIENT_SECRET.
func secretEnv(account, name string) string {
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return '_'
	}, account)
	return "ERASURED_ACCOUNT_" + id + "_" + name
}

func (c *Config) env(name string) string {
	if c.getenv == nil {
		return ""
	}
	return c.getenv(name)
}

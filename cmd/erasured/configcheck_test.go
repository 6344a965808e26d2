package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigCheckReportsEveryProblem: one run names every problem of the file, each by its key
// path and line, the bad duration among them, and none in Go's words.
func TestConfigCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "bad.yaml", `listen: 127.0.0.1:99999
lisen: 127.0.0.1:1
liveperson:
  domain_api_url: ftp://api.liveperson.net
  cancel_windw: 1h
pipeline:
  search_lag: 20d
  workers: many
  poll_interval: [1]
shutdown:
  timeout: 3d
log_level: loud
accounts:
  - id: "1"
    region: us
    auth:
      oauth2:
        client_id: abc
        client_secret: inline
privacy:
  master_key_file: `+filepath.Join(dir, "missing.key")+`
`, 0o600)
	var out bytes.Buffer
	err := configMain([]string{"check", path}, &out, noEnv)
	if err == nil {
		t.Fatal("config check of a bad file succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		"line 1: listen: port \"99999\"",
		"line 2: lisen: unknown key",
		"line 4: liveperson.domain_api_url: scheme \"ftp\" is not http or https",
		"line 5: liveperson.cancel_windw: unknown key",
		"line 7: pipeline.search_lag: \"20d\" is not a duration",
		"line 8: pipeline.workers: \"many\" is not a whole number",
		"line 9: pipeline.poll_interval: want a duration",
		"line 11: shutdown.timeout: \"3d\" is not a duration",
		"line 12: log_level: \"loud\" is not a log level",
		"line 19: accounts[0].auth.oauth2.client_secret: unknown key",
		"line 18: accounts[0].auth.oauth2: a client secret is required",
		"line 21: privacy.master_key_file: master key: open",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the report does not say %q:\n%s", want, msg)
		}
	}
	for _, goWord := range []string{"main.", "in type", "!!str", "unmarshal"} {
		if strings.Contains(msg, goWord) {
			t.Errorf("the report speaks Go (%q):\n%s", goWord, msg)
		}
	}
}

// goodConfig writes a configuration for a real start whose secrets are files in dir.
func goodConfig(t *testing.T, dir string, files bool) string {
	t.Helper()
	secret, key := filepath.Join(dir, "client-secret"), filepath.Join(dir, "master.key")
	if files {
		writeFile(t, dir, "client-secret", "s3cret\n", 0o600)
		key = testMasterKey(t, dir)
	}
	return writeFile(t, dir, "erasured.yaml", `listen: 127.0.0.1:0
db: `+filepath.Join(dir, "erasure.db")+`
log_level: warn
accounts:
  - id: "1234"
    region: us
    auth:
      oauth2:
        client_id: abc
        client_secret_file: `+secret+`
privacy:
  master_key_file: `+key+`
`, 0o600)
}

func TestConfigCheckExitAndNoFiles(t *testing.T) {
	withFiles := goodConfig(t, t.TempDir(), true)
	without := goodConfig(t, t.TempDir(), false)
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
		want string // in the output or the error
	}{
		{"a good file", []string{"config", "check", withFiles}, true, withFiles + ": ok"},
		{"missing secret files", []string{"config", "check", without}, false, "accounts[0].auth.oauth2.client_secret_file"},
		{"missing secret files, --no-files", []string{"config", "check", "--no-files", without}, true, ": ok"},
		{"the deploy/ example, --no-files", []string{"config", "check", "--no-files", "../../deploy/erasured.yaml"}, true, ": ok"},
		{"the deploy/ replica example, --no-files", []string{"config", "check", "--no-files", "../../deploy/erasured-replica.yaml"}, true, ": ok"},
		{"no file named", []string{"config", "check"}, false, "usage:"},
		{"no subcommand", []string{"config"}, false, "usage:"},
		{"help", []string{"config", "--help"}, true, "--no-files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			handled, err := dispatch(context.Background(), tc.args, &out, &errOut)
			if !handled {
				t.Fatal("config is not a command")
			}
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			got := out.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("output %q does not contain %q", got, tc.want)
			}
		})
	}
}

// TestEnvForEverySetting: each scalar setting has its ERASURED_* variable named after its key;
// a flag wins over the environment, the environment over the file.
func TestEnvForEverySetting(t *testing.T) {
	names := map[string]string{}
	for _, s := range envSettings {
		names[s.key] = s.env
	}
	for key, env := range map[string]string{
		"listen": "ERASURED_LISTEN", "db": "ERASURED_DB", "metrics_listen": "ERASURED_METRICS_LISTEN",
		"log_level": "ERASURED_LOG_LEVEL", "pipeline.search_lag": "ERASURED_PIPELINE_SEARCH_LAG",
		"pipeline.workers": "ERASURED_PIPELINE_WORKERS", "liveperson.discovery_list_form": "ERASURED_LIVEPERSON_DISCOVERY_LIST_FORM",
		"history.keep_revisions": "ERASURED_HISTORY_KEEP_REVISIONS", "tls.client_ca_file": "ERASURED_TLS_CLIENT_CA_FILE",
		"limits.max_calls_per_principal": "ERASURED_LIMITS_MAX_CALLS_PER_PRINCIPAL", "shutdown.timeout": "ERASURED_SHUTDOWN_TIMEOUT",
		"privacy.master_key_file": "ERASURED_PRIVACY_MASTER_KEY_FILE", "auth.tokens_file": "ERASURED_AUTH_TOKENS_FILE",
	} {
		if names[key] != env {
			t.Errorf("%s: variable %q, want %q", key, names[key], env)
		}
	}
	if len(envSettings) < 25 {
		t.Errorf("only %d settings have a variable", len(envSettings))
	}

	dir := t.TempDir()
	path := goodConfig(t, dir, true)
	env := map[string]string{
		"ERASURED_LISTEN":                         "127.0.0.1:7001",
		"ERASURED_PIPELINE_SEARCH_LAG":            "90s",
		"ERASURED_PIPELINE_WORKERS":               "3",
		"ERASURED_LIVEPERSON_DISCOVERY_LIST_FORM": "true",
		"ERASURED_LOG_LEVEL":                      "debug",
		"ERASURED_LIVEPERSON_SOURCE":              "12345", // a string, even when it looks like a number
	}
	getenv := func(k string) string { return env[k] }
	c, err := loadConfig([]string{"--config", path, "--log-level", "error"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7001" || c.Pipeline.SearchLag.Duration != 90*time.Second || c.Pipeline.Workers != 3 ||
		!c.LivePerson.DiscoveryListForm || c.LivePerson.Source != "12345" {
		t.Errorf("the environment did not win over the file: %+v", c)
	}
	if c.LogLevel != "error" {
		t.Errorf("log level = %q, want the flag's over the environment's and the file's", c.LogLevel)
	}

	env["ERASURED_PIPELINE_WORKERS"], env["ERASURED_SHUTDOWN_TIMEOUT"] = "lots", "2d"
	_, err = loadConfig([]string{"--config", path}, getenv)
	for _, want := range []string{"ERASURED_PIPELINE_WORKERS (for pipeline.workers)", "ERASURED_SHUTDOWN_TIMEOUT (for shutdown.timeout)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a bad value in the environment: %v, want it named by %q", err, want)
		}
	}
}

// TestConfigCheckIsTheStartsCheck: the start refuses what config check reports, with the same
// words.
func TestConfigCheckIsTheStartsCheck(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.yaml", "pipeline:\n  search_lag: 20d\n  batch_max_wait: 1w\n", 0o600)
	err := realMain(context.Background(), []string{"--config", path})
	if err == nil {
		t.Fatal("erasured started with a bad file")
	}
	for _, want := range []string{"line 2: pipeline.search_lag", "line 3: pipeline.batch_max_wait", "privacy.master_key_file is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start error does not say %q:\n%v", want, err)
		}
	}
	_ = os.Remove(path)
}

// TestConfigCheckDomainAPIURL: config check refuses a Domain API URL that the LivePerson client
// would refuse at start (one with a path), in the client's words, by key path and line; a
// trailing slash, which the client accepts, passes.
func TestConfigCheckDomainAPIURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // in the error; "" for a file that passes
	}{
		{"https://api.liveperson.net", ""},
		{"https://api.liveperson.net/", ""},
		{"http://127.0.0.1:8080", ""},
		{"https://api.liveperson.net/x", `line 2: liveperson.domain_api_url: "https://api.liveperson.net/x" has a path: the domain API URL must be http(s)://host[:port]`},
		{"https://api.liveperson.net/api/account/", `line 2: liveperson.domain_api_url: "https://api.liveperson.net/api/account/" has a path`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			dir := t.TempDir()
			good, err := os.ReadFile(goodConfig(t, dir, true))
			if err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, dir, "c.yaml", "liveperson:\n  domain_api_url: "+tc.url+"\n"+string(good), 0o600)
			var out bytes.Buffer
			err = configMain([]string{"check", path}, &out, noEnv)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("config check = %v, want ok", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("config check = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

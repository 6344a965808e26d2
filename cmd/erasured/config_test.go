package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestSandboxDefaults(t *testing.T) {
	c, err := loadConfig(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !c.sandbox || c.Listen != "127.0.0.1:50051" || c.DB != "var/erasure.db" || c.Privacy.MasterKeyFile != "var/master.key" {
		t.Errorf("sandbox config = %+v", c)
	}
}

func TestConfigFileAndOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "erasured.yaml")
	os.WriteFile(path, []byte(`
listen: 127.0.0.1:6000
db: /tmp/x.db
liveperson:
  domain_api_url: http://127.0.0.1:9999
  source: brandx
  cancel_window: 2s
  deletion_window: 3s
accounts:
  - id: "1234"
    region: uk
    monthly_quota: 50
    auth:
      oauth2:
        client_id: abc
        client_secret_file: /run/secret
pipeline:
  search_lag: 1s
  batch_max_wait: 500ms
  poll_interval: 100ms
privacy:
  master_key_file: /run/master.key
  retention: 1h
`), 0o600)
	env := map[string]string{"ERASURED_DB": "/tmp/from-env.db"}
	c, err := loadConfig([]string{"--config", path, "--listen", "127.0.0.1:7000"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.sandbox {
		t.Error("a config file means not the sandbox")
	}
	if c.Listen != "127.0.0.1:7000" {
		t.Errorf("listen = %q, want the flag's value", c.Listen)
	}
	if c.DB != "/tmp/from-env.db" {
		t.Errorf("db = %q, want the env value", c.DB)
	}
	if c.LivePerson.CancelWindow.Duration != 2*time.Second || c.Pipeline.PollInterval.Duration != 100*time.Millisecond {
		t.Errorf("durations = %v %v", c.LivePerson.CancelWindow, c.Pipeline.PollInterval)
	}
	if a := c.Accounts[0]; a.ID != "1234" || a.Region != "uk" || a.MonthlyQuota != 50 || a.Auth.OAuth2.ClientSecretFile != "/run/secret" {
		t.Errorf("account = %+v", a)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`
listen: nowhere
liveperson:
  source: this-source-name-is-far-too-long
accounts:
  - id: "1"
    region: mars
  - id: "1"
    region: us
`), 0o600)
	_, err := loadConfig([]string{"--config", path}, noEnv)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"listen", "master_key_file", "liveperson.source", "region must be", "listed twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestConfigUnknownKeyAndBadDuration(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":  "lisen: 127.0.0.1:1\n",
		"bad duration": "pipeline:\n  search_lag: soon\n",
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := loadConfig([]string{"--config", path}, noEnv); err == nil {
			t.Errorf("%s: loadConfig succeeded, want an error", name)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:50051": true, "localhost:1": true, "[::1]:1": true,
		"0.0.0.0:50051": false, ":50051": false, "10.0.0.1:1": false,
	} {
		if err := checkListen(addr); (err == nil) != ok {
			t.Errorf("checkListen(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestLoadKeyringCreatesSandboxKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "master.key")
	k1, err := loadKeyring(path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadKeyring(path, "", false)
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("reload = %v, %v; want the same key id %s", k2, err, k1.ID())
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := loadKeyring(filepath.Join(t.TempDir(), "missing"), "", false); err == nil {
		t.Error("a missing key outside the sandbox must be an error")
	}
}

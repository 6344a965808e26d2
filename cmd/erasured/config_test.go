package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	path := filepath.Join(dir, "erasured.yaml")
	os.WriteFile(path, []byte(`
listen: 127.0.0.1:6000
db: /tmp/x.db
liveperson:
  domain_api_url: http://127.0.0.1:9999
  source: brandx
  cancel_window: 2s
  deletion_window: 3s
  discovery_list_form: true
  host_patterns:
    uk: ["eu-*.liveperson.net"]
accounts:
  - id: "1234"
    region: uk
    monthly_quota: 50
    auth:
      oauth2:
        client_id: abc
        client_secret_file: `+secret+`
      oauth1:
        consumer_key: ck
        consumer_secret_file: `+secret+`
        token: tk
        token_secret_file: `+secret+`
      services:
        msgHist: oauth1
pipeline:
  search_lag: 1s
  batch_max_wait: 500ms
  poll_interval: 100ms
privacy:
  master_key_file: `+testMasterKey(t, dir)+`
  retention: 1h
`), 0o600)
	env := map[string]string{"ERASURED_DB": "/tmp/from-env.db"}
	c, err := loadConfig([]string{"--config", path, "--listen", "127.0.0.1:7000", "--no-credential-check"},
		func(k string) string { return env[k] })
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
	if a := c.Accounts[0]; a.ID != "1234" || a.Region != "uk" || a.MonthlyQuota != 50 || a.Auth.OAuth2.ClientSecretFile != secret {
		t.Errorf("account = %+v", a)
	}
	if lp := c.LivePerson; !lp.DiscoveryListForm || len(lp.HostPatterns) != 1 || lp.HostPatterns["uk"][0] != "eu-*.liveperson.net" {
		t.Errorf("discovery_list_form = %v, host_patterns = %v", lp.DiscoveryListForm, lp.HostPatterns)
	}
	if !c.noCredentialCheck {
		t.Error("--no-credential-check not taken")
	}
	creds, err := c.credentials()
	if err != nil {
		t.Fatal(err)
	}
	cr := creds["1234"]
	if cr.oauth2 == nil || cr.oauth2.ClientSecret != "s3cret" || cr.oauth1 == nil || cr.oauth1.TokenSecret != "s3cret" {
		t.Errorf("credentials = %+v", cr)
	}
	want := map[string]string{"": "oauth2", "rtbf": "oauth2", "engHistDomain": "oauth2", "msgHist": "oauth1"}
	if diff := cmp.Diff(want, cr.methods); diff != "" {
		t.Errorf("methods (-want +got):\n%s", diff)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(`
listen: nowhere
liveperson:
  source: this-source-name-is-far-too-long
  host_patterns:
    us: ["va.[x"]
    uk: ["lo.*.liveperson.net", "lo.*"]
    eu: ["eu.*"]
    apac: []
accounts:
  - id: "1"
    region: mars
  - id: "1"
    region: us
    auth:
      oauth2:
        client_secret_file: `+filepath.Join(dir, "missing")+`
      services:
        msgHist: oauth1
        chat: oauth2
  - id: "3"
    region: uk
    auth:
      oauth1:
        consumer_key: ck
      services:
        rtbf: basic
`), 0o600)
	_, err := loadConfig([]string{"--config", path}, noEnv)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"listen", "master_key_file", "liveperson.source", "region must be", "listed twice",
		"liveperson.host_patterns.us[0]", "liveperson.host_patterns.uk[1]: host pattern \"lo.*\" must end in a literal domain",
		"liveperson.host_patterns.eu: unknown region", "liveperson.host_patterns.apac is empty",
		"accounts[0].auth: oauth2 or oauth1 credentials are required",
		"accounts[1].auth.oauth2.client_id is required", "accounts[1].auth.oauth2.client_secret_file: open",
		"accounts[1].auth.services.msgHist: oauth1 is not configured", "accounts[1].auth.services.chat: unknown service",
		"accounts[2].auth.oauth1.token is required", "ERASURED_ACCOUNT_3_OAUTH1_CONSUMER_SECRET",
		"accounts[2].auth.services.rtbf: unknown method"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

// TestConfigSecretsFromEnv: a secret in ERASURED_ACCOUNT_<id>_… serves without a file and
// wins over one; an account with only app keys uses them for every service.
func TestConfigSecretsFromEnv(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	c := defaultConfig()
	c.Accounts = []Account{{ID: "1111", Region: "us"}, {ID: "2222", Region: "us"}}
	c.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: "id", ClientSecretFile: file}
	c.Accounts[1].Auth.OAuth1 = &OAuth1Auth{ConsumerKey: "ck", Token: "tk", TokenSecretFile: file}
	env := map[string]string{
		"ERASURED_ACCOUNT_1111_OAUTH2_CLIENT_SECRET":   "from-env",
		"ERASURED_ACCOUNT_2222_OAUTH1_CONSUMER_SECRET": "cs-env",
	}
	c.getenv = func(k string) string { return env[k] }
	creds, err := c.credentials()
	if err != nil {
		t.Fatal(err)
	}
	if got := creds["1111"].oauth2.ClientSecret; got != "from-env" {
		t.Errorf("client secret = %q, want the environment's", got)
	}
	if k := creds["2222"].oauth1; k.ConsumerSecret != "cs-env" || k.TokenSecret != "from-file" {
		t.Errorf("app keys = %+v, want the consumer secret from env and the token secret from the file", k)
	}
	for _, svc := range authServices {
		if m := creds["2222"].methods[svc]; m != "oauth1" {
			t.Errorf("account with app keys only: %s uses %q, want oauth1", svc, m)
		}
	}
	delete(env, "ERASURED_ACCOUNT_2222_OAUTH1_CONSUMER_SECRET")
	if _, err := c.credentials(); err == nil || !strings.Contains(err.Error(), "ERASURED_ACCOUNT_2222_OAUTH1_CONSUMER_SECRET") {
		t.Errorf("missing consumer secret: %v", err)
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

// TestSecretFileReadableByOthersRefused: an account secret file that group or others can read
// stops the start, naming the key and the file.
func TestSecretFileReadableByOthersRefused(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := defaultConfig()
	c.Accounts = []Account{{ID: "1234", Region: "us"}}
	c.Accounts[0].Auth.OAuth2 = OAuth2Auth{ClientID: "abc", ClientSecretFile: secret}
	_, err := c.credentials()
	if err == nil || !strings.Contains(err.Error(), "accounts[0].auth.oauth2.client_secret_file") || !strings.Contains(err.Error(), secret) {
		t.Fatalf("credentials() with a 0644 secret file = %v, want an error naming the key and the file", err)
	}
	os.Chmod(secret, 0o600)
	if _, err := c.credentials(); err != nil {
		t.Errorf("credentials() with a 0600 secret file = %v", err)
	}
}

// TestConfigWithoutAccountsRefused: a configuration file that lists no account (the key left out
// or an empty list) is refused, by the server's start before the store is created and by the
// same check `config check` runs, instead of letting Submit take an erasure in any account.
func TestConfigWithoutAccountsRefused(t *testing.T) {
	for _, accounts := range []string{"", "accounts: []\n"} {
		dir := t.TempDir()
		key := writeFile(t, dir, "master.key", strings.Repeat("A", 43)+"=\n", 0o600)
		db := filepath.Join(dir, "erasure.db")
		path := writeFile(t, dir, "erasured.yaml", "listen: 127.0.0.1:0\ndb: "+db+"\nprivacy: {master_key_file: "+key+"}\n"+accounts, 0o600)
		_, err := loadConfig([]string{"--config", path}, noEnv)
		if err == nil || !strings.Contains(err.Error(), "accounts is empty") {
			t.Errorf("%q: loadConfig = %v, want accounts is empty", accounts, err)
		}
		err = runUntil(t, []string{"--config", path, "--no-credential-check"}, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "accounts is empty") {
			t.Errorf("%q: realMain = %v, want accounts is empty", accounts, err)
		}
		if _, err := os.Stat(db); err == nil {
			t.Errorf("%q: the store was created", accounts)
		}
	}
}

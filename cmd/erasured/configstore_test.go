package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// storeConfig writes a configuration for a real start (secrets and master key in dir) whose
// store section is body.
func storeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	return writeFile(t, dir, "erasured.yaml", `listen: 127.0.0.1:0
db: `+filepath.Join(dir, "erasure.db")+`
`+accountsYAML(t, dir)+`privacy:
  master_key_file: `+testMasterKey(t, dir)+`
`+body, 0o600)
}

// TestStoreConfig: the store section as a start and config check read it: the defaults, each
// setting's checks (endpoints are etcd client URLs, TLS files only with https and then read
// and parsed, a prefix that ends in "/", a lease of whole seconds from 3 s), each problem by its
// key and line, and nothing of etcd checked with bbolt.
func TestStoreConfig(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	notPEM := writeFile(t, dir, "not.pem", "not a certificate\n", 0o644)
	openKey := writeFile(t, dir, "open.key", "x\n", 0o644)
	for _, tc := range []struct {
		name  string
		body  string
		wants []string // problems; none: the file is good
	}{
		{"no store section: bbolt", "", nil},
		{"bbolt ignores etcd's settings", "store:\n  etcd:\n    prefix: nope\n    lease_ttl: 1s\n", nil},
		{"etcd over http", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://10.0.0.5:2379\", \"http://10.0.0.6:2379\"]\n", nil},
		{"etcd over TLS with a client certificate", "store:\n  backend: etcd\n  replica_id: eu-1\n  etcd:\n    endpoints: [\"https://10.0.0.5:2379\"]\n    ca_file: " +
			pki.CAFile + "\n    cert_file: " + pki.CertFile + "\n    key_file: " + pki.KeyFile + "\n    prefix: /erasured/prod/\n    dial_timeout: 2s\n    lease_ttl: 15s\n", nil},
		{"etcd over TLS with a CA only", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"https://10.0.0.5:2379\"]\n    ca_file: " + pki.CAFile + "\n", nil},
		{"unknown backend", "store:\n  backend: postgres\n", []string{`line 7: store.backend must be bbolt or etcd, not "postgres"`}},
		{"unknown etcd key", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    username: x\n", []string{"line 10: store.etcd.username: unknown key"}},
		{"no endpoints", "store:\n  backend: etcd\n", []string{"store.etcd.endpoints is empty"}},
		{"endpoints not URLs", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"10.0.0.5:2379\", \"https://a:2379/v3\", \"unix:///run/etcd\", \"http://a\"]\n", []string{
			`line 9: store.etcd.endpoints[0]: "10.0.0.5:2379" is not an etcd client URL`,
			`store.etcd.endpoints[1]: "https://a:2379/v3" is not an etcd client URL`,
			`store.etcd.endpoints[2]: "unix:///run/etcd" is not an etcd client URL`,
			`store.etcd.endpoints[3]: "http://a" has no port`}},
		{"mixed schemes", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\", \"https://b:2379\"]\n    ca_file: " + pki.CAFile + "\n",
			[]string{"store.etcd.endpoints mix http:// and https://"}},
		{"https without a CA", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"https://a:2379\"]\n", []string{"store.etcd.ca_file is required with https:// endpoints"}},
		{"TLS files with http", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    ca_file: " + pki.CAFile + "\n",
			[]string{"store.etcd.ca_file, cert_file and key_file need https:// endpoints"}},
		{"certificate without its key", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"https://a:2379\"]\n    ca_file: " + pki.CAFile + "\n    cert_file: " + pki.CertFile + "\n",
			[]string{"store.etcd.key_file is required with store.etcd.cert_file"}},
		{"key without its certificate", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"https://a:2379\"]\n    ca_file: " + pki.CAFile + "\n    key_file: " + pki.KeyFile + "\n",
			[]string{"store.etcd.cert_file is required with store.etcd.key_file"}},
		{"unreadable and unparsable TLS files", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"https://a:2379\"]\n    ca_file: " + notPEM + "\n    cert_file: " +
			filepath.Join(dir, "missing.crt") + "\n    key_file: " + openKey + "\n", []string{
			"store.etcd.ca_file: " + notPEM + " holds no PEM certificate",
			"store.etcd.cert_file: open " + filepath.Join(dir, "missing.crt"),
			"store.etcd.key_file: " + openKey + " is accessible by group or others"}},
		{"a certificate that is not the key's", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"https://a:2379\"]\n    ca_file: " + pki.CAFile + "\n    cert_file: " +
			pki.CAFile + "\n    key_file: " + pki.KeyFile + "\n", []string{"store.etcd.cert_file, key_file: not a certificate and its private key"}},
		{"prefix without a trailing slash", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    prefix: /erasured\n",
			[]string{`line 10: store.etcd.prefix must end in "/", not "/erasured"`}},
		{"bad timings", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    dial_timeout: 0s\n    lease_ttl: 2s\n", []string{
			"line 10: store.etcd.dial_timeout must be positive", "line 11: store.etcd.lease_ttl must be from 3s to 1h, not 2s"}},
		{"a lease of part of a second", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    lease_ttl: 4500ms\n",
			[]string{"store.etcd.lease_ttl must be whole seconds"}},
		{"a transaction limit below 16", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    max_txn_ops: 8\n",
			[]string{"line 10: store.etcd.max_txn_ops must be at least 16, not 8"}},
		{"a transaction limit that is not a number", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    max_txn_ops: many\n",
			[]string{"line 10: store.etcd.max_txn_ops: \"many\" is not a whole number"}},
		{"etcd's raised transaction limit", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    max_txn_ops: 1024\n", nil},
		{"a lease too short for LivePerson's calls", "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    lease_ttl: 5s\n",
			[]string{"line 10: store.etcd.lease_ttl must be at least 10s, not 5s"}},
		{"a short lease against a simulator on loopback", "liveperson:\n  domain_api_url: http://127.0.0.1:9\nstore:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://a:2379\"]\n    lease_ttl: 3s\n", nil},
		{"a replica id with spaces", "store:\n  replica_id: \"eu 1\"\n", []string{"line 7: store.replica_id must be at most 128 printable characters"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := storeConfig(t, t.TempDir(), tc.body)
			_, err := loadConfig([]string{"--config", path}, noEnv)
			if len(tc.wants) == 0 {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("loadConfig accepted the file")
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the problems do not say %q:\n%v", want, err)
				}
			}
			if n, want := len(flatten(err)), len(tc.wants); n != want {
				t.Errorf("%d problems, want %d:\n%v", n, want, err)
			}
		})
	}
}

// TestStoreConfigDefaultsAndEnv: the store section's defaults, and its ERASURED_* variables
// over the file, the endpoints separated by commas.
func TestStoreConfigDefaultsAndEnv(t *testing.T) {
	dir := t.TempDir()
	path := storeConfig(t, dir, "store:\n  etcd:\n    endpoints: [\"http://file:2379\"]\n")
	c, err := loadConfig([]string{"--config", path}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Store.Etcd
	if c.Store.Backend != "bbolt" || e.Prefix != "/erasured/" || e.DialTimeout.Duration != 5*time.Second || e.LeaseTTL.Duration != 10*time.Second || e.MaxTxnOps != 128 || c.Store.ReplicaID != "" {
		t.Errorf("defaults = %+v", c.Store)
	}
	host, _ := os.Hostname()
	if id := c.Store.replicaID(); !strings.HasPrefix(id, host+"-") || !strings.HasSuffix(id, "-"+strconv.Itoa(os.Getpid())) {
		t.Errorf("default replica id %q, want the host name and the process id", id)
	}
	env := map[string]string{
		"ERASURED_STORE_BACKEND":           "etcd",
		"ERASURED_STORE_ETCD_ENDPOINTS":    " http://10.0.0.5:2379, http://10.0.0.6:2379 ,,",
		"ERASURED_STORE_ETCD_PREFIX":       "/erasured/staging/",
		"ERASURED_STORE_ETCD_DIAL_TIMEOUT": "3s",
		"ERASURED_STORE_ETCD_LEASE_TTL":    "20s",
		"ERASURED_STORE_ETCD_MAX_TXN_OPS":  "1024",
		"ERASURED_STORE_REPLICA_ID":        "replica-b",
	}
	c, err = loadConfig([]string{"--config", path}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	e = c.Store.Etcd
	if !c.Store.shared() || strings.Join(e.Endpoints, " ") != "http://10.0.0.5:2379 http://10.0.0.6:2379" || e.Prefix != "/erasured/staging/" ||
		e.DialTimeout.Duration != 3*time.Second || e.LeaseTTL.Duration != 20*time.Second || e.MaxTxnOps != 1024 || c.Store.replicaID() != "replica-b" {
		t.Errorf("from the environment: %+v", c.Store)
	}
	env["ERASURED_STORE_ETCD_LEASE_TTL"] = "long"
	if _, err := loadConfig([]string{"--config", path}, func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), "ERASURED_STORE_ETCD_LEASE_TTL (for store.etcd.lease_ttl)") {
		t.Errorf("a bad lease from the environment: %v", err)
	}
}

// TestSandboxStaysBolt: the sandbox refuses the etcd backend.
func TestSandboxStaysBolt(t *testing.T) {
	env := map[string]string{"ERASURED_STORE_BACKEND": "etcd", "ERASURED_STORE_ETCD_ENDPOINTS": "http://a:2379",
		"ERASURED_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
	_, err := loadConfig(nil, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "the sandbox runs on bbolt only") {
		t.Errorf("sandbox with etcd: %v", err)
	}
}

// TestEtcdTLS: https endpoints get a TLS configuration that trusts ca_file and presents the
// client certificate; http endpoints none.
func TestEtcdTLS(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	c := defaultConfig()
	c.Store.Etcd.Endpoints = List{"https://127.0.0.1:2379"}
	c.Store.Etcd.CAFile, c.Store.Etcd.CertFile, c.Store.Etcd.KeyFile = pki.CAFile, pki.CertFile, pki.KeyFile
	cfg, err := c.etcdTLS()
	if err != nil {
		t.Fatal(err)
	}
	if cfg == nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("TLS configuration = %+v, want the CA and one client certificate", cfg)
	}
	if _, err := pki.ca.Verify(x509.VerifyOptions{Roots: cfg.RootCAs}); err != nil {
		t.Errorf("the CA file's certificate is not trusted: %v", err)
	}
	c.Store.Etcd.Endpoints = List{"http://127.0.0.1:2379"}
	if cfg, err := c.etcdTLS(); err != nil || cfg != nil {
		t.Errorf("http endpoints: TLS %v, %v; want none", cfg, err)
	}
}

// TestEtcdOptions: the etcd store is opened with the configuration's settings, the transaction
// limit included (a zero limit would leave the store at its own default, whatever the file says).
func TestEtcdOptions(t *testing.T) {
	c := defaultConfig()
	c.Store.Backend = backendEtcd
	c.Store.Etcd.Endpoints = List{"http://10.0.0.5:2379", "http://10.0.0.6:2379"}
	c.Store.Etcd.Prefix = "/erasured/prod/"
	c.Store.Etcd.DialTimeout = Duration{2 * time.Second}
	c.Store.Etcd.LeaseTTL = Duration{15 * time.Second}
	c.Store.Etcd.MaxTxnOps = 1024
	o, err := etcdOptions(&c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Endpoints, " ") != "http://10.0.0.5:2379 http://10.0.0.6:2379" || o.Prefix != "/erasured/prod/" || o.DialTimeout != 2*time.Second ||
		o.LeaseTTL != 15*time.Second || o.MaxTxnOps != 1024 || o.TLS != nil || len(o.Buckets) == 0 {
		t.Errorf("etcdOptions = %+v", o)
	}
}

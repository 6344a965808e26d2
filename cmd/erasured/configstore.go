package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Store backends (store.backend).
const (
	backendBolt = "bbolt"
	backendEtcd = "etcd"
)

// StoreConfig is the store section: which backend holds erasured's data. bbolt is one file
// (`db`) that one process holds; etcd is a cluster that several erasured replicas share, all
// serving the API while the one elected leader runs the pipeline.
type StoreConfig struct {
	// Backend is bbolt (the default, at db) or etcd (db is then unused).
	Backend string `yaml:"backend"`
	// Etcd is the etcd cluster of backend etcd.
	Etcd EtcdConfig `yaml:"etcd"`
	// ReplicaID names this process among those that share the store: in the election of the
	// pipeline's leader, its log lines and Leader answers. Default: the host name and the
	// process id (host-1234).
	ReplicaID string `yaml:"replica_id"`
}

// EtcdConfig is how erasured reaches etcd. TLS to etcd is on with https endpoints: ca_file
// verifies etcd's certificates, cert_file and key_file (together) are erasured's client
// certificate when etcd asks for one (--client-cert-auth).
type EtcdConfig struct {
	// Endpoints are the cluster members' client URLs (http:// or https://host:port). In the
	// environment, ERASURED_STORE_ETCD_ENDPOINTS lists them separated by commas.
	Endpoints List `yaml:"endpoints"`
	// Prefix is the key prefix every key erasured writes lies under; it ends in "/". Replicas
	// of one deployment share it; another deployment on the same cluster takes another.
	Prefix      string   `yaml:"prefix"`
	DialTimeout Duration `yaml:"dial_timeout"`
	CAFile      string   `yaml:"ca_file"`
	CertFile    string   `yaml:"cert_file"`
	KeyFile     string   `yaml:"key_file"`
	// LeaseTTL is the lease of the pipeline leader's term: a leader that stops renewing it
	// (dead, paused, cut off) is replaced within about this long, and it bounds each LivePerson
	// call the pipeline makes (see sendguard.go). Whole seconds, as etcd's leases are.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// MaxTxnOps is the etcd cluster's --max-txn-ops: the most operations erasured puts in one
	// etcd transaction, and so how many concurrent Submits share one commit (at 128, about 20).
	// Set it to the cluster's value: below it wastes commits, above it etcd refuses
	// the large transactions and the store halves its limit after each refusal.
	MaxTxnOps int `yaml:"max_txn_ops"`
}

// List is a list of strings: a YAML list in the file, comma-separated in its ERASURED_*
// variable.
type List []string

var listType = reflect.TypeFor[List]()

// minLeaseTTL is the shortest lease_ttl accepted: the term must outlast a renewal or two and
// leave each LivePerson call room below it once the send margin is taken off.
const minLeaseTTL = 3 * time.Second

// minLeaseTTLRemote is the shortest lease_ttl accepted when LivePerson is not on loopback (a
// test's simulator is). A term is renewed every third of the lease and its ValidUntil keeps a
// twentieth in hand, and the send guard ends each call a second before it: at 10s the worst case
// leaves a call about 5s, what a LivePerson create or search needs; below it, calls are cut short
// and retried, creates end with unknown outcomes, and deadlines slip.
const minLeaseTTLRemote = 10 * time.Second

// minTxnOps is the smallest max_txn_ops accepted: a group commit's counters and one Submit's
// keys and event, with room to spare.
const minTxnOps = 16

// etcdDefaults are the etcd settings erasured starts from. max_txn_ops is etcd's own default.
func etcdDefaults() EtcdConfig {
	return EtcdConfig{Prefix: "/erasured/", DialTimeout: Duration{5 * time.Second}, LeaseTTL: Duration{10 * time.Second}, MaxTxnOps: 128}
}

// shared reports whether the store is shared with other erasured processes.
func (s StoreConfig) shared() bool { return s.Backend == backendEtcd }

// replicaID is store.replica_id, or the host name and the process id.
func (s StoreConfig) replicaID() string {
	if s.ReplicaID != "" {
		return s.ReplicaID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "erasured"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// checkStore reports every problem of the store section, each by its key. Only the chosen
// backend's settings are checked; with etcd, db is unused and not checked either. The TLS
// files are read and parsed as a start would, unless files are not to be opened.
func (c *Config) checkStore() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := c.Store
	if id := s.ReplicaID; len(id) > 128 || strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		bad("store.replica_id must be at most 128 printable characters without spaces")
	}
	switch s.Backend {
	case backendBolt:
		if c.DB == "" {
			bad("db is empty")
		}
		return errors.Join(errs...)
	case backendEtcd:
		if c.sandbox {
			bad("store.backend: the sandbox runs on bbolt only; give a configuration file (--config) to use etcd")
		}
	default:
		bad("store.backend must be bbolt or etcd, not %q", s.Backend)
		return errors.Join(errs...)
	}
	e := s.Etcd
	if len(e.Endpoints) == 0 {
		bad("store.etcd.endpoints is empty: list the etcd members' client URLs (https://host:2379)")
	}
	schemes := map[string]bool{}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
			bad("store.etcd.endpoints[%d]: %q is not an etcd client URL: want http(s)://host:port", i, ep)
		case u.Port() == "":
			bad("store.etcd.endpoints[%d]: %q has no port (etcd's client port is usually 2379)", i, ep)
		default:
			schemes[u.Scheme] = true
		}
	}
	tlsFiles := e.CAFile != "" || e.CertFile != "" || e.KeyFile != ""
	switch {
	case schemes["http"] && schemes["https"]:
		bad("store.etcd.endpoints mix http:// and https://: all members are reached the same way")
	case schemes["http"] && tlsFiles:
		bad("store.etcd.ca_file, cert_file and key_file need https:// endpoints: http:// is plaintext")
	case schemes["https"] && e.CAFile == "":
		bad("store.etcd.ca_file is required with https:// endpoints: the CA that signed etcd's server certificates (the system's bundle if a public CA did)")
	}
	switch {
	case e.CertFile != "" && e.KeyFile == "":
		bad("store.etcd.key_file is required with store.etcd.cert_file")
	case e.CertFile == "" && e.KeyFile != "":
		bad("store.etcd.cert_file is required with store.etcd.key_file")
	}
	if p := e.Prefix; p == "" || !strings.HasSuffix(p, "/") {
		bad("store.etcd.prefix must end in \"/\", not %q", p)
	}
	if d := e.DialTimeout.Duration; d <= 0 || d > 5*time.Minute {
		bad("store.etcd.dial_timeout must be positive and at most 5m, not %s", d)
	}
	switch d := e.LeaseTTL.Duration; {
	case d < minLeaseTTL || d > time.Hour:
		bad("store.etcd.lease_ttl must be from %s to 1h, not %s", minLeaseTTL, d)
	case d%time.Second != 0:
		bad("store.etcd.lease_ttl must be whole seconds (etcd's leases are), not %s", d)
	case d < minLeaseTTLRemote && !loopbackURL(c.LivePerson.DomainAPIURL):
		bad("store.etcd.lease_ttl must be at least %s, not %s: the pipeline's LivePerson calls end before the term may, "+
			"and a shorter lease leaves a call less than about 5s in the worst case", minLeaseTTLRemote, d)
	}
	if e.MaxTxnOps < minTxnOps {
		bad("store.etcd.max_txn_ops must be at least %d, not %d: set it to the etcd cluster's --max-txn-ops (etcd's default is 128)", minTxnOps, e.MaxTxnOps)
	}
	if len(errs) == 0 && !c.noFiles {
		if _, err := c.etcdTLS(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// etcdTLS is the TLS configuration of the connection to etcd: nil for http:// endpoints. The
// CA and certificate may not be writable by group or others, the key may not be readable by
// them (see secretfile.go). A reload's check (skipSecrets) checks the key without reading it.
func (c *Config) etcdTLS() (*tls.Config, error) {
	e := c.Store.Etcd
	if len(e.Endpoints) == 0 || !strings.HasPrefix(e.Endpoints[0], "https://") {
		return nil, nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
	if pem, err := readTrustFile(e.CAFile); err != nil {
		bad("store.etcd.ca_file: %v", err)
	} else if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		bad("store.etcd.ca_file: %s holds no PEM certificate", e.CAFile)
	}
	if e.CertFile != "" {
		certPEM, cerr := readTrustFile(e.CertFile)
		if cerr != nil {
			bad("store.etcd.cert_file: %v", cerr)
		}
		if c.skipSecrets {
			if err := checkSecretFile(e.KeyFile); err != nil {
				bad("store.etcd.key_file: %v", err)
			}
		} else if keyPEM, err := readSecretFile(e.KeyFile); err != nil {
			bad("store.etcd.key_file: %v", err)
		} else if cerr == nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				bad("store.etcd.cert_file, key_file: not a certificate and its private key: %v", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loopbackURL reports whether the URL's host is a loopback address (a local simulator).
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()
}

package main

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/erasured/erasured/server"
)

// TLSConfig is the server's certificate and key and, for mTLS, the CA of client certificates.
// A key file that group or others can read, or another user owns, is refused, and so is a
// certificate or CA file that group or others can write.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, asks callers for a client certificate and verifies it.
	ClientCAFile string `yaml:"client_ca_file"`
}

// on reports whether TLS is configured.
func (t TLSConfig) on() bool { return t.CertFile != "" || t.KeyFile != "" }

// AuthConfig names erasured's callers. Without any (no tokens, no tokens file, no
// certificates) erasured authenticates nobody and serves loopback only.
type AuthConfig struct {
	// Tokens are bearer-token callers; only the SHA-256 of each token is written here.
	Tokens []TokenConfig `yaml:"tokens"`
	// TokensFile is a YAML file holding a list like Tokens, added to them, so that tokens can
	// change (and be reloaded on SIGHUP) without an edit of this file.
	TokensFile string `yaml:"tokens_file"`
	// Certificates are mTLS callers, matched on the subject common name of their certificate.
	Certificates []CertConfig `yaml:"certificates"`
}

// on reports whether callers are configured, so that erasured authenticates every call.
func (a AuthConfig) on() bool {
	return len(a.Tokens) > 0 || a.TokensFile != "" || len(a.Certificates) > 0
}

// TokenConfig is one bearer-token caller.
type TokenConfig struct {
	Principal string `yaml:"principal"`
	// SHA256 is the token's SHA-256, 64 hex digits (`printf %s "$TOKEN" | sha256sum`).
	SHA256 string   `yaml:"sha256"`
	Roles  []string `yaml:"roles"`
}

// CertConfig is one client-certificate caller.
type CertConfig struct {
	Principal  string   `yaml:"principal"`
	CommonName string   `yaml:"common_name"`
	Roles      []string `yaml:"roles"`
}

// LimitsConfig caps Watch streams and in-flight calls, per server and per principal; beyond
// them a call answers RESOURCE_EXHAUSTED. Zero takes the server's default.
type LimitsConfig struct {
	MaxStreams             int `yaml:"max_streams"`
	MaxStreamsPerPrincipal int `yaml:"max_streams_per_principal"`
	MaxCalls               int `yaml:"max_calls"`
	MaxCallsPerPrincipal   int `yaml:"max_calls_per_principal"`
}

// limits turns the limits into the server's.
func (l LimitsConfig) limits() server.Limits {
	return server.Limits{MaxStreams: l.MaxStreams, MaxStreamsPerPrincipal: l.MaxStreamsPerPrincipal,
		MaxCalls: l.MaxCalls, MaxCallsPerPrincipal: l.MaxCallsPerPrincipal}
}

// knownRoles are the roles a caller may be given (the server holds what each allows).
var knownRoles = server.Roles()

// callers reads auth.tokens_file and checks the tls, auth and limits sections, reporting every
// problem at once by its key. It returns the callers for the server. No token is ever read
// here: only hashes.
func (c *Config) callers() (server.Callers, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	t := c.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		bad("tls.key_file is required with tls.cert_file")
	case t.CertFile == "" && t.KeyFile != "":
		bad("tls.cert_file is required with tls.key_file")
	}
	if t.KeyFile != "" && !c.noFiles {
		if err := checkSecretFile(t.KeyFile); err != nil {
			bad("tls.key_file: %v", err)
		}
	}
	for key, f := range map[string]string{"tls.cert_file": t.CertFile, "tls.client_ca_file": t.ClientCAFile} {
		if f != "" && !c.noFiles {
			if err := checkTrustFile(f); err != nil {
				bad("%s: %v", key, err)
			}
		}
	}
	if t.ClientCAFile != "" && !t.on() {
		bad("tls.client_ca_file needs tls.cert_file and tls.key_file: client certificates are asked for over TLS")
	}
	if len(c.Auth.Certificates) > 0 && t.ClientCAFile == "" {
		bad("auth.certificates need tls.client_ca_file to verify the client certificates")
	}
	for key, v := range map[string]int{"limits.max_streams": c.Limits.MaxStreams,
		"limits.max_streams_per_principal": c.Limits.MaxStreamsPerPrincipal, "limits.max_calls": c.Limits.MaxCalls,
		"limits.max_calls_per_principal": c.Limits.MaxCallsPerPrincipal} {
		if v < 0 {
			bad("%s must not be negative", key)
		}
	}

	var out server.Callers
	hashes := map[[32]byte]string{} // → the key that gave it first
	principals := sameNames{}
	addTokens := func(where string, list []TokenConfig) {
		for i, tc := range list {
			key := fmt.Sprintf("%s[%d]", where, i)
			roles, rerrs := checkPrincipal(key, tc.Principal, tc.Roles)
			errs = append(errs, rerrs...)
			if err := principals.check(key, tc.Principal); err != nil {
				errs = append(errs, err)
			}
			raw, err := hex.DecodeString(tc.SHA256)
			if err != nil || len(raw) != 32 {
				bad("%s.sha256 must be 64 hex digits (the SHA-256 of the token), not %d characters", key, len(tc.SHA256))
				continue
			}
			sum := [32]byte(raw)
			if first, dup := hashes[sum]; dup {
				bad("%s.sha256 is the same token as %s", key, first)
				continue
			}
			hashes[sum] = key
			out.Tokens = append(out.Tokens, server.TokenPrincipal{Principal: tc.Principal, SHA256: sum, Roles: roles})
		}
	}
	addTokens("auth.tokens", c.Auth.Tokens)
	if f := c.Auth.TokensFile; f != "" && !c.noFiles {
		list, err := readTokensFile(f)
		if err != nil {
			bad("auth.tokens_file: %v", err)
		}
		addTokens("auth.tokens_file "+f, list)
	}
	names := map[string]string{}
	for i, cc := range c.Auth.Certificates {
		key := fmt.Sprintf("auth.certificates[%d]", i)
		roles, rerrs := checkPrincipal(key, cc.Principal, cc.Roles)
		errs = append(errs, rerrs...)
		if err := principals.check(key, cc.Principal); err != nil {
			errs = append(errs, err)
		}
		switch first, dup := names[cc.CommonName]; {
		case cc.CommonName == "":
			bad("%s.common_name is required", key)
			continue
		case dup:
			bad("%s.common_name %q is given by %s too", key, cc.CommonName, first)
			continue
		}
		names[cc.CommonName] = key
		out.Certificates = append(out.Certificates, server.CertPrincipal{Principal: cc.Principal, CommonName: cc.CommonName, Roles: roles})
	}
	if err := errors.Join(errs...); err != nil {
		return server.Callers{}, err
	}
	// Whatever else the server refuses is refused here too, before anything is created.
	if _, err := server.NewAuth(out); err != nil {
		return server.Callers{}, err
	}
	return out, nil
}

// checkPrincipal checks a caller's principal and roles.
func checkPrincipal(key, principal string, roles []string) ([]server.Role, []error) {
	var errs []error
	switch {
	case principal == "":
		errs = append(errs, fmt.Errorf("%s.principal is required", key))
	case principal == "anonymous":
		errs = append(errs, fmt.Errorf("%s.principal: \"anonymous\" is the caller of the loopback sandbox without authentication; choose another name", key))
	case strings.TrimSpace(principal) != principal:
		errs = append(errs, fmt.Errorf("%s.principal %q has white space at an end", key, principal))
	}
	if len(roles) == 0 {
		errs = append(errs, fmt.Errorf("%s.roles: at least one role is required", key))
	}
	var out []server.Role
	for j, r := range roles {
		if !slices.Contains(knownRoles, server.Role(r)) {
			errs = append(errs, fmt.Errorf("%s.roles[%d]: unknown role %q (%s)", key, j, r, roleList()))
			continue
		}
		out = append(out, server.Role(r))
	}
	if len(errs) == 0 {
		// The server's own rules for a principal's name (the characters allowed, its length),
		// so that a name it would refuse is reported here, with the rest and by its key,
		// before anything is created.
		if _, err := server.NewAuth(server.Callers{Tokens: []server.TokenPrincipal{{Principal: principal, SHA256: [32]byte{1}, Roles: out}}}); err != nil {
			errs = append(errs, fmt.Errorf("%s.principal: %v", key, cmp.Or(errors.Unwrap(err), err)))
		}
	}
	return out, errs
}

// sameNames refuses principals that differ only by case ("alice" and "Alice"): the server
// would tell them apart, a reader of the audit trail would not. One principal may still hold
// several tokens and certificates.
type sameNames map[string]struct{ key, name string } // lower case → the first to give it

func (n sameNames) check(key, principal string) error {
	k := strings.ToLower(principal)
	first, ok := n[k]
	switch {
	case !ok:
		n[k] = struct{ key, name string }{key, principal}
	case first.name != principal:
		return fmt.Errorf("%s.principal %q differs only by case from %q of %s", key, principal, first.name, first.key)
	}
	return nil
}

func roleList() string {
	names := make([]string, len(knownRoles))
	for i, r := range knownRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// readTokensFile reads the list of token callers of auth.tokens_file, which group and others
// must not be able to write.
func readTokensFile(path string) ([]TokenConfig, error) {
	raw, err := readTrustFile(path)
	if err != nil {
		return nil, err
	}
	var list []TokenConfig
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return list, nil
}

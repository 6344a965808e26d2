package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/erasured/erasured/service"
)

// anonymous is the principal of every caller when the server runs without authentication (the
// loopback sandbox). No configured caller may take the name.
const anonymous = "anonymous"

// TokenPrincipal is a caller that authenticates with a bearer token. Only the SHA-256 of the
// token is held: the token itself is never stored, compared or logged.
type TokenPrincipal struct {
	Principal string
	SHA256    [32]byte
	Roles     []Role
}

// CertPrincipal is a caller that authenticates with a client certificate, verified against the
// server's client CA and matched on its subject common name.
type CertPrincipal struct {
	Principal, CommonName string
	Roles                 []Role
}

// Callers are the callers the server knows.
type Callers struct {
	Tokens       []TokenPrincipal
	Certificates []CertPrincipal
}

// Auth holds the callers. It is safe for concurrent use; Update swaps the callers atomically
// (on SIGHUP), so a call sees either the old set or the new one, never a mix.
type Auth struct {
	set atomic.Pointer[callerSet]
}

type callerSet struct {
	tokens []tokenEntry
	certs  map[string]identity // by common name
}

type tokenEntry struct {
	hash [32]byte
	id   identity
}

type identity struct {
	principal string
	roles     []Role
}

// NewAuth checks c and returns an Auth holding it. It refuses unknown roles, an empty or
// "anonymous" principal, a principal name with other characters than checkPrincipalName
// allows, two principals whose names differ only by case, an empty common name, and a token
// hash or common name given twice.
func NewAuth(c Callers) (*Auth, error) {
	a := &Auth{}
	if err := a.Update(c); err != nil {
		return nil, err
	}
	return a, nil
}

// Update replaces the callers with c. When c is refused, the old callers stay in use.
func (a *Auth) Update(c Callers) error {
	set, err := buildCallers(c)
	if err != nil {
		return err
	}
	a.set.Store(set)
	return nil
}

// maxPrincipalLen bounds a principal's name.
const maxPrincipalLen = 128

// checkPrincipalName allows ASCII letters and digits and the characters - _ . @ : only, at most
// maxPrincipalLen of them. A principal is who the audit trail names and whom separation of
// duties tells apart, so two spellings must never be one person: this refuses white space,
// control and format characters, and every non-ASCII letter, which also leaves no name with
// two Unicode normalization forms. Names that differ only by case are refused by buildCallers.
func checkPrincipalName(name string) error {
	if len(name) > maxPrincipalLen {
		return fmt.Errorf("a principal of %d characters: at most %d are allowed", len(name), maxPrincipalLen)
	}
	for _, r := range name {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', strings.ContainsRune("-_.@:", r):
		default:
			return fmt.Errorf("principal %q: only letters a-z and A-Z, digits and - _ . @ : are allowed", name)
		}
	}
	return nil
}

func buildCallers(c Callers) (*callerSet, error) {
	set := &callerSet{certs: make(map[string]identity)}
	seen := make(map[[32]byte]bool)
	// The same principal may hold a token and a certificate, but two principals may not differ
	// only by case: "alice" and "Alice" would be two callers to the server and one to a reader.
	names := make(map[string]string) // lower case → as given
	sameName := func(p string) error {
		k := strings.ToLower(p)
		if prev, ok := names[k]; ok && prev != p {
			return fmt.Errorf("principals %q and %q differ only by case", prev, p)
		}
		names[k] = p
		return nil
	}
	for i, t := range c.Tokens {
		id, err := newIdentity(t.Principal, t.Roles)
		if err != nil {
			return nil, fmt.Errorf("auth: token %d: %w", i+1, err)
		}
		if err := sameName(t.Principal); err != nil {
			return nil, fmt.Errorf("auth: token %d: %w", i+1, err)
		}
		if t.SHA256 == ([32]byte{}) {
			return nil, fmt.Errorf("auth: token %d (principal %q): no sha256", i+1, t.Principal)
		}
		if seen[t.SHA256] {
			return nil, fmt.Errorf("auth: token %d (principal %q): the same token hash is given twice", i+1, t.Principal)
		}
		seen[t.SHA256] = true
		set.tokens = append(set.tokens, tokenEntry{hash: t.SHA256, id: id})
	}
	for i, cp := range c.Certificates {
		id, err := newIdentity(cp.Principal, cp.Roles)
		if err != nil {
			return nil, fmt.Errorf("auth: certificate %d: %w", i+1, err)
		}
		if err := sameName(cp.Principal); err != nil {
			return nil, fmt.Errorf("auth: certificate %d: %w", i+1, err)
		}
		if cp.CommonName == "" {
			return nil, fmt.Errorf("auth: certificate %d (principal %q): no common_name", i+1, cp.Principal)
		}
		if _, dup := set.certs[cp.CommonName]; dup {
			return nil, fmt.Errorf("auth: certificate %d (principal %q): common name %q is given twice", i+1, cp.Principal, cp.CommonName)
		}
		set.certs[cp.CommonName] = id
	}
	return set, nil
}

func newIdentity(principal string, roles []Role) (identity, error) {
	if principal == "" {
		return identity{}, errors.New("no principal")
	}
	if err := checkPrincipalName(principal); err != nil {
		return identity{}, err
	}
	if strings.EqualFold(principal, anonymous) {
		return identity{}, fmt.Errorf("principal %q is reserved for the server without authentication", anonymous)
	}
	for _, r := range roles {
		if !knownRole(r) {
			return identity{}, fmt.Errorf("principal %q: unknown role %q", principal, r)
		}
	}
	return identity{principal: principal, roles: slices.Clone(roles)}, nil
}

// Token looks up a bearer token (the metrics listener uses it too). The token is hashed and
// compared in constant time with every stored hash.
func (a *Auth) Token(bearer string) (principal string, roles []Role, ok bool) {
	id, ok := a.set.Load().token(bearer)
	if !ok {
		return "", nil, false
	}
	return id.principal, slices.Clone(id.roles), true
}

func (s *callerSet) token(bearer string) (identity, bool) {
	if bearer == "" {
		return identity{}, false
	}
	sum := sha256.Sum256([]byte(bearer))
	var found identity
	ok := false
	// No early exit: the time taken does not tell which entry, if any, matched.
	for _, e := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
			found, ok = e.id, true
		}
	}
	return found, ok
}

// caller is the authenticated caller of one call, carried in its context.
type caller struct {
	principal string
	roles     []Role
	// set is the set of callers it was found in; nil without authentication. A stream compares
	// it with the current set to tell that the callers changed since (see checkedStream).
	set *callerSet
}

func (c *caller) has(r Role) bool { return slices.Contains(c.roles, r) }

type callerKey struct{}

func withCaller(ctx context.Context, c *caller) context.Context {
	return service.WithPrincipal(context.WithValue(ctx, callerKey{}, c), c.principal)
}

// callerOf returns the call's authenticated caller, or nil (an open method called without
// credentials).
func callerOf(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

// identify finds the caller from the call's bearer token and the connection's verified client
// certificate. The reason returned with a nil caller is for the log; it never holds the token.
func (a *Auth) identify(ctx context.Context) (*caller, string) {
	set := a.set.Load()
	c, reason := set.identify(ctx)
	if c != nil {
		c.set = set
	}
	return c, reason
}

func (set *callerSet) identify(ctx context.Context) (*caller, string) {
	var byToken, byCert *identity
	switch vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) {
	case 0:
	case 1:
		tok, err := grpcauth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, "authorization is not a bearer token"
		}
		id, ok := set.token(tok)
		if !ok {
			return nil, "unknown bearer token"
		}
		byToken = &id
	default:
		return nil, "more than one authorization header"
	}
	if cn, ok := clientCommonName(ctx); ok {
		// A certificate the client CA signed but that names no known caller is refused even
		// with a valid token: every credential presented must hold.
		id, known := set.certs[cn]
		if !known {
			return nil, "client certificate names no known caller"
		}
		byCert = &id
	}
	switch {
	case byToken == nil && byCert == nil:
		return nil, "no credentials"
	case byToken == nil:
		return &caller{principal: byCert.principal, roles: byCert.roles}, ""
	case byCert == nil:
		return &caller{principal: byToken.principal, roles: byToken.roles}, ""
	case byToken.principal != byCert.principal:
		// One call has one caller. When the connection's certificate and the call's token
		// name different principals, a credential is in the wrong hands or a proxy mixes
		// callers; choosing either would act, and audit, in the name of someone who did not
		// make the call.
		return nil, "bearer token and client certificate name different principals"
	default:
		// Both credentials are the same principal's: it holds the roles of each.
		roles := slices.Clone(byToken.roles)
		for _, r := range byCert.roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
		return &caller{principal: byToken.principal, roles: roles}, ""
	}
}

// Certificate looks up the caller named by a connection's verified client certificate (the
// metrics listener uses it too). Only a chain the TLS handshake verified counts: a certificate
// merely presented names nobody.
func (a *Auth) Certificate(cs *tls.ConnectionState) (principal string, roles []Role, ok bool) {
	cn, ok := verifiedCommonName(cs)
	if !ok {
		return "", nil, false
	}
	id, ok := a.set.Load().certs[cn]
	if !ok {
		return "", nil, false
	}
	return id.principal, slices.Clone(id.roles), true
}

func verifiedCommonName(cs *tls.ConnectionState) (string, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	return cs.VerifiedChains[0][0].Subject.CommonName, true
}

// clientCommonName is the subject common name of the connection's verified client certificate.
func clientCommonName(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	return verifiedCommonName(&ti.State)
}

// authFunc authenticates every call except those of open methods. Without an Auth every caller
// is "anonymous" with every role. A failure is logged at warn (method, peer address, reason)
// and answers UNAUTHENTICATED.
func (s *Server) authFunc(ctx context.Context) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	if s.opts.Auth == nil {
		return withCaller(ctx, &caller{principal: anonymous, roles: allRoles}), nil
	}
	if methodRoles[method].open {
		return ctx, nil
	}
	c, reason := s.opts.Auth.identify(ctx)
	if c == nil {
		addr := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			addr = p.Addr.String()
		}
		s.opts.Logger.WarnContext(ctx, "authentication failed", "grpc.method", method, "peer.address", addr, "reason", reason)
		return nil, statusError(codes.Unauthenticated, "authentication required: a valid bearer token or client certificate", "UNAUTHENTICATED", nil)
	}
	return withCaller(ctx, c), nil
}

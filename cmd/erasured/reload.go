package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/erasured/erasured/server"
)

// access is who may reach erasured: the callers and the TLS files, both reloaded on SIGHUP
// without dropping a connection or a stream (the server reads them per call and per handshake).
type access struct {
	path   string              // the configuration file re-read on SIGHUP ("" in the sandbox)
	args   []string            // the command line erasured started with
	getenv func(string) string // the environment it started with
	auth   *server.Auth        // nil: no caller authentication (loopback only)
	tls    *server.TLSFiles    // nil: plaintext
	was    TLSConfig           // the tls section erasured started with
	mu     sync.Mutex          // serializes reloads
	cur    server.Callers      // the callers in use
}

// tlsReaders read the TLS key as a secret and the certificate and client CA as files that
// decide who is trusted, at the start and at every reload.
var tlsReaders = server.TLSReaders{Key: readSecretFile, Public: readTrustFile}

// newAccess loads the callers and the TLS files of a checked configuration.
func newAccess(cfg *Config) (*access, error) {
	a := &access{path: cfg.path, args: cfg.args, getenv: cfg.getenv, was: cfg.TLS}
	callers, err := cfg.callers()
	if err != nil {
		return nil, err
	}
	if cfg.TLS.on() {
		if a.tls, err = server.LoadTLSFrom(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile, tlsReaders); err != nil {
			return nil, err
		}
	}
	if cfg.Auth.on() {
		if a.auth, err = server.NewAuth(callers); err != nil {
			return nil, err
		}
		a.cur = callers
	}
	return a, nil
}

// watchSIGHUP reloads on every signal from hup until ctx ends.
func (a *access) watchSIGHUP(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.reload(log)
		}
	}
}

// reload re-reads the configuration file's tls and auth sections, auth.tokens_file and the TLS
// files, and swaps them in. On any problem everything stays as it was and one ERROR line names
// the key or file (never a token: the files hold only hashes). What changed is logged in
// counts. Limits, listeners and the rest of the file are read at start only.
func (a *access) reload(log *slog.Logger) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.path == "" {
		log.Warn("SIGHUP: the sandbox has no configuration file to reload")
		return
	}
	next, err := a.next(log)
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded; the callers and TLS files in use stay", "file", a.path, "err", err)
		return
	}
	// The TLS files are read and checked first, the callers swapped next, and the TLS files
	// put in use last: a reload that fails anywhere changes nothing, not even for a moment.
	var tlsNext *server.TLSUpdate
	if a.tls != nil {
		if tlsNext, err = a.tls.Load(); err != nil {
			log.Error("SIGHUP: configuration not reloaded; the callers and TLS files in use stay", "file", a.path, "err", err)
			return
		}
	}
	if a.auth != nil {
		if err := a.auth.Update(next); err != nil {
			log.Error("SIGHUP: configuration not reloaded; the callers and TLS files in use stay", "file", a.path, "err", err)
			return
		}
	}
	if tlsNext != nil {
		tlsNext.Commit()
	}
	d := diffCallers(a.cur, next)
	a.cur = next
	log.Info("SIGHUP: callers and TLS files reloaded", "tokens", len(next.Tokens), "tokens_added", d.tokensAdded,
		"tokens_removed", d.tokensRemoved, "tokens_changed", d.tokensChanged, "certificates", len(next.Certificates),
		"certificates_added", d.certsAdded, "certificates_removed", d.certsRemoved, "certificates_changed", d.certsChanged,
		"tls_reloaded", a.tls != nil)
}

// next reads the configuration as at start (the command line, the file it names, the
// environment) and checks its callers. The rest of the file is checked too, without reading
// an account secret: its problems do not stop the reload (only the callers and TLS files are
// reloaded), but a WARN names them, since erasured would not start again with the file as it
// is.
func (a *access) next(log *slog.Logger) (server.Callers, error) {
	c, err := readConfig(a.args, a.getenv)
	if err != nil {
		return server.Callers{}, err
	}
	var errs []error
	if c.TLS != a.was {
		errs = append(errs, errors.New("tls: the file names changed; erasured reloads the files it started with, restart it to use others"))
	}
	if c.Auth.on() != (a.auth != nil) {
		errs = append(errs, errors.New("auth: turning caller authentication on or off needs a restart (the listeners were checked for it)"))
	}
	callers, err := c.callers()
	if err := errors.Join(append(errs, err)...); err != nil {
		return server.Callers{}, err
	}
	c.skipSecrets = true
	if err := c.validate(); err != nil {
		log.Warn("SIGHUP: the configuration file would not start erasured; only its callers and TLS files are reloaded, fix the rest before a restart",
			"file", a.path, "problems", err.Error())
	}
	return callers, nil
}

// callerDiff counts what a reload changed.
type callerDiff struct {
	tokensAdded, tokensRemoved, tokensChanged int
	certsAdded, certsRemoved, certsChanged    int
}

// diffCallers compares tokens by hash and certificates by common name; a changed one has a new
// principal or new roles.
func diffCallers(old, next server.Callers) callerDiff {
	var d callerDiff
	type who struct {
		principal string
		roles     string
	}
	describe := func(p string, roles []server.Role) who {
		names := make([]string, len(roles))
		for i, r := range roles {
			names[i] = string(r)
		}
		return who{p, strings.Join(names, ",")}
	}
	before := map[[32]byte]who{}
	for _, t := range old.Tokens {
		before[t.SHA256] = describe(t.Principal, t.Roles)
	}
	for _, t := range next.Tokens {
		w, ok := before[t.SHA256]
		switch {
		case !ok:
			d.tokensAdded++
		case w != describe(t.Principal, t.Roles):
			d.tokensChanged++
		}
		delete(before, t.SHA256)
	}
	d.tokensRemoved = len(before)
	certs := map[string]who{}
	for _, c := range old.Certificates {
		certs[c.CommonName] = describe(c.Principal, c.Roles)
	}
	for _, c := range next.Certificates {
		w, ok := certs[c.CommonName]
		switch {
		case !ok:
			d.certsAdded++
		case w != describe(c.Principal, c.Roles):
			d.certsChanged++
		}
		delete(certs, c.CommonName)
	}
	d.certsRemoved = len(certs)
	return d
}

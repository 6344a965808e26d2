package main

import (
	"errors"
	"fmt"
	"net"
)

// checkListeners decides who may reach erasured. Without callers (no auth section) nobody is
// authenticated and every caller holds every role, so neither the gRPC listener nor the metrics
// listener (which shows account ids and quota) may listen beyond loopback. With callers but
// without TLS, bearer tokens would cross the network in the clear, so the same holds. A
// listener that cannot be judged (a host name other than localhost, or no host) counts as
// beyond loopback.
func (c *Config) checkListeners() error {
	var errs []error
	for _, l := range []struct{ name, key, addr string }{
		{"gRPC listener", "listen / --listen", c.Listen},
		{"metrics listener", "metrics_listen / --metrics-listen", c.MetricsListen},
	} {
		if l.addr == "" {
			continue
		}
		loop, err := loopback(l.addr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %q (%s): %v", l.name, l.addr, l.key, err))
		case loop:
		case !c.Auth.on():
			errs = append(errs, fmt.Errorf("refusing the %s on %q (%s) without caller authentication: configure auth.tokens, auth.tokens_file or auth.certificates, or use a loopback address",
				l.name, l.addr, l.key))
		case !c.TLS.on():
			errs = append(errs, fmt.Errorf("refusing the %s on %q (%s) without TLS: bearer tokens would cross the network in the clear; configure tls.cert_file and tls.key_file, or use a loopback address",
				l.name, l.addr, l.key))
		}
	}
	return errors.Join(errs...)
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// needsLoopback reports whether the rules of checkListeners keep the listeners on loopback:
// without callers, or with callers but without TLS.
func (c *Config) needsLoopback() bool { return !c.Auth.on() || !c.TLS.on() }

// listenTCP is net.Listen, a variable so that tests can stand in a resolver that maps a name
// elsewhere than it says.
var listenTCP = net.Listen

// listenChecked listens on addr and, when mustLoop is set, refuses (closing it) a listener
// that is not bound to a loopback address. checkListeners judges the address as written; what
// counts is what it resolved to when bound: "localhost" maps to whatever the host's resolver
// says, and an /etc/hosts line "0.0.0.0 localhost" would open an auth-less server to every
// network. name is the listener's name for the error.
func listenChecked(name, addr string, mustLoop bool) (net.Listener, error) {
	lis, err := listenTCP("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", name, addr, err)
	}
	if mustLoop && !boundLoopback(lis) {
		lis.Close()
		return nil, fmt.Errorf("refusing the %s: %q is bound to %s, beyond loopback, and erasured serves only loopback without caller authentication and TLS",
			name, addr, lis.Addr())
	}
	return lis, nil
}

// boundLoopback reports whether a listener is bound to a loopback address.
func boundLoopback(lis net.Listener) bool {
	a, ok := lis.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

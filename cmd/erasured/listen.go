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

package region

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// CheckPattern reports whether p is a valid host pattern (path.Match syntax).
func CheckPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty host pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("bad host pattern %q: %w", p, err)
	}
	return nil
}

// allowed is the residency guard. In test mode loopback hosts pass too, but a
// named host is held to the region's patterns as in production, so tests can
// prove the guard with realistic names.
func (r *Router) allowed(reg, host string) bool {
	name, ok := hostName(host)
	if !ok {
		return false
	}
	if r.testMode && isLoopback(name) {
		return true
	}
	for _, p := range r.patterns[reg] {
		if m, _ := path.Match(strings.ToLower(p), name); m {
			return true
		}
	}
	return false
}

// hostName validates a bare host[:port] as the Domain API returns it and
// returns the lowercased name. Anything with a scheme, path, user info or
// query is refused: it is not what LivePerson sends.
func hostName(host string) (string, bool) {
	if host == "" || strings.ContainsAny(host, "/@?#\\ \t") {
		return "", false
	}
	u, err := url.Parse("//" + host)
	if err != nil || u.Host != host || u.Hostname() == "" {
		return "", false
	}
	return strings.ToLower(u.Hostname()), true
}

func isLoopback(name string) bool {
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

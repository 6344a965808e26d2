package region

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// CheckPattern reports whether p is a valid host pattern: path.Match syntax,
// ending in a literal domain of at least two labels ("*.liveperson.net" is
// valid; "*", "*.com", "va.*" and "va.*liveperson.net" are not), so that no
// pattern can let hosts outside a known domain through the residency guard.
func CheckPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty host pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("bad host pattern %q: %w", p, err)
	}
	labels := strings.Split(p, ".")
	if len(labels) < 2 {
		return fmt.Errorf("host pattern %q must end in a literal domain such as liveperson.net", p)
	}
	for _, l := range labels[len(labels)-2:] {
		if l == "" || strings.ContainsAny(l, `*?[]\`) {
			return fmt.Errorf("host pattern %q must end in a literal domain such as liveperson.net: no wildcard in its last two labels", p)
		}
	}
	return nil
}

// refusal is the residency guard: it returns why host may not be called for
// an account of region reg, or "" if it may. In test mode loopback hosts pass
// too; another name is refused, as it would be called over plain http, unless
// the test allows named hosts (its transport sends every name to a
// simulator), and then it is held to the region's patterns as in production,
// so tests can prove the guard with realistic names.
func (r *Router) refusal(reg, host string) string {
	name, ok := hostName(host)
	if !ok {
		return ReasonRegion
	}
	if r.testMode {
		if isLoopback(name) {
			return ""
		}
		if !r.namedHosts {
			return ReasonTestMode
		}
	}
	for _, p := range r.patterns[reg] {
		if m, _ := path.Match(strings.ToLower(p), name); m {
			return ""
		}
	}
	return ReasonRegion
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

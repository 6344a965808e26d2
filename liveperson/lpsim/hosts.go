package lpsim

import (
	"net"
	"net/http"
	"strings"
)

// KnownServices are the service names the Domain API list form returns.
var KnownServices = []string{ServiceRTBF, ServiceEngHist, ServiceMsgHist, ServiceSentinel, "agentVep"}

// hostLabels name each service inside its LivePerson host names.
var hostLabels = map[string]string{ServiceRTBF: "data-mng", ServiceEngHist: "enghist", ServiceMsgHist: "msghist",
	ServiceSentinel: "sentinel", "agentVep": "agentvep"}

// RegionPrefix is how LivePerson's host names of a region begin: us → va,
// uk → lo, apac → sy.
func RegionPrefix(region string) string {
	switch strings.ToLower(region) {
	case "uk", "emea":
		return "lo"
	case "apac":
		return "sy"
	}
	return "va"
}

// NamedHost is the LivePerson name of a service's host in a region, in the
// dot style ("va.msghist.liveperson.net") or the dash style
// ("va-a.msghist.liveperson.net"). The deletion service keeps the dot
// names of the documented static hosts in both styles.
func NamedHost(region, service, style string) string {
	label, ok := hostLabels[service]
	if !ok {
		label = strings.ToLower(service)
	}
	prefix := RegionPrefix(region)
	if style == HostDash && service != ServiceRTBF {
		prefix += "-a"
	}
	return prefix + "." + label + ".liveperson.net"
}

// HostFor is the host (with port, if any) the Domain API answers for an
// account's service; "" when it answers the request's own Host.
func (s *Sim) HostFor(account, service string) string {
	if s.cfg.NamedHosts {
		s.mu.Lock()
		region := ""
		if a, ok := s.accounts[account]; ok {
			region = a.Region
		}
		s.mu.Unlock()
		h := NamedHost(region, service, s.cfg.Variants.HostStyle)
		if s.cfg.HostPort != "" {
			h = net.JoinHostPort(h, s.cfg.HostPort)
		}
		return h
	}
	return s.cfg.Host
}

func (s *Sim) host(r *http.Request, account, service string) string {
	if h := s.HostFor(account, service); h != "" {
		return h
	}
	return r.Host
}

// rightHost refuses, with named hosts, a request that reached a LivePerson
// name other than its account's host of that service: another region's or
// another service's host does not hold the account's data.
func (s *Sim) rightHost(r *http.Request, service string) bool {
	if !s.cfg.NamedHosts || service == ServiceDomain {
		return true
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	if !strings.HasSuffix(strings.ToLower(name), ".liveperson.net") {
		return true
	}
	want := s.HostFor(r.PathValue("acct"), service)
	if h, _, err := net.SplitHostPort(want); err == nil {
		want = h
	}
	return strings.EqualFold(name, want)
}

// baseURI answers the Domain API's single form, for any service name. Newer
// pages show it answering the list shape as well; the variant chooses.
func (s *Sim) baseURI(w http.ResponseWriter, r *http.Request) {
	acct, svc := r.PathValue("acct"), r.PathValue("svc")
	if !s.domainCheck(w, r, acct) {
		return
	}
	entry := map[string]string{"service": svc, "account": acct, "baseURI": s.host(r, acct, svc)}
	if s.cfg.Variants.DiscoveryAnswer == AnswerList {
		writeJSON(w, http.StatusOK, map[string]any{"baseURIs": []any{entry}})
		return
	}
	writeJSON(w, http.StatusOK, entry)
}

// baseURIs answers the list form, which only an SDK documents: in the
// single-only reading it does not exist.
func (s *Sim) baseURIs(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Variants.Discovery == DiscoverySingleOnly {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	acct := r.PathValue("acct")
	if !s.domainCheck(w, r, acct) {
		return
	}
	list := make([]map[string]string, 0, len(KnownServices))
	for _, svc := range KnownServices {
		list = append(list, map[string]string{"account": acct, "baseURI": s.host(r, acct, svc), "service": svc})
	}
	writeJSON(w, http.StatusOK, map[string]any{"baseURIs": list})
}

func (s *Sim) domainCheck(w http.ResponseWriter, r *http.Request, acct string) bool {
	if r.URL.Query().Get("version") != "1.0" {
		badRequest(w, "version=1.0 required")
		return false
	}
	s.mu.Lock()
	_, ok := s.accounts[acct]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unknown account"})
		return false
	}
	return true
}

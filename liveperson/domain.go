package liveperson

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

const (
	opBaseURI  = "domain.baseURI"
	opBaseURIs = "domain.baseURIs"
	// DefaultDomainAPI is LivePerson's production Domain API.
	DefaultDomainAPI = "https://api.liveperson.net"
)

// DomainAPI is the client of LivePerson's service discovery (CSDS). It needs
// no authentication. The regional router uses it; it is rarely used directly.
type DomainAPI struct {
	c *Client
}

// NewDomainAPI builds a Domain API client for baseURL (scheme and host only),
// e.g. DefaultDomainAPI. opts tune HTTP client, clock, retries and timeouts.
func NewDomainAPI(baseURL string, opts ...Option) (*DomainAPI, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return nil, errors.New("liveperson: domain API URL must be http(s)://host[:port]")
	}
	all := append([]Option{WithResolver(FixedHost{Addr: u.Host, Insecure: u.Scheme == "http"}),
		WithAuth(noAuth{}), WithSource("erasured")}, opts...)
	c, err := New(all...)
	if err != nil {
		return nil, err
	}
	return &DomainAPI{c: c}, nil
}

// BaseURI returns the host of one service for the account (single form). It
// accepts the answer as one entry (`{"service","account","baseURI"}`) and as a
// list (`{"baseURIs":[…]}`), taking the entry of the service asked for.
func (d *DomainAPI) BaseURI(ctx context.Context, account, service string) (string, error) {
	var host string
	err := d.c.do(ctx, request{
		service: serviceDomainAPI, op: opBaseURI, account: account, method: http.MethodGet,
		path:  "/api/account/" + url.PathEscape(account) + "/service/" + url.PathEscape(service) + "/baseURI.json",
		query: url.Values{"version": {"1.0"}},
		decode: func(_ int, b []byte) error {
			var err error
			host, err = decodeBaseURI(b, service)
			return err
		},
	})
	return host, err
}

// BaseURIs returns the hosts of every service of the account, by service
// name (list form). It is an optional shortcut; BaseURI is the documented
// call.
func (d *DomainAPI) BaseURIs(ctx context.Context, account string) (map[string]string, error) {
	var hosts map[string]string
	err := d.c.do(ctx, request{
		service: serviceDomainAPI, op: opBaseURIs, account: account, method: http.MethodGet,
		path:  "/api/account/" + url.PathEscape(account) + "/service/baseURI.json",
		query: url.Values{"version": {"1.0"}},
		decode: func(_ int, b []byte) error {
			var err error
			hosts, err = decodeBaseURIs(b)
			return err
		},
	})
	return hosts, err
}

type baseURIJSON struct {
	Service flexString `json:"service"`
	Account flexString `json:"account"`
	BaseURI flexString `json:"baseURI"`
}

// errNoService: the Domain API answered without the service asked for.
var errNoService = errors.New("domain API answer names no host for the service")

// decodeBaseURI reads a single-form answer for service. An answer that names
// another service is refused: its host is not where the calls belong.
func decodeBaseURI(b []byte, service string) (string, error) {
	var r struct {
		baseURIJSON
		BaseURIs []baseURIJSON `json:"baseURIs"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", err
	}
	for _, e := range r.BaseURIs {
		if string(e.Service) == service && e.BaseURI != "" {
			return string(e.BaseURI), nil
		}
	}
	// The older one-entry answer may omit the service, not name another one.
	named := string(r.Service) == service || (r.Service == "" && r.BaseURIs == nil)
	if r.BaseURI == "" || !named {
		return "", errNoService
	}
	return string(r.BaseURI), nil
}

func decodeBaseURIs(b []byte) (map[string]string, error) {
	var r struct {
		BaseURIs []baseURIJSON `json:"baseURIs"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(r.BaseURIs))
	for _, e := range r.BaseURIs {
		if e.Service != "" && e.BaseURI != "" {
			out[string(e.Service)] = string(e.BaseURI)
		}
	}
	return out, nil
}

// Package oauth1 computes OAuth 1.0 HMAC-SHA1 signatures (RFC 5849 §3.4).
// Both the client's signer and the simulator's verifier use it; its test pins
// it to the RFC's worked example so the two cannot agree on a wrong answer.
package oauth1

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
)

// Encode percent-encodes s as RFC 5849 §3.6 requires: everything but the
// unreserved characters, hex in upper case.
func Encode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// BaseString builds the signature base string (§3.4.1) of a request. params
// holds the query parameters, the oauth_* protocol parameters (without
// oauth_signature and realm) and form-encoded body parameters, if any; a JSON
// body is not part of it.
func BaseString(method string, u *url.URL, params url.Values) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") {
		host += ":" + p
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range params {
		if k == "oauth_signature" || k == "realm" {
			continue
		}
		for _, v := range vs {
			pairs = append(pairs, kv{Encode(k), Encode(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	norm := make([]string, len(pairs))
	for i, p := range pairs {
		norm[i] = p.k + "=" + p.v
	}
	return strings.ToUpper(method) + "&" + Encode(scheme+"://"+host+path) + "&" + Encode(strings.Join(norm, "&"))
}

// Sign returns the base64 HMAC-SHA1 signature of base (§3.4.2).
func Sign(base, consumerSecret, tokenSecret string) string {
	m := hmac.New(sha1.New, []byte(Encode(consumerSecret)+"&"+Encode(tokenSecret)))
	m.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ParseHeader reads the parameters of an `Authorization: OAuth ...` header
// (§3.5.1). It reports false when the header is not of that scheme or is
// malformed.
func ParseHeader(h string) (map[string]string, bool) {
	const prefix = "OAuth "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return nil, false
	}
	out := map[string]string{}
	for _, part := range strings.Split(h[len(prefix):], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, false
		}
		dv, err := url.PathUnescape(v[1 : len(v)-1])
		if err != nil {
			return nil, false
		}
		out[strings.TrimSpace(k)] = dv
	}
	return out, true
}

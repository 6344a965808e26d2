package lpsim

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/erasured/erasured/liveperson/internal/oauth1"
)

// token is sentinel's client-credentials grant: it issues an HS256 JWT whose
// exp is TokenTTL after the sim clock's now.
func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	acct := r.PathValue("acct")
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		badRequest(w, "form body required")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		badRequest(w, "grant_type=client_credentials required")
		return
	}
	s.mu.Lock()
	a, ok := s.accounts[acct]
	s.mu.Unlock()
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if !ok || a.ClientID == "" || id != a.ClientID ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(a.ClientSecret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	now := s.clock.Now()
	tok := s.signJWT(map[string]any{"iss": "lpsim", "sub": id, "aud": acct, "iat": now.Unix(),
		"exp": now.Add(s.cfg.TokenTTL).Unix(), "scope": "data.services.enghist"})
	writeJSON(w, http.StatusOK, map[string]string{"access_token": tok, "token_type": "Bearer"})
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (s *Sim) signJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	unsigned := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, s.jwtKey)
	m.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifyJWT checks signature, expiry (sim clock) and audience.
func (s *Sim) verifyJWT(tok, acct string) (sub string, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return "", false
	}
	m := hmac.New(sha256.New, s.jwtKey)
	m.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Sub string `json:"sub"`
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Aud != acct || !s.clock.Now().Before(time.Unix(c.Exp, 0)) {
		return "", false
	}
	return c.Sub, true
}

type principalKey struct{}

// authorize checks a bearer token (sentinel JWT or static) or an OAuth 1.0
// signature for the account in the path; on failure it answers 401.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	acct := r.PathValue("acct")
	h := r.Header.Get("Authorization")
	s.mu.Lock()
	a, known := s.accounts[acct]
	s.mu.Unlock()
	deny := func(problem string) (*http.Request, bool) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("oauth_problem=" + problem))
		return r, false
	}
	if !known {
		return deny("token_rejected")
	}
	var who string
	switch {
	case strings.HasPrefix(h, "Bearer "):
		tok := strings.TrimPrefix(h, "Bearer ")
		if owner, ok := s.cfg.StaticTokens[tok]; ok && (owner == acct || owner == "*") {
			who = "static-token"
		} else if sub, ok := s.verifyJWT(tok, acct); ok {
			who = sub
		} else {
			return deny("token_rejected")
		}
	case strings.HasPrefix(h, "OAuth "):
		if a.OAuth1 == nil {
			return deny("consumer_key_unknown")
		}
		p, ok := oauth1.ParseHeader(h)
		if !ok || p["oauth_signature_method"] != "HMAC-SHA1" {
			return deny("parameter_absent")
		}
		if p["oauth_consumer_key"] != a.OAuth1.ConsumerKey {
			return deny("consumer_key_unknown")
		}
		if p["oauth_token"] != a.OAuth1.Token {
			return deny("token_rejected")
		}
		u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath}
		if r.TLS != nil {
			u.Scheme = "https"
		}
		params := r.URL.Query()
		for k, v := range p {
			params.Set(k, v)
		}
		want := oauth1.Sign(oauth1.BaseString(r.Method, u, params), a.OAuth1.ConsumerSecret, a.OAuth1.TokenSecret)
		if !hmac.Equal([]byte(want), []byte(p["oauth_signature"])) {
			return deny("signature_invalid")
		}
		who = a.OAuth1.ConsumerKey
	default:
		return deny("parameter_absent")
	}
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, who)), true
}

func principal(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(string)
	return p
}

package region

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/erasured/erasured/liveperson"
)

// serviceKey names one cached discovery answer, and one lookup in flight.
type serviceKey struct{ account, service string }

// listForm is the service of the flight key of an account's list-form lookup;
// no LivePerson service has this name.
const listForm = "(list form)"

// entry is what discovery last said about one service of one account.
type entry struct {
	fetched time.Time // when the Domain API last answered for it
	host    string    // the last good (guarded) host; "" if none yet
	refusal string    // why the latest answer was refused; "" if it was not
}

// fresh reports whether the service's latest answer is younger than the TTL.
func (r *Router) fresh(k serviceKey) bool {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[k]
	return e != nil && now.Sub(e.fetched) < r.ttl
}

// discover asks the Domain API for one service: through the list form when
// that is switched on and due for the account, else (or when the list lacks
// the service or fails) through the single form. Concurrent callers share one
// request per key.
func (r *Router) discover(ctx context.Context, k serviceKey, reg string) error {
	if r.listDue(k.account) {
		err := r.shared(ctx, serviceKey{k.account, listForm}, func(ctx context.Context) error {
			return r.discoverList(ctx, k.account, reg)
		})
		if err == nil && r.fresh(k) {
			return nil
		}
	}
	return r.shared(ctx, k, func(ctx context.Context) error {
		h, err := r.domain.BaseURI(ctx, k.account, k.service)
		if err != nil {
			return err
		}
		r.store(k.account, reg, map[string]string{k.service: h})
		return nil
	})
}

// shared runs fn for k unless a lookup for k is already in flight, and then
// waits for that one. fn runs under ctx without its cancellation (its values,
// a retry notice among them, are kept): one impatient caller must not fail the
// lookup the others wait for, so fn is bounded by a timeout of its own
// (LookupTimeout). A caller whose ctx ends stops waiting.
func (r *Router) shared(ctx context.Context, k serviceKey, fn func(context.Context) error) error {
	detached := context.WithoutCancel(ctx)
	ch := r.flight.DoChan(k.flightKey(), func() (any, error) {
		ctx, cancel := context.WithTimeout(detached, r.lookupLimit)
		defer cancel()
		return nil, fn(ctx)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flightKey is k as singleflight's string key; no account id or service name
// holds a NUL.
func (k serviceKey) flightKey() string { return k.account + "\x00" + k.service }

// listDue reports whether the list form should be asked for the account: it
// is switched on, has not answered 404 lately, and was not asked within the
// TTL (its answer, or its failure, stands for that long).
func (r *Router) listDue(account string) bool {
	if !r.useList {
		return false
	}
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t, asked := r.listTried[account]
	return now.After(r.listOff) && (!asked || now.Sub(t) >= r.ttl)
}

func (r *Router) discoverList(ctx context.Context, account, reg string) error {
	r.mu.Lock()
	r.listTried[account] = r.clock.Now()
	r.mu.Unlock()
	hosts, err := r.domain.BaseURIs(ctx, account)
	if err != nil {
		var le *liveperson.Error
		if errors.As(err, &le) && le.Status == http.StatusNotFound {
			r.mu.Lock()
			r.listOff = r.clock.Now().Add(r.listRetry)
			r.mu.Unlock()
		}
		return err
	}
	r.store(account, reg, hosts)
	return nil
}

// store guards and records discovered hosts.
func (r *Router) store(account, reg string, hosts map[string]string) {
	now := r.clock.Now()
	var refused []Violation
	r.mu.Lock()
	for svc, h := range hosts {
		k := serviceKey{account, svc}
		e := r.entries[k]
		if e == nil {
			e = &entry{}
			r.entries[k] = e
		}
		e.fetched = now
		if e.refusal = r.refusal(reg, h); e.refusal == "" {
			e.host = h
			continue
		}
		refused = append(refused, Violation{Account: account, Region: reg, Service: svc, Host: h, Reason: e.refusal})
	}
	r.mu.Unlock()
	for _, v := range refused {
		r.violations.Add(1)
		if r.onViolation != nil {
			r.onViolation(v)
		}
	}
}

// lookup answers from the cache: a refused service is a residency error (the
// last good host is not used silently: a region move needs an operator).
func (r *Router) lookup(k serviceKey) (host string, found bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[k]
	switch {
	case e == nil:
		return "", false, nil
	case e.refusal != "":
		return "", true, residency(k.service, e.refusal)
	case e.host == "":
		return "", false, nil
	}
	return e.host, true, nil
}

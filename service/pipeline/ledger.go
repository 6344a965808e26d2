package pipeline

import (
	"encoding/json"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The quota ledger: each account's use of LivePerson's monthly deletion-request quota, one entry
// per account and month (UTC) in the Ledger bucket. A batch takes one unit when it is formed, in
// the transaction that forms it, so that a crash can never send a request the ledger has not
// counted.

// Quota is an account's use of one month's quota, as the ledger holds it.
type Quota struct {
	Used      int  `json:"used"`
	Exhausted bool `json:"exhausted,omitempty"` // LivePerson answered 429: nothing more this month
}

// Month names the quota month (UTC) of t.
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// NextMonth is the start of the month after t's (UTC): when a spent quota renews.
func NextMonth(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
}

// GetQuota reads account's use of month's quota (none used when the ledger has no entry).
func GetQuota(tx store.Tx, account, month string) (Quota, error) {
	var q Quota
	if v := tx.Get(schema.Ledger, schema.QuotaKey(account, month)); v != nil {
		return q, json.Unmarshal(v, &q)
	}
	return q, nil
}

// PutQuota stores account's use of month's quota.
func PutQuota(tx store.Tx, account, month string, q Quota) error {
	v, err := json.Marshal(q)
	if err != nil {
		return err
	}
	return tx.Put(schema.Ledger, schema.QuotaKey(account, month), v)
}

// Left is how many requests a quota of limit still allows.
func (q Quota) Left(limit int) int {
	if q.Exhausted {
		return 0
	}
	return max(limit-q.Used, 0)
}

// Allows reports whether one more batch may be formed under a quota of limit, of which the
// share reserve (at least one unit) is kept for at-risk work: routine work may not dip into it.
func (q Quota) Allows(limit int, reserve float64, atRisk bool) bool {
	if q.Exhausted || q.Used >= limit {
		return false
	}
	if atRisk {
		return true
	}
	return q.Used < limit-max(int(float64(limit)*reserve), 1)
}

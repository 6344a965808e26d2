package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
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
	return q.Used < limit-ReserveUnits(limit, reserve)
}

// ReserveUnits is how many requests of a monthly quota of limit the share reserve keeps for
// at-risk work: at least one.
func ReserveUnits(limit int, reserve float64) int { return max(int(float64(limit)*reserve), 1) }

// SendTurn is an account's turn to send, as the ledger holds it: the batch in flight, and the
// batches waiting for its outcome to be known (created, refused, or held). One batch of an
// account at a time may be at LivePerson without our knowing its request, so that a lost
// answer can be reconciled against LivePerson's list without confusing two batches.
type SendTurn struct {
	Batch   uint64   `json:"batch"`
	Waiting []uint64 `json:"waiting,omitempty"`
}

// GetSendTurn reads account's send turn; held is false when no batch holds it.
func GetSendTurn(tx store.Tx, account string) (t SendTurn, held bool, err error) {
	v := tx.Get(schema.Ledger, schema.SendTurnKey(account))
	if v == nil {
		return t, false, nil
	}
	return t, true, json.Unmarshal(v, &t)
}

// PutSendTurn stores account's send turn.
func PutSendTurn(tx store.Tx, account string, t SendTurn) error {
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return tx.Put(schema.Ledger, schema.SendTurnKey(account), v)
}

// EndSendTurn frees account's send turn.
func EndSendTurn(tx store.Tx, account string) error {
	return tx.Delete(schema.Ledger, schema.SendTurnKey(account))
}

// Take gives the turn to batch id when free (no other batch in flight holds it) and reports
// whether id holds it now; otherwise id waits, once, among the waiters.
func (t *SendTurn) Take(id uint64, free bool) bool {
	if free {
		t.Batch = id
		t.Waiting = slices.DeleteFunc(t.Waiting, func(w uint64) bool { return w == id })
		return true
	}
	if !slices.Contains(t.Waiting, id) {
		t.Waiting = append(t.Waiting, id)
	}
	return false
}

// PutRequestedBy remembers who we are at LivePerson for account, as its create answers say.
func PutRequestedBy(tx store.Tx, account, who string) error {
	return tx.Put(schema.Ledger, schema.RequestedByKey(account), []byte(who))
}

// RequestedBy is who we are at LivePerson for account ("" until a create answer said).
func RequestedBy(tx store.Tx, account string) string {
	return string(tx.Get(schema.Ledger, schema.RequestedByKey(account)))
}

// forecastPrefix starts, in the Ledger, each account's latest forecast (forecastKey).
var forecastPrefix = []byte("forecast/")

// forecastKey holds, in the Ledger, account's latest forecast.
func forecastKey(account string) []byte { return append(slices.Clone(forecastPrefix), account...) }

// GetForecast reads account's latest forecast; ok is false when none was made.
func GetForecast(tx store.Tx, account string) (f Forecast, ok bool, err error) {
	v := tx.Get(schema.Ledger, forecastKey(account))
	if v == nil {
		return f, false, nil
	}
	return f, true, json.Unmarshal(v, &f)
}

// PutForecast stores f as its account's latest forecast.
func PutForecast(tx store.Tx, f Forecast) error {
	v, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return tx.Put(schema.Ledger, forecastKey(f.Account), v)
}

// ReadForecasts reads every account's latest forecast, by account.
func ReadForecasts(tx store.Tx) ([]Forecast, error) {
	var out []Forecast
	err := tx.Scan(schema.Ledger, forecastPrefix, func(k, v []byte) (bool, error) {
		if !bytes.HasPrefix(k, forecastPrefix) {
			return false, nil
		}
		var f Forecast
		if err := json.Unmarshal(v, &f); err != nil {
			return false, fmt.Errorf("decode the forecast of an account: %w", err)
		}
		out = append(out, f)
		return true, nil
	})
	return out, err
}

package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

func TestQuotaAllows(t *testing.T) {
	tests := []struct {
		name   string
		q      Quota
		limit  int
		atRisk bool
		want   bool
	}{
		{"routine below the reserve", Quota{Used: 89}, 100, false, true},
		{"routine at the reserve", Quota{Used: 90}, 100, false, false},
		{"at risk in the reserve", Quota{Used: 99}, 100, true, true},
		{"at risk with nothing left", Quota{Used: 100}, 100, true, false},
		{"exhausted by LivePerson", Quota{Used: 3, Exhausted: true}, 100, true, false},
		{"a small quota keeps one unit", Quota{Used: 4}, 5, false, false},
		{"a small quota's last routine unit", Quota{Used: 3}, 5, false, true},
	}
	for _, tt := range tests {
		if got := tt.q.Allows(tt.limit, 0.1, tt.atRisk); got != tt.want {
			t.Errorf("%s: Allows = %v, want %v", tt.name, got, tt.want)
		}
	}
	if left := (Quota{Used: 7}).Left(10); left != 3 {
		t.Errorf("Left = %d, want 3", left)
	}
	if left := (Quota{Used: 7, Exhausted: true}).Left(10); left != 0 {
		t.Errorf("Left of an exhausted quota = %d, want 0", left)
	}
	if left := (Quota{Used: 12}).Left(10); left != 0 {
		t.Errorf("Left beyond the limit = %d, want 0", left)
	}
}

func TestQuotaLedger(t *testing.T) {
	db := openSchedule(t, nil)
	at := time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("east", 3600))
	month := Month(at)
	if month != "2026-12" || !NextMonth(at).Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Month = %s, NextMonth = %v; want the UTC month 2026-12 and 2027-01-01", month, NextMonth(at))
	}
	err := db.Update(context.Background(), func(tx store.Tx) error {
		if q, err := GetQuota(tx, "1234", month); err != nil || q != (Quota{}) {
			t.Errorf("unused quota = %+v, %v", q, err)
		}
		if err := PutQuota(tx, "1234", month, Quota{Used: 2, Exhausted: true}); err != nil {
			return err
		}
		q, err := GetQuota(tx, "1234", month)
		if err != nil || q != (Quota{Used: 2, Exhausted: true}) {
			t.Errorf("stored quota = %+v, %v", q, err)
		}
		if q, _ := GetQuota(tx, "5678", month); q != (Quota{}) {
			t.Errorf("another account's quota = %+v, want none used", q)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSendTurn: one batch of an account holds the turn; the others wait once each, in order,
// and the turn is free again once it ends.
func TestSendTurn(t *testing.T) {
	db := openSchedule(t, nil)
	err := db.Update(context.Background(), func(tx store.Tx) error {
		if _, held, err := GetSendTurn(tx, "1234"); held || err != nil {
			t.Errorf("a fresh ledger's turn: held %v, %v", held, err)
		}
		var turn SendTurn
		steps := []struct {
			id   uint64
			free bool
			want bool
		}{{7, true, true}, {8, false, false}, {9, false, false}, {8, false, false}, {8, true, true}}
		for _, st := range steps {
			if got := turn.Take(st.id, st.free); got != st.want {
				t.Errorf("Take(%d, free %v) = %v, want %v", st.id, st.free, got, st.want)
			}
		}
		if turn.Batch != 8 || !slices.Equal(turn.Waiting, []uint64{9}) {
			t.Errorf("turn = %+v, want batch 8 holding it and 9 waiting", turn)
		}
		if err := PutSendTurn(tx, "1234", turn); err != nil {
			return err
		}
		got, held, err := GetSendTurn(tx, "1234")
		if !held || err != nil || got.Batch != 8 || !slices.Equal(got.Waiting, []uint64{9}) {
			t.Errorf("stored turn = %+v, held %v, %v", got, held, err)
		}
		if _, held, _ := GetSendTurn(tx, "5678"); held {
			t.Error("another account's turn is held")
		}
		if err := EndSendTurn(tx, "1234"); err != nil {
			return err
		}
		if _, held, _ := GetSendTurn(tx, "1234"); held {
			t.Error("an ended turn is still held")
		}
		if err := PutRequestedBy(tx, "1234", "erasured-app"); err != nil {
			return err
		}
		if who := RequestedBy(tx, "1234"); who != "erasured-app" {
			t.Errorf("RequestedBy = %q", who)
		}
		if who := RequestedBy(tx, "5678"); who != "" {
			t.Errorf("RequestedBy of an account never answered = %q, want empty", who)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

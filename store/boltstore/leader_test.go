package boltstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

// TestLeadership: the file's only user is elected at once; a second campaign waits for the
// first term to end; Close ends the term and refuses new campaigns.
func TestLeadership(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "erasured.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := db.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if who, _ := db.Leader(ctx); who != "a" {
		t.Errorf("Leader = %q, want a", who)
	}
	if !l.ValidUntil().After(time.Now().AddDate(100, 0, 0)) {
		t.Errorf("ValidUntil = %v, want far in the future", l.ValidUntil())
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := db.Campaign(short, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Campaign while a term is held = %v, want deadline exceeded", err)
	}
	if err := l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if !l.ValidUntil().Before(time.Now().Add(time.Second)) {
		t.Errorf("ValidUntil after Resign = %v, want the time it ended", l.ValidUntil())
	}
	l2, err := db.Campaign(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Term() <= l.Term() {
		t.Errorf("new term %d not after %d", l2.Term(), l.Term())
	}
	if err := db.Update(l2.Fence(ctx), func(tx store.Tx) error { _, err := tx.Append("k", nil); return err }); err != nil {
		t.Errorf("fenced Update = %v", err)
	}
	_ = db.Close()
	select {
	case <-l2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the term")
	}
	if _, err := db.Campaign(ctx, "c"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Campaign after Close = %v, want ErrClosed", err)
	}
}

// TestLeadershipOf: a fenced context carries its term back to whoever checks it.
func TestLeadershipOf(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "erasured.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := db.Campaign(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if store.LeadershipOf(context.Background()) != nil {
		t.Error("an unfenced context carries a term")
	}
	ctx, cancel := context.WithCancel(l.Fence(context.Background()))
	defer cancel()
	if got := store.LeadershipOf(ctx); got != l {
		t.Errorf("LeadershipOf(derived fenced ctx) = %v, want the term", got)
	}
}

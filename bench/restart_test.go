package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// TestRestartStore builds a small store and checks it is what the scenario says: n erasures, a
// tenth open, the older half of the final ones shredded, and the deduplicated Submits' entries;
// a second call takes it from the cache.
func TestRestartStore(t *testing.T) {
	root := t.TempDir()
	st, err := ensureRestartStore(testContext(t), root, 200, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.open != 20 || st.buildTime == 0 {
		t.Errorf("store = %+v, want 20 open and a build time", st)
	}
	db, err := boltstore.Open(filepath.Join(st.dir, "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open, final, shredded, dedups := 0, 0, 0, 0
	err = db.View(func(tx store.Tx) error {
		if err := tx.Scan(schema.Requests, nil, func(_, _ []byte) (bool, error) { dedups++; return true, nil }); err != nil {
			return err
		}
		return tx.Scan(schema.Erasures, nil, func(_, v []byte) (bool, error) {
			switch {
			case bytes.Contains(v, []byte(`"shred_time"`)):
				shredded++
				final++
			case bytes.Contains(v, []byte(`"final_time"`)):
				final++
			default:
				open++
			}
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// One Submit in fifty (the 50th, 100th, ...) is deduplicated: 4 of the 200, so 196
	// erasures. Submits 180-199 are the open ones, one of them deduplicated; 0-89 cancelled
	// past the retention, one of them deduplicated.
	if open != 19 || final != 177 || shredded != 89 || dedups != 4 {
		t.Errorf("stored %d open, %d final (%d shredded), %d deduplicated Submits; want 19, 177 (89), 4", open, final, shredded, dedups)
	}
	if again, err := ensureRestartStore(testContext(t), root, 200, nil); err != nil || again.buildTime != 0 {
		t.Errorf("second ensureRestartStore = %+v, %v; want it from the cache", again, err)
	}
	if _, err := os.Stat(filepath.Join(st.dir, "var", "master.key")); err != nil {
		t.Errorf("no master key for the sandbox: %v", err)
	}
}

// TestRestartScenario runs the scenario on a small store with the real binary, once, and checks
// its report names every goal.
func TestRestartScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/erasured")
	}
	restartFlags.erasures, restartFlags.cache = 200, t.TempDir()
	var out strings.Builder
	if err := runRestart(context.Background(), Config{Runs: 1, Dir: t.TempDir()}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"exec to health SERVING", "SERVING within 2s", "RssAnon (heap, stacks, runtime) at first Submit:", "Go heap in use at first Submit:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

// The restart scenario's store: n erasures, as Submit and the pipeline leave them, written through
// the service's own API in this process (Submit, Cancel, the key keeper), in the files the
// sandbox erasured reads: var/master.key, keys/ and erasure.db under one directory.
//
// Of the n erasures, the last tenth (restartOpenShare) stay open (RECEIVED). The others were
// cancelled, so final: the older half of them past the retention, shredded by the keeper; the
// newer half within it, their sealed data still there. One Submit in fifty repeats the subject of
// the Submit before it under another request_id, and is deduplicated onto that erasure, so the
// store also holds the entries of deduplicated Submits, for open and final erasures alike.
//
// The service's clock is moved for this: the final erasures are submitted and the first half
// cancelled retention+2 days ago, the second half cancelled and the open ones submitted a day ago,
// so that for the erasured started on it now, half the final ones are past the retention and
// purged, and none of the others is yet.

// restartOpenShare is the share of the stored erasures that are open.
const restartOpenShare = 0.10

// restartLayout names the store's layout in the cache key: the service's schema version, and the
// shape of the build, which changes when this file's recipe does.
var restartLayout = fmt.Sprintf("s%d-b2", schema.Version)

// restartStore is a built store: the directory the sandbox erasured runs in.
type restartStore struct {
	dir       string
	n, open   int
	buildTime time.Duration // 0 when it came from the cache
}

// restartCacheDir is where the store of n erasures is kept between runs.
func restartCacheDir(root string, n int) string {
	return filepath.Join(root, fmt.Sprintf("restart-%d-%s", n, restartLayout))
}

// ensureRestartStore returns the cached store of n erasures under root, building it first when
// it is not there (a build that did not finish leaves no "done" file and is built again).
func ensureRestartStore(ctx context.Context, root string, n int, progress io.Writer) (restartStore, error) {
	dir := restartCacheDir(root, n)
	open := int(float64(n) * restartOpenShare)
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return restartStore{dir: dir, n: n, open: open}, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return restartStore{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return restartStore{}, err
	}
	start := time.Now()
	if err := buildRestartStore(ctx, dir, n, open, progress); err != nil {
		return restartStore{}, fmt.Errorf("build the store of %d erasures: %w", n, err)
	}
	took := time.Since(start)
	if err := os.WriteFile(filepath.Join(dir, "done"), []byte(took.String()+"\n"), 0o600); err != nil {
		return restartStore{}, err
	}
	return restartStore{dir: dir, n: n, open: open, buildTime: took}, nil
}

// restartClock is the service's clock during the build: set, not running.
type restartClock struct{ ns atomic.Int64 }

func (c *restartClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *restartClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func newRestartClock(t time.Time) *restartClock { c := new(restartClock); c.set(t); return c }

// buildRestartStore writes the store of n erasures (open of them open) into dir.
func buildRestartStore(ctx context.Context, dir string, n, open int, progress io.Writer) error {
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	if err := os.MkdirAll(filepath.Join(dir, "var"), 0o700); err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(master) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "var", "master.key"), []byte(enc), 0o600); err != nil {
		return err
	}
	retention := 720 * time.Hour // cmd/erasured's default privacy.retention
	real := time.Now().UTC()
	t0, t1 := real.Add(-retention-48*time.Hour), real.Add(-24*time.Hour)
	clock := newRestartClock(t0)
	// The key id as cmd/erasured derives it from the master key (masterKeyID).
	sum := sha256.Sum256(master)
	keys, err := service.OpenKeyring("mk-"+hex.EncodeToString(sum[:4]), master, filepath.Join(dir, "keys"), service.DefaultKeyPeriod, t0)
	if err != nil {
		return err
	}
	db, err := boltstore.Open(filepath.Join(dir, "erasure.db"), boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		return err
	}
	svc, err := service.New(db, keys, service.Config{
		DefaultConfirmation: service.ConfirmationAutomatic,
		Logger:              slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Now:                 clock.now,
		Retention:           retention,
	})
	if err != nil {
		return errors.Join(err, db.Close())
	}
	final := n - open
	ids := make([]string, n)
	report := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, "restart: build: "+format+"\n", args...)
		}
	}
	step := func(what string, from, to int, op func(ctx context.Context, i int) error) error {
		start := time.Now()
		err := parallel(ctx, 32, from, to, op)
		report("%s: %d in %s", what, to-from, time.Since(start).Round(time.Millisecond))
		return err
	}
	submit := func(ctx context.Context, i int) error {
		subject := i
		if i%50 == 49 {
			subject = i - 1 // deduplicated onto the erasure of the Submit before
		}
		res, err := svc.Submit(ctx, service.SubmitRequest{
			RequestID: fmt.Sprintf("restart-%d", i),
			AccountID: lpsim.DemoAccount, // the sandbox's account, which its pipeline works for
			Subject:   service.Subject{Kind: service.SubjectEmail, Value: fmt.Sprintf("subject-%d@example.com", subject)},
		})
		ids[i] = res.Erasure.ID
		return err
	}
	cancel := func(ctx context.Context, i int) error {
		if i%50 == 49 {
			return nil // its erasure is the one before
		}
		_, err := svc.Cancel(ctx, service.NamePrefix+ids[i], "restart benchmark")
		return err
	}
	err = step("submit (final)", 0, final, submit)
	if err == nil {
		err = step("cancel (past retention)", 0, final/2, cancel)
	}
	if err == nil {
		clock.set(t1)
		err = step("cancel (within retention)", final/2, final, cancel)
	}
	if err == nil {
		err = step("submit (open)", final, n, submit)
	}
	if err == nil {
		start := time.Now()
		var st service.KeepStats
		st, err = svc.Keep(ctx)
		report("key keeper: %d shredded in %s", st.Shredded, time.Since(start).Round(time.Millisecond))
	}
	return errors.Join(err, db.Close())
}

// parallel runs op for every i in [from, to) on workers goroutines; the first error stops it.
func parallel(ctx context.Context, workers, from, to int, op func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	next.Store(int64(from))
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := op(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// copyStore copies the built store in src (its master key, key directory and database) to dst,
// so that a run, which changes the store as erasured starts, leaves the cache as it was. The
// copy is synced to disk before it returns.
func copyStore(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if err == nil {
			// Written back now, not while erasured starts: a restart does not follow the
			// writing of gigabytes.
			err = out.Sync()
		}
		return errors.Join(err, out.Close())
	})
}

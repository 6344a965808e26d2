package service

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// twoPeriodRing is a keyring with a key directory holding two period keys, the older one not
// current any more, and a data key wrapped by the older one.
func twoPeriodRing(t *testing.T) (dir, old string, wrapped []byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "keys")
	k, err := OpenKeyring("test", testKey, dir, testPeriod, testNow)
	if err != nil {
		t.Fatal(err)
	}
	old = k.PeriodKeys()[0]
	if wrapped, err = k.wrapKey("erasure-1", bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.roll(testNow.Add(testPeriod)); err != nil {
		t.Fatal(err)
	}
	return dir, old, wrapped
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		out = append(out, en.Name())
	}
	return out
}

// linkOutside makes a second name for path outside the key directory, so that a test can read
// the file's blocks after the key directory's name for it is removed.
func linkOutside(t *testing.T, path string) string {
	t.Helper()
	spy := filepath.Join(t.TempDir(), "spy")
	if err := os.Link(path, spy); err != nil {
		t.Fatal(err)
	}
	return spy
}

func wantZeroed(t *testing.T, spy, what string) {
	t.Helper()
	raw, err := os.ReadFile(spy)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || bytes.ContainsFunc(raw, func(r rune) bool { return r != 0 }) {
		t.Errorf("%s was removed without being overwritten first", what)
	}
}

// TestDestroyInterruptedAtEachPoint: a crash anywhere inside the destruction of a period key
// leaves files that the next start (or a master-key rotation) finishes destroying, and that
// never keep the server from starting. The crash is simulated by leaving the files each point
// of destroy leaves.
func TestDestroyInterruptedAtEachPoint(t *testing.T) {
	cases := []struct {
		name string
		// crash turns the directory's file for the key old into what a crash leaves.
		crash func(t *testing.T, dir, old string)
	}{
		{"after the rename, before the overwrite", func(t *testing.T, dir, old string) {
			if err := os.Rename(filepath.Join(dir, old+keyFileExt), filepath.Join(dir, destroyPrefix+old+keyFileExt)); err != nil {
				t.Fatal(err)
			}
		}},
		{"after the overwrite, before the remove", func(t *testing.T, dir, old string) {
			from, to := filepath.Join(dir, old+keyFileExt), filepath.Join(dir, destroyPrefix+old+keyFileExt)
			fi, err := os.Stat(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(from, to); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(to, make([]byte, fi.Size()), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"an earlier version: overwritten in place, not removed", func(t *testing.T, dir, old string) {
			path := filepath.Join(dir, old+keyFileExt)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, make([]byte, fi.Size()), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		for _, by := range []string{"OpenKeyring", "RotateKeyDir"} {
			t.Run(tc.name+"/"+by, func(t *testing.T) {
				dir, old, wrapped := twoPeriodRing(t)
				spy := linkOutside(t, filepath.Join(dir, old+keyFileExt))
				tc.crash(t, dir, old)
				masterID, master := "test", testKey
				if by == "RotateKeyDir" {
					masterID, master = "new", []byte("fedcba9876543210FEDCBA9876543210")
					if _, err := RotateKeyDir(dir, "test", testKey, masterID, master); err != nil {
						t.Fatalf("rotation after a crash inside destroy: %v", err)
					}
				}
				k, err := OpenKeyring(masterID, master, dir, testPeriod, testNow.Add(testPeriod))
				if err != nil {
					t.Fatalf("start after a crash inside destroy: %v", err)
				}
				for _, n := range dirNames(t, dir) {
					if strings.HasPrefix(n, destroyPrefix) || strings.HasPrefix(n, old) {
						t.Errorf("%s is left in the key directory", n)
					}
				}
				if got := k.PeriodKeys(); len(got) != 1 || got[0] == old {
					t.Errorf("period keys %v, want only the current one", got)
				}
				if _, err := k.unwrap("erasure-1", wrapped); !errors.Is(err, errShredded) {
					t.Errorf("a data key wrapped by the destroyed key: %v, want it shredded", err)
				}
				wantZeroed(t, spy, "the half-destroyed key file")
			})
		}
	}
}

// TestDestroyLeavesNothing: a completed destroy overwrites the file's blocks and leaves no name
// behind.
func TestDestroyLeavesNothing(t *testing.T) {
	dir, old, _ := twoPeriodRing(t)
	k, err := OpenKeyring("test", testKey, dir, testPeriod, testNow.Add(testPeriod))
	if err != nil {
		t.Fatal(err)
	}
	spy := linkOutside(t, filepath.Join(dir, old+keyFileExt))
	if err := k.destroyPeriod(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 2 { // root.key and the current period's key
		t.Errorf("key directory after destroy: %v", names)
	}
	wantZeroed(t, spy, "the destroyed key file")
}

// TestLeftoverTempFilesAreDestroyed: an interrupted write of a key file (a rotation re-sealing a
// period key, a new period key) leaves a temporary file holding a complete key. Start, rotation
// and the destruction of a period key overwrite and remove such files once they are older than
// a minute, so that the key does not outlive its destruction there; a younger one may be
// another process's write in progress and stays.
func TestLeftoverTempFilesAreDestroyed(t *testing.T) {
	for _, by := range []string{"OpenKeyring", "RotateKeyDir", "destroyPeriod"} {
		t.Run(by, func(t *testing.T) {
			dir, old, _ := twoPeriodRing(t)
			raw, err := os.ReadFile(filepath.Join(dir, old+keyFileExt))
			if err != nil {
				t.Fatal(err)
			}
			stale, fresh := filepath.Join(dir, ".tmp-1234"), filepath.Join(dir, ".tmp-5678")
			for _, p := range []string{stale, fresh} {
				if err := os.WriteFile(p, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			hourAgo := time.Now().Add(-time.Hour)
			var k *Keyring
			if by == "destroyPeriod" { // the server was started before the temporary file was a minute old
				if k, err = OpenKeyring("test", testKey, dir, testPeriod, testNow.Add(testPeriod)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(stale, hourAgo, hourAgo); err != nil {
				t.Fatal(err)
			}
			spy := linkOutside(t, stale)
			switch by {
			case "OpenKeyring":
				_, err = OpenKeyring("test", testKey, dir, testPeriod, testNow.Add(testPeriod))
			case "destroyPeriod":
				err = k.destroyPeriod(context.Background(), old)
			default:
				_, err = RotateKeyDir(dir, "test", testKey, "new", []byte("fedcba9876543210FEDCBA9876543210"))
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a temporary key file an hour old is left: %v", err)
			}
			if _, err := os.Stat(fresh); err != nil {
				t.Errorf("a temporary key file being written now was removed: %v", err)
			}
			wantZeroed(t, spy, "the stale temporary key file")
		})
	}
}

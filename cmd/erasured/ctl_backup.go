package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/store/boltstore"
	"github.com/erasured/erasured/store/etcdstore"
)

// The formats of a backup: what the server's store writes.
const (
	formatBolt = "bbolt"
	formatEtcd = "etcd-dump"
)

// backupFormats describe the formats in ctl backup's line.
var backupFormats = map[string]string{
	formatBolt: "a bbolt file",
	formatEtcd: "an etcd store dump",
}

// checkBackup checks the backup file at path as what it is: a dump of the etcd store (its
// header, records, count and checksum, and the revision the server announced), or a bbolt file
// (bbolt's own check). It returns the format.
func checkBackup(path string, rev int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, etcdstore.DumpHeaderLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	if !etcdstore.IsDump(head[:n]) {
		return formatBolt, boltstore.CheckFile(path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	info, err := etcdstore.CheckDump(f)
	if err != nil {
		return "", err
	}
	if int64(info.Rev) != rev {
		return "", fmt.Errorf("the dump is of revision %d, the server announced %d", info.Rev, rev)
	}
	return formatEtcd, nil
}

// ctlBackup writes the server's snapshot of its store to FILE: a bbolt file, or on etcd a dump
// of the store's prefix (see etcdstore.Backup), checked before it is kept. The file appears complete or
// not at all: the chunks go to a temporary file beside it (mode 0600: the snapshot holds sealed
// personal data), which is synced and then renamed over FILE. The call has no deadline of its
// own (a large store takes a while); interrupt it to stop.
func ctlBackup(*flag.FlagSet) (func() error, ctlRun) {
	return noCheck, func(ctx context.Context, c *ctl, args []string) error {
		path := args[0]
		st, err := c.client.Backup(ctx, &erasurev1.BackupRequest{})
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
		if err != nil {
			return err
		}
		defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
		defer tmp.Close()
		if err := tmp.Chmod(0o600); err != nil {
			return err
		}
		var size, rev, written int64
		for {
			msg, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if written == 0 {
				size, rev = msg.GetSize(), msg.GetRevision()
			}
			n, err := tmp.Write(msg.GetData())
			written += int64(n)
			if err != nil {
				return err
			}
		}
		if written != size || size == 0 {
			return fmt.Errorf("backup ended after %d of %d bytes; %s was not written", written, size, path)
		}
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		// A copy that does not pass its check never replaces an older, good backup.
		format, err := checkBackup(tmp.Name(), rev)
		if err != nil {
			return fmt.Errorf("the backup received does not pass the check; %s was not written: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
		if d, err := os.Open(filepath.Dir(path)); err == nil { // make the rename itself durable
			_ = d.Sync()
			_ = d.Close()
		}
		if c.opts.output == "json" {
			_, err = fmt.Fprintf(c.out, "{\"file\": %q, \"format\": %q, \"size\": %d, \"revision\": %d}\n", path, format, size, rev)
			return err
		}
		_, err = fmt.Fprintf(c.out, "wrote %s: %s, %d bytes, revision %d\n", path, backupFormats[format], size, rev)
		return err
	}
}

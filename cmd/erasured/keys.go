package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

// rotateLockTimeout is how long `keys rotate` waits for the database: a running server holds it,
// and rotation must fail fast rather than wait for it.
const rotateLockTimeout = 200 * time.Millisecond

// keysMain runs `erasured keys rotate --config FILE --new-master-key-file F [--new-master-key-id ID]`.
//
// With the server stopped, rotation first moves every data key the old master key wraps directly
// (databases written before the key directory) under the current period key, then seals every
// file of the key directory again under the new master key, one file at a time, atomically. The
// root secret is kept, so fingerprints, request hashes and the receipt-signing key stay the same:
// receipts signed before and after verify against the same public key. Afterwards the old master
// key opens nothing. An interrupted rotation is finished by running it again.
func keysMain(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: erasured keys rotate --config FILE --new-master-key-file FILE [--new-master-key-id ID]")
	}
	fs := flag.NewFlagSet("erasured keys rotate", flag.ContinueOnError)
	var (
		configPath = fs.String("config", "", "the server's configuration file")
		newFile    = fs.String("new-master-key-file", "", "file holding the new master key (32 random bytes, base64; mode 0600)")
		newID      = fs.String("new-master-key-id", "", "id of the new master key (default: a hash prefix of it)")
	)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *configPath == "" || *newFile == "" {
		return errors.New("keys rotate: --config and --new-master-key-file are required")
	}
	cfg, err := loadConfig([]string{"--config", *configPath}, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Store.shared() {
		// Rotation needs the store to itself, which a file lock gives on bbolt only. On etcd it
		// would take every replica stopped, then service.RotateSharedKeys over the store; this
		// command does not do that yet.
		return errors.New("keys rotate: works on the bbolt backend only; store.backend is etcd")
	}
	oldKey, _, err := readMasterKey(cfg.Privacy.MasterKeyFile, false, cfg.env)
	if err != nil {
		return err
	}
	oldID := masterKeyID(cfg.Privacy.MasterKeyID, oldKey)
	newKey, _, err := readMasterKey(*newFile, false, func(string) string { return "" })
	if err != nil {
		return err
	}
	nid := masterKeyID(*newID, newKey)
	dir := keyDirOf(&cfg)

	db, err := boltstore.Open(cfg.DB, boltstore.Options{Buckets: schema.Buckets, LockTimeout: rotateLockTimeout})
	if err != nil {
		return fmt.Errorf("open store (stop the server first): %w", err)
	}
	defer db.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svcCfg := service.Config{Logger: quiet, Retention: cfg.Privacy.Retention.Duration}

	old, err := service.OpenKeyring(oldID, oldKey, dir, cfg.Privacy.KeyPeriod.Duration, time.Now())
	switch {
	case errors.Is(err, service.ErrOtherMasterKey):
		// An interrupted rotation sealed some files under the new key already; it had moved the
		// data keys before it began on the files.
		fmt.Fprintf(stdout, "key directory %s is partly sealed by master key %s already: finishing the rotation\n", dir, nid)
	case err != nil:
		return err
	default:
		svc, err := service.New(db, old, svcCfg)
		if err != nil {
			return err
		}
		st, err := svc.MigrateKeys(ctx)
		if err != nil {
			return fmt.Errorf("move data keys under the period key: %w", err)
		}
		fmt.Fprintf(stdout, "moved %d data keys wrapped by master key %s under period key %s\n", st.Migrated, oldID, st.CurrentKey)
	}
	rs, err := service.RotateKeyDir(dir, oldID, oldKey, nid, newKey)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sealed %d key files of %s again, from master key %s to %s (%d were sealed by %s already)\n",
		rs.Rewrapped, dir, oldID, nid, rs.AlreadyNew, nid)
	if rs.Leftovers > 0 {
		fmt.Fprintf(stdout, "destroyed %d files left by interrupted key writes or destructions\n", rs.Leftovers)
	}

	// Check with the new key alone that every data key opens.
	keys, err := service.OpenKeyring(nid, newKey, dir, cfg.Privacy.KeyPeriod.Duration, time.Now())
	if err != nil {
		return err
	}
	svc, err := service.New(db, keys, svcCfg)
	if err != nil {
		return err
	}
	c, err := svc.CheckKeys()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checked: %d data keys open with master key %s (%d unreadable: destroyed with their period keys); receipt key %s unchanged\n",
		c.Open, nid, c.Unreadable, keys.SigningKeyID())
	fmt.Fprintf(stdout, "now set privacy.master_key_file to %s and privacy.master_key_id to %q (or ERASURED_MASTER_KEY), start the server, and destroy the old master key\n",
		*newFile, nid)
	return db.Close()
}

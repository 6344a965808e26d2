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
// key opens nothing. An interrupted rotation is finished by running it again. On a store shared by
// replicas the key records live in the store instead (rotateShared).
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
	if cfg.Store.shared() {
		return rotateShared(ctx, &cfg, oldID, oldKey, nid, newKey, *newFile, stdout)
	}
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
		if err := migrateDataKeys(ctx, db, old, svcCfg, oldID, stdout); err != nil {
			return err
		}
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
	if err := checkRotated(db, keys, svcCfg, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "now set privacy.master_key_file to %s and privacy.master_key_id to %q (or ERASURED_MASTER_KEY), start the server, and destroy the old master key\n",
		*newFile, nid)
	return db.Close()
}

// rotateShared is keys rotate on a store shared by replicas (etcd), whose wrapping keys are
// records of the store: with every replica stopped, it moves data keys wrapped by the master key
// under the period key, seals every key record again under the new master key in one
// transaction, and checks with the new key alone that every data key opens. Every running
// replica campaigns for the pipeline's leadership, so a leader on the store means one runs.
func rotateShared(ctx context.Context, cfg *Config, oldID string, oldKey []byte, nid string, newKey []byte, newFile string, stdout io.Writer) error {
	db, err := openStore(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	who, err := db.Leader(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: ask the store whether a replica runs: %w", err)
	}
	if who != "" {
		return fmt.Errorf("keys rotate: replica %q is running on this store: stop every replica first", who)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svcCfg := service.Config{Logger: quiet, Retention: cfg.Privacy.Retention.Duration, Shared: true}
	period, now := cfg.Privacy.KeyPeriod.Duration, time.Now()
	old, err := service.OpenSharedKeyring(ctx, oldID, oldKey, db, period, now)
	switch {
	case errors.Is(err, service.ErrOtherMasterKey):
		fmt.Fprintf(stdout, "the store's keys are partly sealed by master key %s already: finishing the rotation\n", nid)
	case err != nil:
		return err
	default:
		if err := migrateDataKeys(ctx, db, old, svcCfg, oldID, stdout); err != nil {
			return err
		}
	}
	rs, err := service.RotateSharedKeys(ctx, db, oldID, oldKey, nid, newKey)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sealed %d key records of the store again, from master key %s to %s (%d were sealed by %s already)\n",
		rs.Rewrapped, oldID, nid, rs.AlreadyNew, nid)
	keys, err := service.OpenSharedKeyring(ctx, nid, newKey, db, period, now)
	if err != nil {
		return err
	}
	if err := checkRotated(db, keys, svcCfg, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "now give every replica privacy.master_key_file %s and privacy.master_key_id %q (or ERASURED_MASTER_KEY), start them, and destroy the old master key\n",
		newFile, nid)
	return db.Close()
}

// migrateDataKeys moves the data keys the old master key wraps directly under the current period
// key, the first step of a rotation on either backend.
func migrateDataKeys(ctx context.Context, db service.Store, old *service.Keyring, svcCfg service.Config, oldID string, stdout io.Writer) error {
	svc, err := service.New(db, old, svcCfg)
	if err != nil {
		return err
	}
	st, err := svc.MigrateKeys(ctx)
	if err != nil {
		return fmt.Errorf("move data keys under the period key: %w", err)
	}
	fmt.Fprintf(stdout, "moved %d data keys wrapped by master key %s under period key %s\n", st.Migrated, oldID, st.CurrentKey)
	return nil
}

// checkRotated checks, with the new keyring alone, that every data key opens, the last step of a
// rotation on either backend.
func checkRotated(db service.Store, keys *service.Keyring, svcCfg service.Config, stdout io.Writer) error {
	svc, err := service.New(db, keys, svcCfg)
	if err != nil {
		return err
	}
	c, err := svc.CheckKeys()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checked: %d data keys open with master key %s (%d unreadable: destroyed with their period keys); receipt key %s unchanged\n",
		c.Open, keys.ID(), c.Unreadable, keys.SigningKeyID())
	return nil
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/erasured/erasured/liveperson/port"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

// realMain wires configuration, store, service and server, serves until ctx ends, then shuts
// down in order: health NOT_SERVING, Watch streams ended, in-flight RPCs drained, store closed.
func realMain(ctx context.Context, args []string) error {
	if handled, err := dispatch(ctx, args, os.Stdout, os.Stderr); handled {
		return err
	}
	// SIGHUP reloads the callers and TLS files. It is caught from here on, before the
	// configuration is read and the store opens, so that one sent while erasured starts never
	// ends it: it waits, and is handled once erasured serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var level slog.LevelVar // log_level, read again on SIGHUP
	// A line logged with a call's context carries the call's request id (and trace id).
	log := slog.New(server.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: &level})))
	slog.SetDefault(log)

	cfg, err := loadConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	lv, _ := parseLogLevel(cfg.LogLevel) // checked by loadConfig
	level.Set(lv)
	// Tracing stops last, on every way out: the spans of the calls and the work, all ended by
	// then, are flushed.
	tp, stopTracing, err := startTracing(ctx, cfg.Tracing, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	var traces trace.TracerProvider // stays a nil interface with tracing off
	if tp != nil {
		traces = tp
	}
	if cfg.sandbox {
		log.Warn("SANDBOX MODE: no config file given; no authentication, loopback only, generated master key, simulated LivePerson: not for real data",
			"listen", cfg.Listen, "db", cfg.DB)
		stopSim, err := startSandboxLivePerson(&cfg, log)
		if err != nil {
			return fmt.Errorf("sandbox LivePerson: %w", err)
		}
		defer stopSim()
	}
	keys, err := openKeyring(&cfg, time.Now())
	if err != nil {
		return err
	}
	m := newMetrics()
	db, err := boltstore.Open(cfg.DB, boltstore.Options{Buckets: schema.Buckets, OnCommit: m.observeCommit})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()

	conf := service.ConfirmationAutomatic
	if cfg.Pipeline.Confirmation == "manual" {
		conf = service.ConfirmationManual
	}
	svc, err := service.New(db, keys, service.Config{
		DefaultConfirmation: conf,
		Logger:              log,
		CancelWindow:        cfg.LivePerson.CancelWindow.Duration,
		DeletionWindow:      cfg.LivePerson.DeletionWindow.Duration,
		Accounts:            accountIDs(cfg.Accounts),
		OnIncident:          m.incident,
		OnStateChange:       m.stateChange,
		Retention:           cfg.Privacy.Retention.Duration,
	})
	if err != nil {
		return err
	}
	acc, err := newAccess(&cfg)
	if err != nil {
		return err
	}
	// Counted now: once SIGHUP is watched, acc.cur is the reloads' (under acc.mu).
	tokens, certificates := len(acc.cur.Tokens), len(acc.cur.Certificates)
	// Both listeners are bound before any work starts: a port taken, or an address that
	// resolved beyond loopback where loopback is required, stops erasured here instead of
	// leaving it running without its metrics.
	lis, err := listenChecked("gRPC listener", cfg.Listen, cfg.needsLoopback())
	if err != nil {
		return err
	}
	defer lis.Close()
	var mlis net.Listener
	if cfg.MetricsListen != "" {
		if mlis, err = listenChecked("metrics listener", cfg.MetricsListen, cfg.needsLoopback()); err != nil {
			return err
		}
		defer mlis.Close()
	}
	srv, err := server.New(svc, server.Options{Logger: log, Auth: acc.auth, TLS: acc.tls, Limits: cfg.Limits.limits(), Metrics: m.grpc,
		TracerProvider: traces})
	if err != nil {
		return err
	}
	pcfg := pipelineConfig(&cfg)
	m.attach(svc, srv, db.Path(), accountIDs(cfg.Accounts), pcfg.Quota)
	lp, err := wireLivePerson(&cfg, log, lpReports{call: m.observeCall, authFailed: m.authFailed, traces: traces})
	if err != nil {
		return err
	}
	pipeline := svc.NewPipeline(port.New(lp.client), pcfg)
	workCtx, stopWork := context.WithCancel(context.Background())
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		if err := pipeline.Run(workCtx); err != nil {
			log.Error("pipeline stopped", "err", err)
		}
	}()
	// The credential check runs beside the service: it reports, it does not hold start-up.
	checkDone := make(chan struct{})
	go func() {
		defer close(checkDone)
		if !cfg.noCredentialCheck {
			checkCredentials(workCtx, lp, log, time.Now())
		}
	}()
	// Whatever ends realMain, background work stops before the store closes.
	defer func() { stopWork(); <-workDone; <-checkDone }()
	go compactHistory(workCtx, svc, cfg.History.KeepRevisions, log)
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		acc.watchSIGHUP(workCtx, reloadLogLevel(workCtx, hup, &cfg, &level, log), log)
	}()
	defer func() { stopWork(); <-hupDone }() // a reload in progress ends before the store closes
	if mlis != nil {
		go func() {
			if err := m.serve(workCtx, mlis, acc, log); err != nil {
				log.Error("metrics listener", "err", err)
			}
		}()
	}

	log.Info("erasured serving", "listen", lis.Addr().String(), "db", cfg.DB, "key_id", keys.ID(),
		"receipt_key_id", keys.SigningKeyID(), "tls", acc.tls != nil, "mtls", cfg.TLS.ClientCAFile != "",
		"authentication", acc.auth != nil, "tokens", tokens, "certificates", certificates)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if sig := (signalCause{}); errors.As(context.Cause(ctx), &sig) {
		log.Info("received "+sig.name()+", shutting down", "signal", sig.name(), "watchers", srv.Watchers())
	} else {
		log.Info("shutting down", "watchers", srv.Watchers())
	}
	// Shutdown order: health NOT_SERVING, stop the workers, end Watch streams, drain
	// RPCs, close the store.
	srv.Drain()
	stopWork()
	<-workDone
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout.Duration)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-served; err != nil {
		log.Error("serve", "err", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// reloadLogLevel sets the log level anew from the command line, the environment and the file at
// every signal from hup, then passes the signal on for the rest of the reload. A level that
// cannot be read leaves the one in use.
func reloadLogLevel(ctx context.Context, hup <-chan os.Signal, cfg *Config, level *slog.LevelVar, log *slog.Logger) <-chan os.Signal {
	next := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-hup:
				if c, err := readConfig(cfg.args, cfg.getenv); err != nil {
					log.Error("SIGHUP: log level not reloaded", "err", err)
				} else if lv, err := parseLogLevel(c.LogLevel); err != nil {
					log.Error("SIGHUP: log level not reloaded", "err", err)
				} else if lv != level.Level() {
					log.Warn("SIGHUP: log level changed", "from", level.Level().String(), "to", lv.String())
					level.Set(lv)
				}
				select {
				case next <- s:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return next
}

// loadKeyring reads the master key (32 random bytes, base64) from env ERASURED_MASTER_KEY or,
// when that is unset, from path, and derives the keys from it alone, without the key directory
// (see openKeyring). In the sandbox a missing key file is created. The key id defaults to a hash
// prefix of the key.
func loadKeyring(path, id string, create bool) (*service.Keyring, error) {
	key, _, err := readMasterKey(path, create, os.Getenv)
	if err != nil {
		return nil, err
	}
	return service.NewKeyring(masterKeyID(id, key), key)
}

// openKeyring is the server's keyring: the master key, and the key directory it seals.
func openKeyring(cfg *Config, now time.Time) (*service.Keyring, error) {
	key, _, err := readMasterKey(cfg.Privacy.MasterKeyFile, cfg.sandbox, cfg.env)
	if err != nil {
		return nil, err
	}
	return service.OpenKeyring(masterKeyID(cfg.Privacy.MasterKeyID, key), key, keyDirOf(cfg), cfg.Privacy.KeyPeriod.Duration, now)
}

// keyDirOf is privacy.key_dir, by default a "keys" directory beside the db file.
func keyDirOf(cfg *Config) string {
	if cfg.Privacy.KeyDir != "" {
		return cfg.Privacy.KeyDir
	}
	return filepath.Join(filepath.Dir(cfg.DB), "keys")
}

// masterKeyID is id, or by default a hash prefix of the key.
func masterKeyID(id string, key []byte) string {
	if id != "" {
		return id
	}
	sum := sha256.Sum256(key)
	return "mk-" + hex.EncodeToString(sum[:4])
}

// readMasterKey reads the master key from env ERASURED_MASTER_KEY (base64), or else from the file
// path, which group and others must not be able to read. It refuses a weak key, naming where it
// came from. source is that name.
func readMasterKey(path string, create bool, getenv func(string) string) (key []byte, source string, err error) {
	var raw []byte
	if v := getenv("ERASURED_MASTER_KEY"); v != "" {
		source, raw = "ERASURED_MASTER_KEY", []byte(v)
	} else {
		source = path
		raw, err = readSecretFile(path)
		if errors.Is(err, fs.ErrNotExist) && create {
			raw, err = newKeyFile(path)
		}
		if err != nil {
			return nil, source, fmt.Errorf("master key: %w", err)
		}
	}
	key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		return nil, source, fmt.Errorf("master key %s: want 32 bytes in base64", source)
	}
	if err := service.CheckMasterKey(key); err != nil {
		return nil, source, fmt.Errorf("master key %s: %w", source, err)
	}
	return key, source, nil
}

func newKeyFile(path string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	enc := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(enc); err != nil {
		f.Close()
		return nil, err
	}
	return enc, f.Close()
}

func accountIDs(accounts []Account) []string {
	ids := make([]string, 0, len(accounts))
	for _, a := range accounts {
		ids = append(ids, a.ID)
	}
	return ids
}

// compactHistory drops Watch history beyond the newest keep revisions, every ten minutes.
func compactHistory(ctx context.Context, svc *service.Service, keep uint64, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if err := svc.Compact(ctx, keep); err != nil && ctx.Err() == nil {
			log.Error("compacting the change history", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

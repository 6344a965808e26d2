package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
)

// realMain runs one of erasured's commands (see dispatch) or the server: load reads the
// configuration and the keys, wire builds the parts, run serves until ctx ends and shuts down.
// Whichever way it returns, every goroutine it started has ended and the store is closed.
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
	l, err := load(args)
	if err != nil {
		return err
	}
	a, err := wire(ctx, l)
	if err != nil {
		return err // wire has undone what it built
	}
	return a.run(ctx, hup)
}

// loaded is what erasured reads before it builds anything.
type loaded struct {
	cfg   Config
	log   *slog.Logger
	level *slog.LevelVar // log_level, read again on SIGHUP
	keys  *service.Keyring
}

// load sets up the log, reads the configuration (flags, environment, file) and opens the
// keyring: the master key and the key directory it seals.
func load(args []string) (*loaded, error) {
	l := &loaded{level: new(slog.LevelVar)}
	// A line logged with a call's context carries the call's request id (and trace id).
	l.log = slog.New(server.LogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l.level})))
	slog.SetDefault(l.log)
	var err error
	if l.cfg, err = loadConfig(args, os.Getenv); err != nil {
		return nil, err
	}
	lv, _ := parseLogLevel(l.cfg.LogLevel) // checked by loadConfig
	l.level.Set(lv)
	if l.keys, err = openKeyring(&l.cfg, time.Now()); err != nil {
		return nil, err
	}
	return l, nil
}

// run starts the background work and serves until ctx ends or serving fails, then shuts down
// in order: health NOT_SERVING, the work stopped and waited for, Watch streams ended, calls in
// flight drained, the store closed, tracing flushed (see wire).
func (a *app) run(ctx context.Context, hup <-chan os.Signal) error {
	defer a.close()
	cfg, log := &a.cfg, a.log
	// Background work never inherits ctx: it stops when shutdown asks, after health went
	// NOT_SERVING, and always before the store closes.
	workCtx, stopWork := context.WithCancel(context.Background())
	var work sync.WaitGroup
	defer func() { stopWork(); work.Wait() }()
	work.Go(func() { a.lead.Run(workCtx) }) // the pipeline, while this process leads
	// The credential check runs beside the service: it reports, it does not hold start-up.
	if !cfg.noCredentialCheck {
		work.Go(func() { checkCredentials(workCtx, a.lp, log, time.Now()) })
	}
	work.Go(func() { compactHistory(workCtx, a.svc, cfg.History.KeepRevisions, log) })
	// Counted now: once SIGHUP is watched, acc.cur is the reloads' (under acc.mu).
	tokens, certificates := len(a.acc.cur.Tokens), len(a.acc.cur.Certificates)
	reloads := make(chan os.Signal, 1)
	work.Go(func() { reloadLogLevel(workCtx, hup, reloads, cfg, a.level, log) })
	work.Go(func() { a.acc.watchSIGHUP(workCtx, reloads, log) }) // a reload in progress ends before the store closes
	if a.mlis != nil {
		work.Go(func() {
			if err := a.m.serve(workCtx, a.mlis, a.acc, log); err != nil {
				log.Error("metrics listener", "err", err)
			}
		})
	}

	log.Info("erasured serving", "listen", a.lis.Addr().String(), "store", cfg.Store.Backend, "db", a.db.where,
		"replica", a.lead.id, "key_id", a.keys.ID(),
		"receipt_key_id", a.keys.SigningKeyID(), "tls", a.acc.tls != nil, "mtls", cfg.TLS.ClientCAFile != "",
		"authentication", a.acc.auth != nil, "tokens", tokens, "certificates", certificates)

	served := make(chan error, 1)
	go func() { served <- a.srv.Serve(a.lis) }()
	var serveErr error
	select {
	case serveErr = <-served:
		served = nil // read: it is not waited for again below
	case <-ctx.Done():
		if sig := (signalCause{}); errors.As(context.Cause(ctx), &sig) {
			log.Info("received "+sig.name()+", shutting down", "signal", sig.name(), "watchers", a.srv.Watchers())
		} else {
			log.Info("shutting down", "watchers", a.srv.Watchers())
		}
	}
	a.srv.Drain()
	stopWork()
	work.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout.Duration)
	defer cancel()
	a.srv.Shutdown(sctx)
	if served != nil {
		if err := <-served; err != nil {
			log.Error("serve", "err", err)
		}
	}
	if serveErr != nil {
		return serveErr
	}
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// reloadLogLevel sets the log level anew from the command line, the environment and the file at
// every signal from hup, then passes the signal on to next for the rest of the reload, until
// ctx ends. A level that cannot be read leaves the one in use.
func reloadLogLevel(ctx context.Context, hup <-chan os.Signal, next chan<- os.Signal, cfg *Config, level *slog.LevelVar, log *slog.Logger) {
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

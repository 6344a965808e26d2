package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/erasured/erasured/liveperson/port"
	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/store"
)

// app is erasured wired: every part built and both listeners bound, none of the background
// work started (run starts it).
type app struct {
	*loaded
	m        *metrics
	db       *openedStore
	svc      *service.Service
	acc      *access
	srv      *server.Server
	lp       *livePerson
	pipeline *service.Pipeline
	lead     *leadPipeline // runs the pipeline while this process leads
	lis      net.Listener
	mlis     net.Listener // nil without metrics_listen

	undo []func() // what wire built, undone in reverse order by close
}

// onClose adds f to what close undoes: the parts built so far, the last built first.
func (a *app) onClose(f func()) { a.undo = append(a.undo, f) }

// close undoes everything wire did: listeners closed, the server's health monitor stopped, the
// store closed, the sandbox's simulator stopped, tracing flushed. It is safe after run's
// ordered shutdown, which did the same steps first.
func (a *app) close() {
	for i := len(a.undo) - 1; i >= 0; i-- {
		a.undo[i]()
	}
	a.undo = nil
}

// wire builds erasured from what load read: tracing, the sandbox's simulated LivePerson, the
// store, the service, the gRPC server, the metrics, the LivePerson client and the pipeline, then
// binds the listeners. On an error it undoes what it built before returning.
func wire(ctx context.Context, l *loaded) (_ *app, err error) {
	a := &app{loaded: l}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	cfg, log := &a.cfg, a.log
	// Tracing stops last, on every way out: the spans of the calls and the work, all ended by
	// then, are flushed.
	tp, stopTracing, err := startTracing(ctx, cfg.Tracing, log)
	if err != nil {
		return nil, err
	}
	a.onClose(stopTracing)
	var traces trace.TracerProvider // stays a nil interface with tracing off
	if tp != nil {
		traces = tp
	}
	if cfg.sandbox {
		log.Warn("SANDBOX MODE: no config file given; no authentication, loopback only, generated master key, simulated LivePerson: not for real data",
			"listen", cfg.Listen, "db", cfg.DB)
		stopSim, err := startSandboxLivePerson(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("sandbox LivePerson: %w", err)
		}
		a.onClose(stopSim)
	}
	a.m = newMetrics()
	if a.db, err = openStore(ctx, cfg, a.m.observeCommit); err != nil {
		return nil, err
	}
	a.onClose(func() { a.db.Close() }) // run closes it first, and reports its error
	if cfg.Store.shared() {
		if a.keys, err = openSharedKeyring(ctx, cfg, a.db, time.Now()); err != nil {
			return nil, err
		}
	}
	if a.svc, err = service.New(a.db, a.keys, serviceConfig(cfg, a)); err != nil {
		return nil, err
	}
	if a.acc, err = newAccess(cfg); err != nil {
		return nil, err
	}
	a.srv, err = server.New(a.svc, server.Options{Logger: log, Auth: a.acc.auth, TLS: a.acc.tls, Limits: cfg.Limits.limits(),
		Metrics: a.m.grpc, TracerProvider: traces})
	if err != nil {
		return nil, err
	}
	// The server's health monitor runs from here on; a shutdown ends it, served or not.
	a.onClose(func() { a.srv.Shutdown(context.Background()) })
	pcfg := pipelineConfig(cfg)
	a.m.attach(a.svc, a.srv, a.db.path, accountIDs(cfg.Accounts), pcfg.Quota)
	if a.lp, err = wireLivePerson(cfg, log, lpReports{call: a.m.observeCall, authFailed: a.m.authFailed, traces: traces}); err != nil {
		return nil, err
	}
	a.pipeline = a.svc.NewPipeline(port.New(a.lp.client), pcfg)
	a.lead = newLeadPipeline(cfg, a.db, a.pipeline, log, a.m.leading)
	// Both listeners are bound before any work starts: a port taken, or an address that
	// resolved beyond loopback where loopback is required, stops erasured here instead of
	// leaving it running without its metrics.
	if a.lis, err = listenChecked("gRPC listener", cfg.Listen, cfg.needsLoopback()); err != nil {
		return nil, err
	}
	a.onClose(func() { a.lis.Close() })
	if cfg.MetricsListen != "" {
		if a.mlis, err = listenChecked("metrics listener", cfg.MetricsListen, cfg.needsLoopback()); err != nil {
			return nil, err
		}
		a.onClose(func() { a.mlis.Close() })
	}
	return a, nil
}

// serviceConfig turns the configuration into the service's settings, its reports going to a's
// metrics.
func serviceConfig(cfg *Config, a *app) service.Config {
	return service.Config{
		DefaultConfirmation: confirmations[cfg.Pipeline.Confirmation],
		Logger:              a.log,
		CancelWindow:        cfg.LivePerson.CancelWindow.Duration,
		DeletionWindow:      cfg.LivePerson.DeletionWindow.Duration,
		Accounts:            accountIDs(cfg.Accounts),
		OnIncident:          a.m.incident,
		OnStateChange:       a.m.stateChange,
		Retention:           cfg.Privacy.Retention.Duration,
		PollInterval:        cfg.Pipeline.PollInterval.Duration,
		Shared:              cfg.Store.shared(),
	}
}

// newLeadPipeline runs the pipeline p while this process leads the store's election. On a
// shared store (etcd) a new leader waits out what the last one may still have in flight, and
// follows the store's changes to see the work other replicas accept; on bbolt the file lock
// makes this process the only one, elected at once, whose own calls wake its pipeline.
func newLeadPipeline(cfg *Config, db storeBackend, p *service.Pipeline, log *slog.Logger, onTerm func(bool)) *leadPipeline {
	l := &leadPipeline{elector: db, id: cfg.Store.replicaID(), run: p.Run, wake: p.Wake, log: log, onTerm: onTerm,
		retry: leaderRetry, after: time.After}
	if cfg.Store.shared() {
		l.takeover = takeoverWait
		l.watch = func() (store.Watcher, error) { return db.Watch(0, "") }
	}
	return l
}

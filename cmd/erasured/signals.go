package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// signalCause is the cause of the serving context when a signal ends it: the shutdown is
// logged naming the signal.
type signalCause struct{ sig os.Signal }

func (c signalCause) Error() string { return "received " + c.name() }

// name is the signal's name as operators type it (SIGTERM), not Go's description ("terminated").
func (c signalCause) name() string {
	switch c.sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return c.sig.String()
}

// notifyShutdown is signal.NotifyContext whose context's cause is a signalCause naming the
// signal received. stop unregisters the signals.
func notifyShutdown(parent context.Context, sigs ...os.Signal) (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case s := <-ch:
			cancel(signalCause{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(context.Canceled) }
}

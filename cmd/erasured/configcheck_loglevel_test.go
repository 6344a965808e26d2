package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestSIGHUPReloadsLogLevel: a SIGHUP reads log_level again and passes the signal on; a level
// that cannot be read leaves the one in use.
func TestSIGHUPReloadsLogLevel(t *testing.T) {
	dir := t.TempDir()
	path := goodConfig(t, dir, true) // log_level: warn
	cfg, err := loadConfig([]string{"--config", path}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var level slog.LevelVar
	lv, _ := parseLogLevel(cfg.LogLevel)
	level.Set(lv)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	next := make(chan os.Signal)
	done := make(chan struct{})
	go func() { defer close(done); reloadLogLevel(ctx, hup, next, &cfg, &level, log) }()
	defer func() { cancel(); <-done }()
	raw, _ := os.ReadFile(path)
	for _, tc := range []struct {
		level string
		want  slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"shouty", slog.LevelDebug}, // refused: debug stays
		{"error", slog.LevelError},
	} {
		body := strings.Replace(string(raw), "log_level: warn", "log_level: "+tc.level, 1)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		hup <- syscall.SIGHUP
		if s := <-next; s != syscall.SIGHUP {
			t.Fatalf("passed on %v, want SIGHUP", s)
		}
		if level.Level() != tc.want {
			t.Errorf("log_level %s: level %v, want %v", tc.level, level.Level(), tc.want)
		}
	}
	if !strings.Contains(logs.String(), "log level not reloaded") || !strings.Contains(logs.String(), "log level changed") {
		t.Errorf("logs:\n%s", logs.String())
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// captureOutput runs f with os.Stdout and os.Stderr sent to pipes and returns what it wrote.
// No test of the package runs in parallel, so nothing else writes meanwhile.
func captureOutput(t *testing.T, f func()) (stdout, stderr string) {
	t.Helper()
	read := func(target **os.File) (restore func() string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *target
		*target = w
		got := make(chan string, 1)
		go func() { b, _ := io.ReadAll(r); r.Close(); got <- string(b) }()
		return func() string { *target = old; w.Close(); return <-got }
	}
	restoreOut, restoreErr := read(&os.Stdout), read(&os.Stderr)
	defer func() { stdout, stderr = restoreOut(), restoreErr() }()
	f()
	return
}

// TestHelpAndVersion: the help of erasured and of each command, asked for in each usual way,
// succeeds (exit 0) and prints the usage; the main help lists every command; --version prints
// the version, the revision and the Go version.
func TestHelpAndVersion(t *testing.T) {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	tests := []struct {
		args       []string
		stdout     []string // each must appear on standard output
		stderr     []string // each must appear on standard error
		listsNames bool     // the list of every command
	}{
		{args: []string{"--help"}, listsNames: true, stdout: []string{"--config FILE", "--version"}},
		{args: []string{"-h"}, listsNames: true},
		{args: []string{"-help"}, listsNames: true},
		{args: []string{"help"}, listsNames: true},
		{args: []string{"--listen", "127.0.0.1:0", "--help"}, listsNames: true},
		{args: []string{"receipt", "--help"}, stdout: []string{"erasured receipt verify --public-key KEY", "erasured receipt public-key"}},
		{args: []string{"help", "receipt"}, stdout: []string{"erasured receipt verify"}},
		{args: []string{"receipt", "verify", "--help"}, stderr: []string{"-public-key"}},
		{args: []string{"receipt", "public-key", "--help"}, stderr: []string{"-config"}},
		{args: []string{"keys", "--help"}, stdout: []string{"erasured keys rotate --config FILE --new-master-key-file FILE"}},
		{args: []string{"keys", "-h"}, stdout: []string{"erasured keys rotate"}},
		{args: []string{"keys", "rotate", "--help"}, stderr: []string{"-new-master-key-file"}},
		{args: []string{"lpsim", "--help"}, stderr: []string{"-speed", "-accounts"}},
		{args: []string{"version", "--help"}, stdout: []string{"usage: erasured version"}},
		{args: []string{"--version"}, stdout: []string{"erasured ", "\nrevision: ", "\ngo: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}},
		{args: []string{"-version"}, stdout: []string{"\nrevision: "}},
		{args: []string{"version"}, stdout: []string{"\ngo: " + runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var err error
			stdout, stderr := captureOutput(t, func() { err = realMain(context.Background(), tt.args) })
			if err != nil {
				t.Fatalf("realMain(%q) = %v, want success; stderr: %s", tt.args, err, stderr)
			}
			want := tt.stdout
			if tt.listsNames {
				for _, n := range names {
					want = append(want, "\n  "+n+" ")
				}
			}
			for _, w := range want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestUnknownCommand: a word erasured does not know is an error naming it and pointing to the
// help, not "unexpected argument".
func TestUnknownCommand(t *testing.T) {
	err := realMain(context.Background(), []string{"frobnicate"})
	if err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) || !strings.Contains(err.Error(), "--help") {
		t.Errorf("realMain(frobnicate) = %v", err)
	}
}

// TestHelpListsEveryServeFlag: the help's list of the server's flags is the configuration
// loader's: a flag added there and not to the help fails here.
func TestHelpListsEveryServeFlag(t *testing.T) {
	var err error
	_, defaults := captureOutput(t, func() { _, err = readConfig([]string{"-h"}, func(string) string { return "" }) })
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("readConfig(-h) = %v, want flag.ErrHelp", err)
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(defaults, -1)
	if len(flags) < 4 {
		t.Fatalf("found %d flags in the loader's defaults:\n%s", len(flags), defaults)
	}
	for _, f := range flags {
		if !strings.Contains(serveFlags, "  --"+f[1]+" ") {
			t.Errorf("the help does not list the flag --%s", f[1])
		}
	}
}

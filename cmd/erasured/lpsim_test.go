package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestLPSimFlagsRefused: bad flags of `erasured lpsim` are refused before anything listens.
func TestLPSimFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--speed", "0"}, "--speed must be positive"},
		{[]string{"--accounts", "1234:us,:uk"}, `bad --accounts entry ":uk"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
	} {
		err := lpsimMain(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("lpsim %v = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

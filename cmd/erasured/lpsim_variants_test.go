package main

import (
	"io"
	"strings"
	"testing"

	"github.com/erasured/erasured/liveperson/lpsim"
)

// TestLPSimDeleteJSONFlag: --delete-json overrides the reading --variants-seed chose for
// delete_json and leaves every other reading as the seed chose it; a value that is no reading
// is refused.
func TestLPSimDeleteJSONFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want lpsim.Variants
	}{
		{nil, lpsim.Variants{}},
		{[]string{"--variants-seed", "5"}, lpsim.VariantsFromSeed(5)},
		{[]string{"--delete-json", "create-only"}, lpsim.Variants{DeleteJSON: lpsim.DeleteJSONCreateOnly}},
		{[]string{"--variants-seed", "5", "--delete-json", "create-only"}, func() lpsim.Variants {
			v := lpsim.VariantsFromSeed(5)
			v.DeleteJSON = lpsim.DeleteJSONCreateOnly
			return v
		}()},
		{[]string{"--variants-seed", "5", "--delete-json", "echo"}, func() lpsim.Variants {
			v := lpsim.VariantsFromSeed(5)
			v.DeleteJSON = lpsim.DeleteJSONEcho
			return v
		}()},
	} {
		opts, err := lpsimOptions(tc.args, io.Discard)
		if err != nil || opts.Variants != tc.want {
			t.Errorf("lpsim %v: variants %s, %v; want %s", tc.args, opts.Variants, err, tc.want)
		}
	}
	if _, err := lpsimOptions([]string{"--delete-json", "sometimes"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--delete-json must be echo or create-only") {
		t.Errorf("lpsim --delete-json sometimes = %v, want it refused", err)
	}
}

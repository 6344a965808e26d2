package store

import (
	"bytes"
	"math"
	"testing"
)

func TestU64SortsLikeNumbers(t *testing.T) {
	nums := []uint64{0, 1, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64}
	for i := 1; i < len(nums); i++ {
		if got := bytes.Compare(U64(nums[i-1]), U64(nums[i])); got != -1 {
			t.Errorf("bytes.Compare(U64(%d), U64(%d)) = %d, want -1", nums[i-1], nums[i], got)
		}
	}
}

func TestParseU64(t *testing.T) {
	for _, tc := range []struct {
		in      []byte
		want    uint64
		wantErr bool
	}{
		{U64(0), 0, false},
		{U64(math.MaxUint64), math.MaxUint64, false},
		{[]byte{1, 2, 3}, 0, true},
		{nil, 0, true},
		{make([]byte, 9), 0, true},
	} {
		got, err := ParseU64(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseU64(%x) = %d, %v; want %d, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCompactedErrorMessage(t *testing.T) {
	err := error(&CompactedError{Requested: 3, Oldest: 15})
	if got, want := err.Error(), "store: revision 3 is compacted, oldest available is 15"; got != want {
		t.Errorf("CompactedError{3, 15}.Error() = %q, want %q", got, want)
	}
}

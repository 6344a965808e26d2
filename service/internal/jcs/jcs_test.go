package jcs

import (
	"math"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The examples of RFC 8785: its sample of every kind of value (section 3.2.2), its sorting
// example (section 3.2.3) and the numbers of its appendix B, given as IEEE 754 bit patterns.

func TestTransformRFCExamples(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "values (3.2.2)",
			in: `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			name: "sorting by UTF-16 code units (3.2.3)",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\"," +
				"\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			name: "nested, whitespace dropped",
			in:   " { \"b\" : [ { \"d\" : 1 , \"c\" : { } } , [ ] ] , \"a\" : \"\" } ",
			want: `{"a":"","b":[{"c":{},"d":1},[]]}`,
		},
		{
			name: "control characters, slash and non-ASCII",
			in:   `["\u0000\u0001\b\f\n\r\t\u001f\u007f", "a/b", "\u2028\u2029", "é\u00e9"]`,
			want: "[\"\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\u007f\",\"a/b\",\"\u2028\u2029\",\"éé\"]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Transform([]byte(tt.in))
			if err != nil {
				t.Fatalf("Transform = %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Transform =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

var appendixB = []struct {
	bits uint64
	want string // empty: no JSON form
}{
	{0x0000000000000000, "0"},
	{0x8000000000000000, "0"},
	{0x0000000000000001, "5e-324"},
	{0x8000000000000001, "-5e-324"},
	{0x7fefffffffffffff, "1.7976931348623157e+308"},
	{0xffefffffffffffff, "-1.7976931348623157e+308"},
	{0x4340000000000000, "9007199254740992"},
	{0xc340000000000000, "-9007199254740992"},
	{0x4430000000000000, "295147905179352830000"},
	{0x7fffffffffffffff, ""},
	{0x7ff0000000000000, ""},
	{0x44b52d02c7e14af5, "9.999999999999997e+22"},
	{0x44b52d02c7e14af6, "1e+23"},
	{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
	{0x444b1ae4d6e2ef4e, "999999999999999700000"},
	{0x444b1ae4d6e2ef4f, "999999999999999900000"},
	{0x444b1ae4d6e2ef50, "1e+21"},
	{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
	{0x3eb0c6f7a0b5ed8d, "0.000001"},
	{0x41b3de4355555553, "333333333.3333332"},
	{0x41b3de4355555554, "333333333.33333325"},
	{0x41b3de4355555555, "333333333.3333333"},
	{0x41b3de4355555556, "333333333.3333334"},
	{0x41b3de4355555557, "333333333.33333343"},
	{0xbecbf647612f3696, "-0.0000033333333333333333"},
	{0x43143ff3c1cb0959, "1424953923781206.2"},
}

func TestNumberAppendixB(t *testing.T) {
	for _, tt := range appendixB {
		f := math.Float64frombits(tt.bits)
		got, err := Number(f)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Number(%#016x) = %q, want an error", tt.bits, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Number(%#016x) = %q, %v; want %q", tt.bits, got, err, tt.want)
		}
		// The same number read from JSON text comes out the same.
		if tt.bits&(1<<63) == 0 || f != 0 {
			if out, err := Transform([]byte(strconv.FormatFloat(f, 'g', -1, 64))); err != nil || string(out) != tt.want {
				t.Errorf("Transform(%v) = %s, %v; want %s", f, out, err, tt.want)
			}
		}
	}
}

// TestNumberMatchesECMAScript compares Number with JavaScript's own on random doubles, where a
// node is on the machine.
func TestNumberMatchesECMAScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on this machine: ECMAScript's number form is checked by the RFC's examples alone")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var hexes []string
	var want []string
	for len(hexes) < 2000 {
		bits := r.Uint64()
		if len(hexes)%4 == 0 { // also numbers of everyday sizes
			bits = math.Float64bits((r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(40)-20)))
		}
		f := math.Float64frombits(bits)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		hexes = append(hexes, strconv.FormatUint(bits, 16))
		s, err := Number(f)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, s)
	}
	script := `const hs = require("fs").readFileSync(0, "utf8").trim().split("\n");
const b = Buffer.alloc(8);
for (const h of hs) { b.writeBigUInt64BE(BigInt("0x" + h)); console.log(JSON.stringify(b.readDoubleBE(0))); }`
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = strings.NewReader(strings.Join(hexes, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(want) {
		t.Fatalf("node printed %d numbers, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("Number(%s) = %s, JavaScript writes %s", hexes[i], want[i], got[i])
		}
	}
}

func TestTransformRefuses(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`, // a member named twice
		`[1e400]`,       // no double
		"[\"\xff\"]",    // not UTF-8
		`{"a":1} {}`,    // data after the value
		`{"a":}`,        // not JSON
		``,
	} {
		if got, err := Transform([]byte(in)); err == nil {
			t.Errorf("Transform(%q) = %s, want an error", in, got)
		}
	}
}

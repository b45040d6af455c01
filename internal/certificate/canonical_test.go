package certificate_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/certificate"
)

// TestCanonicalNumbersRFC8785 runs the IEEE 754 table of RFC 8785
// Appendix B: each double, written in the shortest form Go knows, must come
// out as ECMAScript prints it.
func TestCanonicalNumbersRFC8785(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bits uint64
		want string
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
	} {
		f := math.Float64frombits(tc.bits)
		in := strconv.FormatFloat(f, 'e', -1, 64)
		if f == 0 && math.Signbit(f) {
			in = "-0"
		}
		got, err := certificate.Canonicalize([]byte(in))
		if err != nil || string(got) != tc.want {
			t.Errorf("%016x (%s): got %s, %v; want %s", tc.bits, in, got, err, tc.want)
		}
	}
	// The examples of the brief, written as people write them.
	for in, want := range map[string]string{
		"1e30": "1e+30", "4.50": "4.5", "2e-3": "0.002", "0.000001": "0.000001", "1e-7": "1e-7",
		"333333333.33333329": "333333333.3333333", "-0": "0", "-0.0": "0", "100": "100", "1E+2": "100",
		"0.1": "0.1", "123e-20": "1.23e-18", "-1.5e300": "-1.5e+300", "12345678901234567890": "12345678901234567000",
	} {
		got, err := certificate.Canonicalize([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"1e309", "-1e400", "NaN", "Infinity", "01", "+1", ".5"} {
		if got, err := certificate.Canonicalize([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %s", bad, got)
		}
	}
}

func TestCanonicalStrings(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`"\u0000\u001f\u007f"`:          `"\u0000\u001f` + "\x7f" + `"`,
		`"\b\f\n\r\t\/"`:                `"\b\f\n\r\t/"`,
		`"\u00e9\u20AC"`:                "\"é€\"",
		`"\ud83d\ude00"`:                "\"\U0001F600\"",
		`"\ufffd"`:                      "\"\ufffd\"",
		`{"a\\":1,"a":2}`:               `{"a":2,"a\\":1}`,
		`{"\ud83d\ude00":1,"\uffff":2}`: "{\"\U0001F600\":1,\"\uffff\":2}", // UTF-16 order, not code point order
	} {
		got, err := certificate.Canonicalize([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{
		`"\ud800"`, `"\udc00"`, `"\ud83d x"`, `"\ud83d\u0041"`, `["\ude00\ud83d"]`, `{"\ud800":1}`,
		`{"a":1,"\u0061":2}`, "\"\xc3\x28\"", "\"\xed\xa0\x80\"",
	} {
		if got, err := certificate.Canonicalize([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %s", bad, got)
		}
	}
	// A backslash before a quote does not end the string.
	if got, err := certificate.Canonicalize([]byte(`["\\", "\"\ud800"]`)); err == nil || strings.Contains(string(got), "\ufffd") {
		t.Errorf("a lone surrogate after an escaped quote was accepted: %s", got)
	}
}

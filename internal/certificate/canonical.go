package certificate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// a JSON document: object members sorted by their UTF-16 code units, no
// insignificant white space, strings and numbers serialised as ECMAScript
// does. Duplicate member names, invalid UTF-8 and escaped lone surrogates
// (not I-JSON, RFC 7493 §2.1) are refused.
func Canonicalize(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("canonical json: invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	if err := canonValue(dec, &out); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("canonical json: data after the top-level value")
	}
	// encoding/json turns "\ud800" into U+FFFD without a word; two
	// different inputs must not canonicalise to one output.
	if err := checkSurrogates(b); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return out.Bytes(), nil
}

// checkSurrogates refuses a \u escape of a UTF-16 surrogate that is not
// half of a pair. b is known to be valid JSON.
func checkSurrogates(b []byte) error {
	inString := false
	for i := 0; i < len(b); i++ {
		if b[i] == '"' {
			inString = !inString
			continue
		}
		if !inString || b[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if b[i] != 'u' {
			continue
		}
		r := escapedUnit(b, i+1)
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r < 0xdc00 && i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
			if lo := escapedUnit(b, i+3); lo >= 0xdc00 && lo <= 0xdfff {
				i += 6
				continue
			}
		}
		return fmt.Errorf("lone surrogate \\u%04x in a string", r)
	}
	return nil
}

// escapedUnit reads the four hex digits of a \u escape at b[i:].
func escapedUnit(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	v, err := strconv.ParseUint(string(b[i:i+4]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(v)
}

func canonValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return canonObject(dec, out)
		}
		return canonArray(dec, out)
	case string:
		writeString(out, v)
	case json.Number:
		s, err := formatNumber(v)
		if err != nil {
			return err
		}
		out.WriteString(s)
	case bool:
		out.WriteString(strconv.FormatBool(v))
	case nil:
		out.WriteString("null")
	}
	return nil
}

func canonObject(dec *json.Decoder, out *bytes.Buffer) error {
	type member struct {
		key   string
		utf16 []uint16
		value []byte
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("duplicate member %q", key)
		}
		seen[key] = true
		var v bytes.Buffer
		if err := canonValue(dec, &v); err != nil {
			return err
		}
		members = append(members, member{key, utf16.Encode([]rune(key)), v.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return err
	}
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.utf16, b.utf16) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		writeString(out, m.key)
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

func canonArray(dec *json.Decoder, out *bytes.Buffer) error {
	out.WriteByte('[')
	for i := 0; dec.More(); i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		if err := canonValue(dec, out); err != nil {
			return err
		}
	}
	out.WriteByte(']')
	_, err := dec.Token() // ']'
	return err
}

// writeString escapes as ECMAScript's JSON.stringify: only '"', '\\' and
// control characters, the common ones by their short escapes.
func writeString(out *bytes.Buffer, s string) {
	out.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\b':
			out.WriteString(`\b`)
		case '\f':
			out.WriteString(`\f`)
		case '\n':
			out.WriteString(`\n`)
		case '\r':
			out.WriteString(`\r`)
		case '\t':
			out.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(out, `\u%04x`, r)
			} else {
				out.WriteRune(r)
			}
		}
	}
	out.WriteByte('"')
}

// formatNumber serialises a number as ECMAScript's Number.prototype.toString
// (ECMA-262 §7.1.12.1), which RFC 8785 §3.2.2.3 prescribes.
func formatNumber(n json.Number) (string, error) {
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return "", fmt.Errorf("number %s is not an IEEE 754 double", n)
	}
	if v == 0 {
		return "0", nil // also -0
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	// Shortest digits that round-trip: d.ddddde±x
	e := strconv.FormatFloat(v, 'e', -1, 64)
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	k, p := len(digits), exp+1 // value = 0.digits × 10^p
	switch {
	case k <= p && p <= 21:
		return sign + digits + strings.Repeat("0", p-k), nil
	case 0 < p && p <= 21:
		return sign + digits[:p] + "." + digits[p:], nil
	case -6 < p && p <= 0:
		return sign + "0." + strings.Repeat("0", -p) + digits, nil
	}
	expSign := "+"
	if p-1 < 0 {
		expSign = "-"
	}
	m := digits[:1]
	if k > 1 {
		m += "." + digits[1:]
	}
	return sign + m + "e" + expSign + strconv.Itoa(abs(p-1)), nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

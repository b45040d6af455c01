package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// TestDecodeRefusesLooseJSON is the attack of a body that a strict proxy
// and a lenient reader would read differently: each is refused with 400
// and the field at fault named.
func TestDecodeRefusesLooseJSON(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
	}{
		{"duplicate key, last would win", `{"subject":{"email":"a@example.com","email":"bob@example.com"},"jurisdiction":"gdpr"}`, "subject.email"},
		{"duplicate top-level key", `{"subject":{"email":"a@example.com"},"jurisdiction":"ccpa","jurisdiction":"gdpr"}`, "jurisdiction"},
		{"duplicate user_ids system", `{"subject":{"user_ids":{"shop":"1","shop":"2"}},"jurisdiction":"gdpr"}`, "subject.user_ids.shop"},
		{"key in another case", `{"subject":{"Email":"bob@example.com"},"jurisdiction":"gdpr"}`, "subject.Email"},
		{"top-level key in another case", `{"Subject":{"email":"bob@example.com"},"jurisdiction":"gdpr"}`, "Subject"},
		{"unknown key", `{"subject":{"emial":"bob@example.com"},"jurisdiction":"gdpr"}`, "subject.emial"},
		{"invalid UTF-8", "{\"subject\":{\"email\":\"b\xffob@example.com\"},\"jurisdiction\":\"gdpr\"}", ""},
		{"invalid UTF-8 in a key", "{\"subject\":{\"em\xc3ail\":\"bob@example.com\"},\"jurisdiction\":\"gdpr\"}", ""},
		{"lone surrogate escape", `{"subject":{"email":"\ud800bob@example.com"},"jurisdiction":"gdpr"}`, "subject.email"},
		{"two objects", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr"} {}`, ""},
		{"email not a string", `{"subject":{"email":42},"jurisdiction":"gdpr"}`, "subject.email"},
		{"not an object", `["a"]`, ""},
		{"empty", ` `, ""},
		{"truncated", `{"subject":`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body createRequestBody
			err := decodeBytes([]byte(tc.body), &body)
			var e *erasure.Error
			if !errors.As(err, &e) || e.Code != erasure.EInvalid || e.Field != tc.field || e.Message == "" {
				t.Fatalf("decode = %v (%+v), want invalid naming %q", err, e, tc.field)
			}
		})
	}

	var body createRequestBody
	if err := decodeBytes([]byte(`{"subject":{"email":"bob@example.com","user_ids":{"shop":"7"}},"jurisdiction":"gdpr"}`), &body); err != nil ||
		body.Subject == nil || body.Subject.Email != "bob@example.com" || body.Subject.UserIDs["shop"] != "7" || body.Jurisdiction != "gdpr" {
		t.Errorf("a well-formed body = %+v, %v", body, err)
	}
}

// TestContentType: JSON must say it is JSON, and UTF-8 if it names a
// charset; a body labelled UTF-16 is not read as UTF-8.
func TestContentType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"application/json; charset=UTF-8":   true,
		"application/merge-patch+json":      true,
		"":                                  false,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"application/json; charset=utf-16":  false,
		"application/json; charset=latin1":  false,
		"application/json; boundary=x":      false,
		"application/json; charset":         false,
	} {
		r := httptest.NewRequest("POST", "/v1/requests", strings.NewReader(`{"reason":"x"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		var body reasonBody
		err := decode(httptest.NewRecorder(), r, &body)
		if got := err == nil; got != ok {
			t.Errorf("Content-Type %q: accepted = %v (%v), want %v", ct, got, err, ok)
		}
		if !ok && erasure.ErrorCode(err) != "unsupported_media_type" {
			t.Errorf("Content-Type %q: code %q, want unsupported_media_type", ct, erasure.ErrorCode(err))
		}
	}
}

// TestDecodeTooLarge: a body over the limit is refused from its
// Content-Length before a byte is read, and when streamed, at the limit.
func TestDecodeTooLarge(t *testing.T) {
	big := `{"reason":"` + strings.Repeat("x", maxBody) + `"}`
	counter := &countingReader{r: strings.NewReader(big)}
	r := httptest.NewRequest("POST", "/x", counter)
	r.ContentLength = int64(len(big))
	r.Header.Set("Content-Type", "application/json")
	var body reasonBody
	if err := decode(httptest.NewRecorder(), r, &body); erasure.ErrorCode(err) != erasure.ETooLarge {
		t.Errorf("declared oversize body = %v, want too_large", err)
	}
	if n := counter.n; n != 0 {
		t.Errorf("read %d bytes of a body whose Content-Length is over the limit", n)
	}
	r = httptest.NewRequest("POST", "/x", io.MultiReader(strings.NewReader(big)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	if err := decode(httptest.NewRecorder(), r, &body); erasure.ErrorCode(err) != erasure.ETooLarge {
		t.Errorf("streamed oversize body = %v, want too_large", err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzDecode: whatever the strict decoder accepts is valid UTF-8, holds no
// duplicate name, and is read to the very same value by the standard
// library's lenient decoder, so a proxy and Lethe never disagree on it.
// Nothing panics.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr"}`,
		`{"subject":{"email":"a@example.com","email":"bob@example.com"},"jurisdiction":"gdpr"}`,
		`{"subject":{"Email":"bob@example.com"},"jurisdiction":"gdpr"}`,
		`{"subject":{"user_ids":{"shop":"1","Shop":"2"}},"jurisdiction":"gdpr"}`,
		`{"subject":{"phone":"+447700900123"},"jurisdiction":"ccpa"}`,
		"{\"subject\":{\"email\":\"\xff\"}}",
		`{"subject":{"email":"\ud83d\ude00@example.com"}}`,
		`{"subject":null,"jurisdiction":""}`,
		`[]`, `{}`, `null`, `{"subject":`, `{"a":1} {}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var strict createRequestBody
		if err := decodeBytes(b, &strict); err != nil {
			if erasure.ErrorCode(err) != erasure.EInvalid {
				t.Fatalf("refused with %q, want invalid: %v", erasure.ErrorCode(err), err)
			}
			return
		}
		if !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8 %q", b)
		}
		if name, dup := duplicateName(b); dup {
			t.Fatalf("accepted %q with the name %q twice", b, name)
		}
		var lenient createRequestBody
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&lenient); err != nil {
			t.Fatalf("strict accepted %q, the standard decoder refused it: %v", b, err)
		}
		if !reflect.DeepEqual(strict, lenient) {
			t.Fatalf("%q read as %+v by Lethe, as %+v by the standard decoder", b, strict, lenient)
		}
	})
}

// duplicateName walks b with the standard tokenizer, an implementation
// independent of the one under test, and reports a name seen twice in an
// object.
func duplicateName(b []byte) (string, bool) {
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next token is a name (or the object's end)
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if n := len(stack); n > 0 && stack[n-1].key {
			if name, ok := tok.(string); ok {
				if stack[n-1].names[name] {
					return name, true
				}
				stack[n-1].names[name], stack[n-1].key = true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].key = true // a value ended: a name comes next
		}
	}
}

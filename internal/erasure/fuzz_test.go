package erasure_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/erasure"
	"golang.org/x/text/unicode/norm"
)

// FuzzNormalize: Normalize never panics, refuses only with an invalid
// error naming a subject field, and what it accepts is canonical: valid
// UTF-8, NFKC, lower-case, and normalising it again changes nothing (so
// the same person always gets the same stored form and keyed hash).
func FuzzNormalize(f *testing.F) {
	for _, s := range [][4]string{
		{"Alice@Example.COM", "", "", ""},
		{"ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ", "＋４４ ７７００ ９００１２３", "", ""},
		{"José@Bücher.de", "0044 7700 900123", "shop", " 42 "},
		{"\ufb01ona@example.com", "+1 (555) 010-9999", "crm", "003XX"},
		{"a\n@example.com", "call me", "../etc", "\x00"},
		{"İstanbul@example.com", "", "shop", "ｉｄ"},
		{"b\xffob@example.com", "+44\xff", "", ""},
		{"", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, email, phone, system, id string) {
		in := erasure.Subject{Email: email, Phone: phone}
		if system != "" {
			in.UserIDs = map[string]string{system: id}
		}
		out, err := in.Normalize()
		if err != nil {
			if erasure.ErrorCode(err) != erasure.EInvalid || !strings.HasPrefix(erasure.ErrorField(err), "subject") {
				t.Fatalf("refused with %q field %q: %v", erasure.ErrorCode(err), erasure.ErrorField(err), err)
			}
			return
		}
		if out.Email != "" {
			if !utf8.ValidString(out.Email) || !norm.NFKC.IsNormalString(out.Email) || strings.ToLower(out.Email) != out.Email {
				t.Fatalf("email %q normalised to %q: not canonical", email, out.Email)
			}
		}
		if out.Phone != "" && strings.Trim(out.Phone, "+0123456789") != "" {
			t.Fatalf("phone %q normalised to %q", phone, out.Phone)
		}
		again, err := out.Normalize()
		if err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("normalising %+v again = %+v, %v", out, again, err)
		}
	})
}

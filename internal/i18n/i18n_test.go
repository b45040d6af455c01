package i18n_test

import (
	"regexp"
	"testing"

	"github.com/lethe-dev/lethe/internal/i18n"
)

var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

// TestEveryLanguageIsComplete: a language file has every message of
// en.json, with the same placeholders.
func TestEveryLanguageIsComplete(t *testing.T) {
	c, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	en := c.Get("en")
	if len(c.Codes()) < 2 {
		t.Fatalf("languages: %v", c.Codes())
	}
	for _, b := range c.All() {
		for key, msg := range en.Messages {
			got, ok := b.Messages[key]
			if !ok {
				t.Errorf("%s lacks %s", b.Code, key)
				continue
			}
			want := map[string]bool{}
			for _, p := range placeholder.FindAllString(msg, -1) {
				want[p] = true
			}
			for _, p := range placeholder.FindAllString(got, -1) {
				if !want[p] {
					t.Errorf("%s %s has placeholder %s that en.json does not", b.Code, key, p)
				}
				delete(want, p)
			}
			for p := range want {
				t.Errorf("%s %s lacks placeholder %s", b.Code, key, p)
			}
		}
		for key := range b.Messages {
			if _, ok := en.Messages[key]; !ok {
				t.Errorf("%s has %s, which en.json does not", b.Code, key)
			}
		}
	}
}

func TestChooseAndTranslate(t *testing.T) {
	c, _ := i18n.Load()
	for _, tc := range []struct{ query, accept, want string }{
		{"he", "en", "he"},
		{"", "he-IL,he;q=0.9,en;q=0.5", "he"},
		{"", "fr-FR,fr;q=0.9", "en"},
		{"xx", "", "en"},
		{"", "", "en"},
	} {
		if got := c.Choose(tc.query, tc.accept).Code; got != tc.want {
			t.Errorf("Choose(%q, %q) = %s, want %s", tc.query, tc.accept, got, tc.want)
		}
	}
	he := c.Get("he")
	if he.Dir != "rtl" || c.Get("en").Dir != "ltr" {
		t.Error("writing directions")
	}
	if got := c.Get("en").T("verify.error.wrong", "left", "2"); got != "That code is not right. Tries left: 2." {
		t.Errorf("T = %q", got)
	}
	if got := he.T("no.such.key"); got != "no.such.key" {
		t.Errorf("a missing key = %q", got)
	}
}

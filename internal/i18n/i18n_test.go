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

// TestHebrewOneFormOfAddressAndMaqaf: the Hebrew texts address the person
// in one form throughout, the plural (אתם), never switching to the
// singular; and a one-letter prefix before a Latin name or a placeholder
// that holds one ({org}) is joined by a maqaf (מ־Lethe), not written onto it.
func TestHebrewOneFormOfAddressAndMaqaf(t *testing.T) {
	c, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	he := c.Get("he")
	if he.Code != "he" {
		t.Fatal("no Hebrew")
	}
	const letter = `\x{05D0}-\x{05EA}`
	// Second person singular: the possessive and prepositional suffixes,
	// pronouns and past-tense verbs the texts use.
	singular := regexp.MustCompile(`(^|[^` + letter + `])(שלך|עליך|אליך|לך|אותך|ממך|לעצמך|בקשתך|לבקשתך|בבקשתך|באפשרותך|ברצונך|את או אתה|ביקשת|שלחת|ששלחת|מסרת|שמסרת)([^` + letter + `]|$)`)
	plural := regexp.MustCompile(`(^|[^` + letter + `])(שלכם|עליכם|אליכם|לכם|אתכם|לעצמכם|ספרו|הזינו|שמרו|התעלמו|שלחו|בדקו)([^` + letter + `]|$)`)
	glued := regexp.MustCompile(`(^|[^` + letter + `])[מבלוהשכ](\{org\}|[A-Za-z])`)
	plurals := 0
	for key, msg := range he.Messages {
		if m := singular.FindString(msg); m != "" {
			t.Errorf("he %s addresses the person in the singular (%q): %s", key, m, msg)
		}
		if plural.MatchString(msg) {
			plurals++
		}
		if m := glued.FindString(msg); m != "" {
			t.Errorf("he %s writes a prefix onto a Latin name without a maqaf (%q): %s", key, m, msg)
		}
	}
	if plurals < 10 {
		t.Errorf("only %d Hebrew messages address the person in the plural: the check reads nothing", plurals)
	}
}

// Package i18n holds the words people read: the portal, the status page and
// the emails, one JSON file per language in locales/. Adding a language is
// adding one file: its code, name, writing direction and every message of
// en.json (a test checks none is missing).
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"golang.org/x/text/language"
)

//go:embed locales/*.json
var files embed.FS

// Bundle is one language.
type Bundle struct {
	Code     string            `json:"code"`
	Name     string            `json:"name"`
	Dir      string            `json:"dir"` // ltr or rtl
	Messages map[string]string `json:"messages"`
	fallback *Bundle
}

// Catalog is every language, English the fallback.
type Catalog struct {
	bundles map[string]*Bundle
	codes   []string
	matcher language.Matcher
}

// Load reads the embedded languages.
func Load() (*Catalog, error) {
	entries, err := files.ReadDir("locales")
	if err != nil {
		return nil, err
	}
	c := &Catalog{bundles: map[string]*Bundle{}}
	for _, e := range entries {
		b, err := files.ReadFile(path.Join("locales", e.Name()))
		if err != nil {
			return nil, err
		}
		var bundle Bundle
		if err := json.Unmarshal(b, &bundle); err != nil {
			return nil, fmt.Errorf("i18n: %s: %w", e.Name(), err)
		}
		if bundle.Code+".json" != e.Name() || (bundle.Dir != "ltr" && bundle.Dir != "rtl") {
			return nil, fmt.Errorf("i18n: %s: code must match the file name and dir be ltr or rtl", e.Name())
		}
		c.bundles[bundle.Code] = &bundle
		c.codes = append(c.codes, bundle.Code)
	}
	en, ok := c.bundles["en"]
	if !ok {
		return nil, fmt.Errorf("i18n: en.json is required")
	}
	sort.Strings(c.codes)
	tags := []language.Tag{language.English}
	for _, code := range c.codes {
		if code != "en" {
			c.bundles[code].fallback = en
			tags = append(tags, language.Make(code))
		}
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

// Codes lists the languages, sorted.
func (c *Catalog) Codes() []string { return c.codes }

// Get returns a language by code, or English.
func (c *Catalog) Get(code string) *Bundle {
	if b, ok := c.bundles[code]; ok {
		return b
	}
	return c.bundles["en"]
}

// Choose picks the language asked for by code (a ?lang= choice), else the
// best match for an Accept-Language header, else English.
func (c *Catalog) Choose(code, acceptLanguage string) *Bundle {
	if b, ok := c.bundles[code]; ok {
		return b
	}
	tags, _, _ := language.ParseAcceptLanguage(acceptLanguage)
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No || i == 0 {
		return c.bundles["en"]
	}
	codes := []string{"en"}
	for _, code := range c.codes {
		if code != "en" {
			codes = append(codes, code)
		}
	}
	return c.bundles[codes[i]]
}

// All returns every language, for a language switcher.
func (c *Catalog) All() []*Bundle {
	out := make([]*Bundle, 0, len(c.codes))
	for _, code := range c.codes {
		out = append(out, c.bundles[code])
	}
	return out
}

// T returns the message key with {name} placeholders filled from pairs of
// name, value. A message missing in the language falls back to English.
func (b *Bundle) T(key string, kv ...string) string {
	m, ok := b.Messages[key]
	if !ok && b.fallback != nil {
		m, ok = b.fallback.Messages[key]
	}
	if !ok {
		return key
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m = strings.ReplaceAll(m, "{"+kv[i]+"}", kv[i+1])
	}
	return m
}

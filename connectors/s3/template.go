package s3

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// placeholders are the identifiers a template may name.
var placeholders = []string{"email", "phone", "user_id"}

// template is one configured key or prefix: literal text and placeholders.
type template struct {
	text   string // as configured; the only form that goes into evidence and errors
	prefix bool   // a prefix: every object whose key starts with it
	parts  []part
}

// part is either literal text or a placeholder name.
type part struct{ lit, placeholder string }

// kind names the template's sort in evidence.
func (t *template) kind() string {
	if t.prefix {
		return "prefix"
	}
	return "key"
}

func parseTemplate(text string, prefix bool) (template, error) {
	t := template{text: text, prefix: prefix}
	switch {
	case text == "":
		return t, errors.New("empty template")
	case strings.HasPrefix(text, "/"):
		return t, fmt.Errorf("%q starts with \"/\"; S3 keys are written without a leading slash", text)
	case strings.ContainsFunc(text, unicode.IsControl):
		return t, fmt.Errorf("%q contains a control character", text)
	case !prefix && strings.HasSuffix(text, "/"):
		return t, fmt.Errorf("%q ends with \"/\"; list it under prefixes to erase everything under it", text)
	}
	for seg := range strings.SplitSeq(text, "/") {
		if seg == "." || seg == ".." {
			return t, fmt.Errorf("%q has a %q segment; write the key as stored", text, seg)
		}
	}
	rest := text
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if rest[i] == '}' {
			return t, fmt.Errorf(`%q: stray "}"; braces are reserved for placeholders`, text)
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf(`%q: unclosed "{"`, text)
		}
		name := rest[i+1 : i+j]
		if !slices.Contains(placeholders, name) {
			return t, fmt.Errorf("%q: unknown placeholder {%s}; use {email}, {phone} or {user_id}", text, name)
		}
		if n := len(t.parts); n > 0 && t.parts[n-1].placeholder != "" {
			return t, fmt.Errorf("%q: placeholders {%s} and {%s} touch; put a fixed separator between them", text, t.parts[n-1].placeholder, name)
		}
		t.parts = append(t.parts, part{placeholder: name})
		rest = rest[i+j+1:]
	}
	holders := 0
	for i, p := range t.parts {
		if p.placeholder == "" {
			continue
		}
		holders++
		// Identifiers never contain "/", so a "/" after each placeholder
		// ends it: subject "ann@x.io" cannot reach "ann@x.io.uk/…".
		if prefix && (i+1 == len(t.parts) || !strings.Contains(t.parts[i+1].lit, "/")) {
			return t, fmt.Errorf("%q: a prefix needs a \"/\" right after {%s} (as in uploads/{%s}/), or it would also match other subjects whose %s starts the same way", text, p.placeholder, p.placeholder, p.placeholder)
		}
	}
	if holders == 0 {
		return t, fmt.Errorf("%q has no placeholder ({email}, {phone} or {user_id}); it would delete the same objects for every subject", text)
	}
	return t, nil
}

// expand returns the key or prefix for the subject's values, or the first
// placeholder the subject has no value for.
func (t *template) expand(values map[string]string) (key, missing string, err error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.placeholder == "" {
			b.WriteString(p.lit)
			continue
		}
		v := values[p.placeholder]
		if v == "" {
			return "", p.placeholder, nil
		}
		if err := checkValue(p.placeholder, v); err != nil {
			return "", "", err
		}
		b.WriteString(v)
	}
	if b.Len() > maxKeyLen {
		return "", "", fmt.Errorf("the key for this subject is longer than S3's %d bytes", maxKeyLen)
	}
	return b.String(), "", nil
}

// maxKeyLen is S3's limit on a key, in bytes.
const maxKeyLen = 1024

// checkValue refuses identifier values that could make a key or prefix
// reach other people's objects. The message names the kind of identifier,
// never its value.
func checkValue(kind, v string) error {
	switch {
	case v == "." || strings.Contains(v, ".."):
		return fmt.Errorf("the subject's %s contains \"..\" or is \".\"", kind)
	case strings.ContainsAny(v, `/\`):
		return fmt.Errorf("the subject's %s contains a path separator", kind)
	case strings.ContainsFunc(v, unicode.IsControl):
		return fmt.Errorf("the subject's %s contains a control character", kind)
	}
	return nil
}

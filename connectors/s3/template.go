package s3

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
)

// template is one configured key or prefix: literal text and placeholders.
type template struct {
	text   string // as configured; the only form that goes into evidence and errors
	prefix bool   // a prefix: every object whose key starts with it
	parts  []idtemplate.Part
}

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
	parts, err := idtemplate.Parse(text)
	if err != nil {
		return t, fmt.Errorf("%q: %w", text, err)
	}
	for i := 1; i < len(parts); i++ {
		if a, b := parts[i-1].Placeholder, parts[i].Placeholder; a != "" && b != "" {
			return t, fmt.Errorf("%q: placeholders {%s} and {%s} touch; put a fixed separator between them", text, a, b)
		}
	}
	t.parts = parts
	holders := 0
	for i, p := range t.parts {
		if p.Placeholder == "" {
			continue
		}
		holders++
		// Identifiers never contain "/", so a "/" after each placeholder
		// ends it: subject "ann@x.io" cannot reach "ann@x.io.uk/…".
		if prefix && (i+1 == len(t.parts) || !strings.Contains(t.parts[i+1].Lit, "/")) {
			return t, fmt.Errorf("%q: a prefix needs a \"/\" right after {%s} (as in uploads/{%s}/), or it would also match other subjects whose %s starts the same way", text, p.Placeholder, p.Placeholder, p.Placeholder)
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
		if p.Placeholder == "" {
			b.WriteString(p.Lit)
			continue
		}
		v := values[p.Placeholder]
		if v == "" {
			return "", p.Placeholder, nil
		}
		if err := checkValue(p.Placeholder, v); err != nil {
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

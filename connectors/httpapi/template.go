package httpapi

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
)

// A template is a string with placeholders in braces: "{email}",
// "{user_ids.app}", "{secrets.project_token}", "{id}", "{ids}", "{job}".
// Literal braces are written "{{" and "}}".
type template struct {
	parts []part
}

// part is literal text, or a placeholder when name is set.
type part struct {
	text, name string
}

var placeholderRe = regexp.MustCompile(`^(email|phone|id|ids|job|next|user_ids\.[a-z0-9_-]+|secrets\.[a-z0-9_]+)$`)

// parseTemplate reads s; an unknown placeholder or an unclosed brace is
// an error naming it.
func parseTemplate(s string) (template, error) {
	var t template
	var text strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"):
			text.WriteByte('{')
			i++
		case strings.HasPrefix(s[i:], "}}"):
			text.WriteByte('}')
			i++
		case s[i] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return t, fmt.Errorf("%q has a '{' that is not closed (write {{ for a literal brace)", s)
			}
			name := s[i+1 : i+end]
			if !placeholderRe.MatchString(name) {
				return t, fmt.Errorf("{%s} is not a placeholder: use {email}, {phone}, {user_ids.<name>}, {secrets.<name>}, {id}, {ids}, {job} or {next}", name)
			}
			if text.Len() > 0 {
				t.parts = append(t.parts, part{text: text.String()})
				text.Reset()
			}
			t.parts = append(t.parts, part{name: name})
			i += end
		case s[i] == '}':
			return t, fmt.Errorf("%q has a '}' that opens nothing (write }} for a literal brace)", s)
		default:
			text.WriteByte(s[i])
		}
	}
	if text.Len() > 0 {
		t.parts = append(t.parts, part{text: text.String()})
	}
	return t, nil
}

// names lists the placeholders of t.
func (t template) names() []string {
	var out []string
	for _, p := range t.parts {
		if p.name != "" {
			out = append(out, p.name)
		}
	}
	return out
}

// whole reports the placeholder t is made of alone ("{ids}"), or "".
func (t template) whole() string {
	if len(t.parts) == 1 {
		return t.parts[0].name
	}
	return ""
}

// render fills t in from v, each value passed through escape.
func (t template) render(v values, escape func(string) string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.text)
			continue
		}
		s, err := v.one(p.name)
		if err != nil {
			return "", err
		}
		b.WriteString(escape(s))
	}
	return b.String(), nil
}

// values are what placeholders are filled in from for one request. They
// hold personal data: never log them or quote them in an error.
type values struct {
	subject connectors.Subject
	secrets map[string]string
	id      string
	ids     []string
	job     string
	next    string
}

// one is the value of placeholder name; {ids} joins with commas.
func (v values) one(name string) (string, error) {
	switch {
	case name == "id":
		return v.id, nil
	case name == "ids":
		return strings.Join(v.ids, ","), nil
	case name == "job":
		return v.job, nil
	case name == "next":
		return v.next, nil
	case strings.HasPrefix(name, "secrets."):
		return v.secrets[strings.TrimPrefix(name, "secrets.")], nil
	}
	s := v.subject.Get(connectors.Kind(name))
	if s == "" {
		// The plan makes the runtime wait for a missing identifier, so
		// this is a description that uses one its plan does not require.
		return "", connectors.Permanentf("the subject has no %s, which the description's request needs", name)
	}
	return s, nil
}

// kindOf is the identifier kind a placeholder names, or "" for the others.
func kindOf(name string) connectors.Kind {
	if name == "email" || name == "phone" || strings.HasPrefix(name, "user_ids.") {
		return connectors.Kind(name)
	}
	return ""
}

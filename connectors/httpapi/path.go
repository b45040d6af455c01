package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A path picks values out of a JSON answer: keys joined by dots, "[n]"
// for the n-th element of a list and "[*]" for every element, with an
// optional leading "$". "results[*].id" picks the id of every result;
// "" or "$" is the answer itself. Keys with other characters than
// letters, digits, '_', '-' and '$' are written ["key"].
type path struct {
	src   string
	steps []step
}

// step is a key, an index, or (all) every element.
type step struct {
	key   string
	index int
	all   bool
	isKey bool
}

var keyRe = regexp.MustCompile(`^[A-Za-z0-9_$-]+`)

func parsePath(s string) (path, error) {
	p := path{src: s}
	rest := strings.TrimPrefix(strings.TrimSpace(s), "$")
	for first := true; rest != ""; first = false {
		switch {
		case strings.HasPrefix(rest, "["):
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return p, fmt.Errorf("%q: '[' is not closed", s)
			}
			in := rest[1:end]
			switch n, err := strconv.Atoi(in); {
			case in == "*":
				p.steps = append(p.steps, step{all: true})
			case err == nil && n >= 0:
				p.steps = append(p.steps, step{index: n})
			case len(in) >= 2 && in[0] == '"' && in[len(in)-1] == '"':
				p.steps = append(p.steps, step{key: in[1 : len(in)-1], isKey: true})
			default:
				return p, fmt.Errorf("%q: [%s] is not [n], [*] or [\"key\"]", s, in)
			}
			rest = rest[end+1:]
		case strings.HasPrefix(rest, "."), first:
			rest = strings.TrimPrefix(rest, ".")
			k := keyRe.FindString(rest)
			if k == "" {
				return p, fmt.Errorf("%q: expected a key after %q", s, strings.TrimSuffix(s, rest))
			}
			p.steps = append(p.steps, step{key: k, isKey: true})
			rest = rest[len(k):]
		default:
			return p, fmt.Errorf("%q: expected '.' or '[' before %q", s, rest)
		}
	}
	return p, nil
}

// hasWildcard reports whether p can pick several values.
func (p path) hasWildcard() bool {
	for _, st := range p.steps {
		if st.all {
			return true
		}
	}
	return false
}

// pick returns the values p finds in v; a missing key or index finds
// nothing.
func (p path) pick(v any) []any {
	cur := []any{v}
	for _, st := range p.steps {
		var next []any
		for _, c := range cur {
			switch {
			case st.isKey:
				if m, ok := c.(map[string]any); ok {
					if x, ok := m[st.key]; ok {
						next = append(next, x)
					}
				}
			case st.all:
				if l, ok := c.([]any); ok {
					next = append(next, l...)
				}
			default:
				if l, ok := c.([]any); ok && st.index < len(l) {
					next = append(next, l[st.index])
				}
			}
		}
		cur = next
	}
	return cur
}

// text is the first value p finds as text: a string, or a number as
// written; "" when there is none (null, an object, a list, false).
func (p path) text(v any) string {
	for _, x := range p.pick(v) {
		if s := scalar(x); s != "" {
			return s
		}
	}
	return ""
}

// scalar is a string or number as text, true as "true", else "".
func scalar(x any) string {
	switch x := x.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
	}
	return ""
}

// decode reads a JSON answer, numbers kept as written.
func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

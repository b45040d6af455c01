package filesystem

import (
	"context"
	"os"
	"regexp"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
)

// Scan implements connectors.Scanner: every path a template matches with
// its placeholders as wildcards yields the identifiers written in its name.
func (c *connector) Scan(ctx context.Context, fn func(connectors.Subject) error) error {
	root, err := os.OpenRoot(c.root)
	if err != nil {
		return c.rootError(err)
	}
	defer root.Close()
	for i := range c.templates {
		t := &c.templates[i]
		globs := make([]string, len(t.segs))
		res := make([]*regexp.Regexp, len(t.segs))
		names := make([][]string, len(t.segs))
		for j, parts := range t.segs {
			globs[j], res[j], names[j] = scanPattern(parts)
		}
		paths, err := match(root, globs, t.dirOnly)
		if err != nil {
			return classify(t, err)
		}
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			values, ok := extract(p, res, names)
			if !ok {
				continue
			}
			s := connectors.Subject{Email: values["email"], Phone: values["phone"]}
			if v := values["user_id"]; v != "" {
				s.UserIDs = map[string]string{c.system: v}
			}
			if err := fn(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanPattern turns a template segment into a glob with each placeholder
// as "*", and a regular expression that captures the placeholders' values
// from a matching name, with their names in order.
func scanPattern(parts []idtemplate.Part) (string, *regexp.Regexp, []string) {
	var glob, re strings.Builder
	var holders []string
	re.WriteString("^")
	for _, p := range parts {
		if p.Placeholder != "" {
			glob.WriteString("*")
			re.WriteString("(.+)")
			holders = append(holders, p.Placeholder)
			continue
		}
		glob.WriteString(p.Lit)
		re.WriteString(globToRegexp(p.Lit))
	}
	re.WriteString("$")
	return glob.String(), regexp.MustCompile(re.String()), holders
}

// globToRegexp translates path.Match syntax (validated at start-up).
func globToRegexp(g string) string {
	var b strings.Builder
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := strings.IndexByte(g[i:], ']')
			class := g[i+1 : i+j]
			if strings.HasPrefix(class, "^") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += j
		case '\\':
			if i+1 < len(g) {
				i++
				b.WriteString(regexp.QuoteMeta(string(g[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// extract reads placeholder values out of a matched path; a placeholder
// that appears twice must have the same value both times.
func extract(p string, res []*regexp.Regexp, names [][]string) (map[string]string, bool) {
	segs := strings.Split(p, "/")
	if len(segs) != len(res) {
		return nil, false
	}
	values := map[string]string{}
	for i, seg := range segs {
		m := res[i].FindStringSubmatch(seg)
		if m == nil {
			return nil, false
		}
		for j, name := range names[i] {
			if prev, ok := values[name]; ok && prev != m[j+1] {
				return nil, false
			}
			values[name] = m[j+1]
		}
	}
	return values, true
}

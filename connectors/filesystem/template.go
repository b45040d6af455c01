package filesystem

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"

	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
)

// template is one configured path: segments of glob text and placeholders.
type template struct {
	text    string // as configured; the only form that goes into evidence and errors
	segs    [][]idtemplate.Part
	dirOnly bool // a trailing "/" matches directories (and links) only
}

func parseTemplate(text string) (template, error) {
	t := template{text: text}
	if text == "" {
		return t, errors.New("empty path")
	}
	if strings.HasPrefix(text, "/") || filepath.IsAbs(text) {
		return t, fmt.Errorf("%q must be relative to root", text)
	}
	trimmed, dirOnly := strings.CutSuffix(text, "/")
	t.dirOnly = dirOnly
	holders := 0
	for seg := range strings.SplitSeq(trimmed, "/") {
		switch seg {
		case "", ".":
			return t, fmt.Errorf("%q has an empty or \".\" segment; write a clean relative path", text)
		case "..":
			return t, fmt.Errorf("%q has a \"..\" segment; paths must stay under root", text)
		}
		parts, err := parseSegment(seg)
		if err != nil {
			return t, fmt.Errorf("%q: %w", text, err)
		}
		sample := map[string]string{"email": "x", "phone": "x", "user_id": "x"}
		if _, err := path.Match(expandSegment(parts, sample), ""); err != nil {
			return t, fmt.Errorf("%q: invalid glob: %w", text, err)
		}
		for _, p := range parts {
			if p.Placeholder != "" {
				holders++
			}
		}
		t.segs = append(t.segs, parts)
	}
	if holders == 0 {
		return t, fmt.Errorf("%q has no placeholder ({email}, {phone} or {user_id}); it would delete the same files for every subject", text)
	}
	return t, nil
}

func parseSegment(seg string) ([]idtemplate.Part, error) {
	parts, err := idtemplate.Parse(seg)
	if err != nil {
		return nil, err
	}
	// A wildcard touching a placeholder would let subject "1" match the
	// files of subject "12"; a backslash before it would undo our escaping.
	for i, p := range parts {
		if p.Placeholder == "" {
			continue
		}
		var before, after string
		if i > 0 {
			before = parts[i-1].Lit
		}
		if i+1 < len(parts) {
			after = parts[i+1].Lit
		}
		if before != "" && strings.ContainsAny(before[len(before)-1:], `*?[]\`) ||
			after != "" && strings.ContainsAny(after[:1], `*?[]`) {
			return nil, fmt.Errorf("a wildcard right next to {%s} would also match other subjects' files; put a fixed separator between them", p.Placeholder)
		}
	}
	return parts, nil
}

// expand returns the template's glob segments with the subject's values
// escaped, or the first placeholder the subject has no value for.
func (t *template) expand(values map[string]string) (segs []string, missing string, err error) {
	for _, parts := range t.segs {
		for _, p := range parts {
			if p.Placeholder == "" {
				continue
			}
			v := values[p.Placeholder]
			if v == "" {
				return nil, p.Placeholder, nil
			}
			if err := checkComponent(p.Placeholder, v); err != nil {
				return nil, "", err
			}
		}
		segs = append(segs, expandSegment(parts, values))
	}
	return segs, "", nil
}

func expandSegment(parts []idtemplate.Part, values map[string]string) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Placeholder == "" {
			b.WriteString(p.Lit)
			continue
		}
		for _, r := range values[p.Placeholder] {
			if strings.ContainsRune(`*?[]^-\`, r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkComponent refuses identifier values that could not safely be part of
// one file name. The message names the kind of identifier, never its value.
func checkComponent(kind, v string) error {
	switch {
	case len(v) > 255:
		return fmt.Errorf("the subject's %s is longer than 255 bytes and cannot be part of a file name", kind)
	case v == "." || v == "..":
		return fmt.Errorf("the subject's %s is a relative path element", kind)
	case strings.ContainsAny(v, "/\\\x00"):
		return fmt.Errorf("the subject's %s contains a path separator or NUL", kind)
	case strings.ContainsFunc(v, unicode.IsControl):
		return fmt.Errorf("the subject's %s contains a control character", kind)
	}
	return nil
}

// literal returns the name a glob segment stands for when it has no
// unescaped wildcard, so it can be looked up without listing the directory.
func literal(pattern string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?', '[':
			return "", false
		case '\\':
			if i++; i < len(pattern) {
				b.WriteByte(pattern[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// match returns the paths under root that segs matches. Directories on the
// way may be links that stay inside root (os.Root refuses the others); the
// last component is never followed.
func match(root *os.Root, segs []string, dirOnly bool) ([]string, error) {
	cur := []string{"."}
	for i, seg := range segs {
		last := i == len(segs)-1
		var next []string
		for _, dir := range cur {
			names, err := candidates(root, dir, seg)
			if err != nil {
				return nil, err
			}
			for _, name := range names {
				p := path.Join(dir, name)
				stat := root.Stat
				if last {
					stat = root.Lstat
				}
				fi, err := stat(p)
				switch {
				case absent(err):
				case err != nil:
					return nil, err
				case !last && fi.IsDir(),
					last && (!dirOnly || fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0):
					next = append(next, p)
				}
			}
		}
		cur = next
	}
	return cur, nil
}

func candidates(root *os.Root, dir, seg string) ([]string, error) {
	if name, ok := literal(seg); ok {
		return []string{name}, nil
	}
	entries, err := fs.ReadDir(root.FS(), dir)
	if absent(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if ok, _ := path.Match(seg, e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// absent reports an error that means "no such entry": nothing to erase.
// A name too long for the file system cannot exist either.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG)
}

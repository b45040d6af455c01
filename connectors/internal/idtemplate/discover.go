package idtemplate

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
)

var (
	emailInName = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	phoneInName = regexp.MustCompile(`\+?[0-9]{8,15}`)
	digits      = regexp.MustCompile(`[0-9]+`)
)

// Shape is a path or key with the identifier in it replaced by its
// placeholder, cut after the segment holding it ("uploads/{email}/" for
// every file under a person's folder), with other numbers as "*"
// ("invoices/*/{email}-*.pdf"); ok is false when no segment holds an
// email- or phone-shaped identifier. The identifier itself is not kept.
func Shape(p string) (shape string, ok bool) {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		ext := ""
		if i == len(segs)-1 { // a file: its extension is not part of a domain
			if j := strings.LastIndexByte(seg, '.'); j > 0 && len(seg)-j <= 6 {
				seg, ext = seg[:j], seg[j:]
			}
		}
		holder := ""
		var loc []int
		if loc = emailInName.FindStringIndex(seg); loc != nil {
			holder = "{email}"
		} else if loc = phoneInName.FindStringIndex(seg); loc != nil {
			holder = "{phone}"
		} else {
			continue
		}
		out := make([]string, 0, i+1)
		for _, before := range segs[:i] {
			out = append(out, digits.ReplaceAllString(before, "*"))
		}
		out = append(out, digits.ReplaceAllString(seg[:loc[0]], "*")+holder+digits.ReplaceAllString(seg[loc[1]:], "*")+ext)
		s := strings.Join(out, "/")
		if i < len(segs)-1 {
			s += "/"
		}
		return s, true
	}
	return "", false
}

// Findings groups paths (or keys) by their Shape: one finding per shape,
// covered when covered(path) holds for every path of that shape, ignored
// when an ignore entry's place is the shape or a folder above it, else
// uncovered. sampled is how many paths were read in all.
func Findings(paths []string, covered func(string) bool, ignore []connectors.Ignore) []connectors.Finding {
	type group struct{ n, covered int64 }
	groups := map[string]*group{}
	var order []string
	for _, p := range paths {
		s, ok := Shape(p)
		if !ok {
			continue
		}
		g := groups[s]
		if g == nil {
			g = &group{}
			groups[s] = g
			order = append(order, s)
		}
		g.n++
		if covered(p) {
			g.covered++
		}
	}
	out := make([]connectors.Finding, 0, len(order))
	for _, s := range order {
		g := groups[s]
		f := connectors.Finding{Place: s, Kind: connectors.DataIdentifierPath, Sampled: g.n, Matched: g.n}
		switch ig, ok := ignoreFor(ignore, s); {
		case ok:
			f.Status, f.Reason = connectors.Ignored, "ignored: "+ig.Reason
		case g.covered == g.n:
			f.Status, f.Reason = connectors.Covered, "a path template names them"
		case g.covered == 0:
			f.Status, f.Reason = connectors.Uncovered, "no path template names them"
		default:
			f.Status, f.Reason = connectors.Uncovered, fmt.Sprintf("no path template names %d of them", g.n-g.covered)
		}
		out = append(out, f)
	}
	return out
}

// ignoreFor finds the entry whose place is shape, or a folder above it.
func ignoreFor(list []connectors.Ignore, shape string) (connectors.Ignore, bool) {
	for _, ig := range list {
		p := strings.TrimSuffix(strings.TrimSpace(ig.Place), "/")
		if p != "" && (strings.TrimSuffix(shape, "/") == p || strings.HasPrefix(shape, p+"/")) {
			return ig, true
		}
	}
	return connectors.Ignore{}, false
}

// Looks reports whether v, read from a path where placeholder kind
// stands, looks like that kind of identifier ({user_id}: anything).
func Looks(kind, v string) bool {
	switch kind {
	case "email":
		return emailInName.FindString(v) == v
	case "phone":
		return phoneInName.FindString(v) == v
	}
	return v != ""
}

package fakevendor

import "strings"

// MergeYAML returns the YAML mapping base with top-level keys set: each
// item of set is one or more top-level entries ("poll_interval: 90m", or a
// block such as "profiles:\n  space_id: spa_1"), each replacing the entry
// of that key in base, or added at the end. An entry with no value
// ("profiles:") removes the key, leaving the connector's default.
//
//	fakevendor.MergeYAML("token: a\npoll_interval: 2ms\n", "poll_interval: 90m", "user_id_system: app")
//	// token: a
//	// poll_interval: 90m
//	// user_id_system: app
//
// Fakes use it for ConfigWith; it understands only the plain block YAML
// they write (top-level keys at column 0, nested lines indented).
func MergeYAML(base string, set ...string) string {
	entries := yamlEntries(base)
	for _, item := range set {
		for _, e := range yamlEntries(item) {
			i := indexEntry(entries, e.key)
			switch {
			case e.empty() && i >= 0:
				entries = append(entries[:i], entries[i+1:]...)
			case e.empty():
			case i >= 0:
				entries[i] = e
			default:
				entries = append(entries, e)
			}
		}
	}
	var b strings.Builder
	for _, e := range entries {
		for _, l := range e.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// yamlEntry is a top-level key with its lines (the first one names it).
type yamlEntry struct {
	key   string
	lines []string
}

// empty reports whether the entry has no value: "key:" alone.
func (e yamlEntry) empty() bool {
	_, v, _ := strings.Cut(e.lines[0], ":")
	return strings.TrimSpace(v) == "" && len(e.lines) == 1
}

func yamlEntries(s string) []yamlEntry {
	var entries []yamlEntry
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		top := l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "#")
		if key, _, ok := strings.Cut(l, ":"); top && ok {
			entries = append(entries, yamlEntry{key: strings.TrimSpace(key), lines: []string{l}})
			continue
		}
		if len(entries) == 0 {
			if strings.TrimSpace(l) != "" {
				entries = append(entries, yamlEntry{lines: []string{l}})
			}
			continue
		}
		last := &entries[len(entries)-1]
		last.lines = append(last.lines, l)
	}
	return entries
}

func indexEntry(entries []yamlEntry, key string) int {
	for i, e := range entries {
		if e.key != "" && e.key == key {
			return i
		}
	}
	return -1
}

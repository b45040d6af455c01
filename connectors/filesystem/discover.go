package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
)

// maxDiscoverPaths bounds how many files discovery reads.
const maxDiscoverPaths = 100_000

// Discover implements connectors.Discoverer: it walks the root and
// reports, grouped by shape ("uploads/{email}/"), the files whose path
// holds an email- or phone-shaped identifier, each covered when a path
// template names it. Identifiers are read from the names and never kept.
func (c *connector) Discover(ctx context.Context, progress func(connectors.DiscoveryProgress)) (connectors.Coverage, error) {
	var out connectors.Coverage
	root, err := os.OpenRoot(c.root)
	if err != nil {
		return out, c.rootError(err)
	}
	defer root.Close()
	var paths []string
	errFull := errors.New("full")
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if len(paths) == maxDiscoverPaths {
			return errFull
		}
		paths = append(paths, p)
		if progress != nil && len(paths)%10_000 == 0 {
			progress(connectors.DiscoveryProgress{Done: len(paths), Unit: "files"})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path may name a person
		}
		return out, fmt.Errorf("discover: walking the root: %w", err)
	}
	out.Places = int64(len(paths))
	out.Findings = idtemplate.Findings(paths, c.names, c.ignore)
	if errors.Is(err, errFull) {
		return out, errors.New("discovery read the first 100000 files only: the rest was not checked")
	}
	return out, nil
}

// names reports whether a path template names the file at p (directly,
// or as a file under a directory it names).
func (c *connector) names(p string) bool {
	segs := strings.Split(p, "/")
	for i := range c.templates {
		t := &c.templates[i]
		n := len(t.segs)
		if n > len(segs) || (!t.dirOnly && n != len(segs)) || (t.dirOnly && n == len(segs)) {
			continue
		}
		res := make([]*regexp.Regexp, n)
		holders := make([][]string, n)
		for j, parts := range t.segs {
			_, res[j], holders[j] = scanPattern(parts)
		}
		values, ok := extract(strings.Join(segs[:n], "/"), res, holders)
		if ok && all(values, idtemplate.Looks) {
			return true
		}
	}
	return false
}

// all reports whether every placeholder's value looks like its kind: a
// file named by a phone number is not one that {email} names.
func all(values map[string]string, looks func(kind, v string) bool) bool {
	for k, v := range values {
		if !looks(k, v) {
			return false
		}
	}
	return true
}

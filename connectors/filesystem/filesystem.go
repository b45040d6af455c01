// Package filesystem is the connector that deletes a data subject's files
// and directories under one local directory, found by path templates such
// as uploads/{email}/. Nothing outside that directory can be touched.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/internal/idtemplate"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

func init() {
	connectors.Register("filesystem", "Files and directories named after the subject under a local directory",
		connectors.Limits{Concurrency: 4}, build, connectors.Discovers())
}

// Config is the filesystem connector's configuration:
//
//	root: /var/lib/shop/files
//	user_id_system: shop
//	paths:
//	  - exports/{email}.csv
//	  - uploads/{email}/
//	  - avatars/{user_id}.*
type Config struct {
	// Root is the directory everything is confined to; it must exist.
	Root string `yaml:"root"`
	// UserIDSystem is the subject.user_ids key {user_id} stands for;
	// default the connector instance's name.
	UserIDSystem string `yaml:"user_id_system"`
	// Paths are templates relative to Root with {email}, {phone} and
	// {user_id} placeholders and glob wildcards; a trailing "/" names a
	// directory, removed with everything in it.
	Paths []string `yaml:"paths"`
	// Ignore lists folders or path shapes (as `lethe discover` prints
	// them: "legal/holds/{email}.pdf") holding files named after people
	// that are left alone on purpose, each with its reason.
	Ignore []connectors.Ignore `yaml:"ignore"`
}

// Validate checks the config at start-up. It reads the config alone: the
// root is checked when the connector is built, on the host that runs it
// (API processes read the instance's plan without having the directory).
func (c *Config) Validate() error {
	if c.Root == "" {
		return errors.New("root: required (the directory the files live under)")
	}
	if len(c.Paths) == 0 {
		return errors.New("paths: at least one path template is required")
	}
	for i, p := range c.Paths {
		if _, err := parseTemplate(p); err != nil {
			return fmt.Errorf("paths[%d]: %w", i, err)
		}
	}
	return connectors.ValidateIgnores(c.Ignore)
}

// Plan: every kind of identifier the path templates name is needed, each
// its own requirement ({user_id} is user_ids.<user_id_system>): with one
// missing, the files named by it could not be found.
func (c Config) Plan(name string) connectors.Plan {
	var parts []idtemplate.Part
	for _, text := range c.Paths {
		t, err := parseTemplate(text)
		if err != nil {
			continue // Validate has refused it
		}
		parts = append(parts, slices.Concat(t.segs...)...)
	}
	return connectors.Plan{Keys: idtemplate.Keys(parts, vendorkit.System(c.UserIDSystem, name))}
}

type connector struct {
	root      string
	system    string
	templates []template
	ignore    []connectors.Ignore
}

func build(_ context.Context, name string, cfg Config, _ connectors.Deps) (connectors.Connector, error) {
	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root: %s is not a directory", cfg.Root)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	c := &connector{root: root, system: vendorkit.System(cfg.UserIDSystem, name), ignore: cfg.Ignore}
	for _, p := range cfg.Paths {
		t, err := parseTemplate(p)
		if err != nil { // Validate has run; kept for callers that skip it
			return nil, err
		}
		c.templates = append(c.templates, t)
	}
	return c, nil
}

// Erase removes every file, link and directory the templates name for s.
// Records counts files and links; directories themselves are not counted.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	root, exps, err := c.prepare(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	defer root.Close()
	var total int64
	evidence := make([]connectors.Evidence, 0, len(exps))
	for _, e := range exps {
		if e.missing != "" {
			evidence = append(evidence, c.skipped(e))
			continue
		}
		paths, err := match(root, e.segs, e.t.dirOnly)
		if err != nil {
			return connectors.Outcome{}, classify(e.t, err)
		}
		var n tally
		for _, p := range paths {
			if err := remove(ctx, root, p, &n); err != nil {
				return connectors.Outcome{}, classify(e.t, err)
			}
		}
		total += n.files + n.links
		evidence = append(evidence, connectors.Evidence{Kind: "path", Value: e.t.text + ": " + n.String()})
	}
	return connectors.Erased(total, evidence...), nil
}

// Verify counts what the templates still match for s: files and links, and
// an empty directory as one (its name is the subject's).
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	root, exps, err := c.prepare(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	defer root.Close()
	var v connectors.Verification
	for _, e := range exps {
		if e.missing != "" {
			v.Evidence = append(v.Evidence, c.skipped(e))
			continue
		}
		if err := ctx.Err(); err != nil {
			return connectors.Verification{}, err
		}
		paths, err := match(root, e.segs, e.t.dirOnly)
		if err != nil {
			return connectors.Verification{}, classify(e.t, err)
		}
		var n int64
		for _, p := range paths {
			k, err := count(root, p)
			if err != nil {
				return connectors.Verification{}, classify(e.t, err)
			}
			n += k
		}
		v.Remaining += n
		v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "path", Value: fmt.Sprintf("%s: %d remaining", e.t.text, n)})
	}
	return v, nil
}

// expansion is one template expanded for one subject.
type expansion struct {
	t       *template
	segs    []string // glob segments, the subject's values escaped
	missing string   // placeholder the subject has no value for: skip
}

// prepare expands every template for s, then opens the root. Identifiers
// are all checked before anything is touched, so a refused subject never
// leaves a partial erasure. The root is opened per call so that a volume
// remounted since start-up is seen, not the directory that was under it.
func (c *connector) prepare(ctx context.Context, s connectors.Subject) (*os.Root, []expansion, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	values := idtemplate.Values(s, c.system)
	exps := make([]expansion, len(c.templates))
	for i := range c.templates {
		t := &c.templates[i]
		segs, missing, err := t.expand(values)
		if err != nil {
			return nil, nil, connectors.Permanent(fmt.Errorf("%s: %w", t.text, err))
		}
		exps[i] = expansion{t: t, segs: segs, missing: missing}
	}
	if !slices.ContainsFunc(exps, func(e expansion) bool { return e.missing == "" }) {
		// The plan makes the runtime wait for every identifier the
		// templates name; a search that did not happen is never "not
		// found" or "clean".
		return nil, nil, connectors.Permanentf("the subject has none of the identifiers the path templates name: nothing could be searched (check the instance's keys)")
	}
	root, err := os.OpenRoot(c.root)
	if err != nil {
		return nil, nil, c.rootError(err)
	}
	return root, exps, nil
}

func (c *connector) rootError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		// Most likely an unmounted volume: worth retrying, and the task
		// goes to a person once its attempts run out.
		return connectors.Retryable(fmt.Errorf("root is missing (is the volume mounted?): %w", err), 0)
	}
	if fi, serr := os.Stat(c.root); serr == nil && !fi.IsDir() || errors.Is(err, fs.ErrPermission) {
		return connectors.Permanent(fmt.Errorf("root is not a directory Lethe may open; check the config and permissions: %w", err))
	}
	return connectors.Retryable(fmt.Errorf("open root: %w", err), 0)
}

func (c *connector) skipped(e expansion) connectors.Evidence {
	return idtemplate.Skipped("path", e.t.text, e.missing, c.system)
}

// tally counts what one template removed.
type tally struct{ files, links int64 }

func (n tally) String() string {
	s := connectors.Plural(n.files, "file")
	if n.links > 0 {
		s += ", " + connectors.Plural(n.links, "symlink") + " (removed as links; targets left alone)"
	}
	return s
}

// remove deletes name under parent: a file or link, or a directory with
// everything in it. Links are removed, never followed. ctx is checked
// before each removal; a retry picks up where a cancelled call stopped.
func remove(ctx context.Context, parent *os.Root, name string, n *tally) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := parent.Lstat(name)
	if absent(err) {
		return nil // removed by a concurrent erase
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if err := removeChildren(ctx, parent, name, fi, n); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := parent.Remove(name); err != nil {
		if absent(err) {
			return nil
		}
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		n.links++
	case !fi.IsDir():
		n.files++
	}
	return nil
}

func removeChildren(ctx context.Context, parent *os.Root, name string, fi fs.FileInfo, n *tally) error {
	dir, err := parent.OpenRoot(name)
	if err != nil {
		return err
	}
	defer dir.Close()
	// os.Root follows links inside the root: make sure the directory we
	// opened is the one Lstat saw, not a link swapped in since.
	got, err := dir.Stat(".")
	if err != nil {
		return err
	}
	if !os.SameFile(fi, got) {
		return errors.New("a directory was replaced while it was being erased")
	}
	entries, err := fs.ReadDir(dir.FS(), ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := remove(ctx, dir, e.Name(), n); err != nil {
			return err
		}
	}
	return nil
}

// count returns how many files and links p holds (1 for a file or link,
// at least 1 for a directory).
func count(root *os.Root, p string) (int64, error) {
	fi, err := root.Lstat(p)
	if absent(err) {
		return 0, nil
	}
	if err != nil || !fi.IsDir() {
		return 1, err
	}
	var n int64
	err = fs.WalkDir(root.FS(), p, func(_ string, d fs.DirEntry, err error) error {
		switch {
		case absent(err):
			return nil
		case err != nil:
			return err
		case !d.IsDir():
			n++
		}
		return nil
	})
	return max(n, 1), err
}

// classify turns an error met while working on template t into one the
// runtime can act on. Paths are dropped: they hold the subject's identifiers.
func classify(t *template, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: interrupted: %w", t.text, err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case err.Error() == "path escapes from parent": // os.Root's error; not exported
		return connectors.Permanentf("%s: a path escapes the root through a symbolic link; fix the link or the template", t.text)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return connectors.Permanent(fmt.Errorf("%s: %w; check that Lethe may list and delete files there", t.text, err))
	}
	return connectors.Retryable(fmt.Errorf("%s: %w", t.text, err), 0)
}

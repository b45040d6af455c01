package filesystem_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	_ "github.com/lethe-dev/lethe/connectors/filesystem"
)

// instance is the connector instance name, and so the default user_id system.
const instance = "shop-files"

var shopPaths = []string{"exports/{email}.csv", "uploads/{email}/", "avatars/{user_id}.*"}

func configYAML(root string, paths ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "root: %q\npaths:\n", root)
	for _, p := range paths {
		fmt.Fprintf(&b, "  - %q\n", p)
	}
	return b.String()
}

func newConnector(t testing.TB, root string, paths ...string) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "filesystem", instance, configYAML(root, paths...))
}

func subject(i int) connectors.Subject {
	return connectors.Subject{
		Email:   fmt.Sprintf("subject%d@example.com", i),
		UserIDs: map[string]string{instance: fmt.Sprintf("u%d", i)},
	}
}

func userID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{instance: id}}
}

// write creates root/rel (and its parents) holding some bytes.
func write(t testing.TB, root, rel string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("personal data"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// files counts the non-directory entries at p, without following links.
func files(t testing.TB, p string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// seed stores what the shop keeps about s: an export, an upload directory
// with two files (one nested) and an avatar.
func seed(t testing.TB, root string, s connectors.Subject) int64 {
	write(t, root, "exports/"+s.Email+".csv")
	write(t, root, "uploads/"+s.Email+"/invoice.pdf")
	write(t, root, "uploads/"+s.Email+"/photos/me.jpg")
	write(t, root, "avatars/"+s.UserIDs[instance]+".png")
	return 4
}

func remaining(t testing.TB, root string, s connectors.Subject) int64 {
	return files(t, filepath.Join(root, "exports", s.Email+".csv")) +
		files(t, filepath.Join(root, "uploads", s.Email)) +
		files(t, filepath.Join(root, "avatars", s.UserIDs[instance]+".png"))
}

// noTrash is why a plain directory tree has no recoverable state.
const noTrash = "a plain directory tree has no trash: Lethe unlinks files, never moves them; desktop trash folders (~/.local/share/Trash, .Trash-<uid>) are outside the root and volume snapshots are backups, not a state of the tree"

func TestConformance(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	connectortest.Run(t, connectortest.Harness{
		NoRecoverableState: noTrash,
		New:                func(t *testing.T) connectors.Connector { return newConnector(t, root, shopPaths...) },
		Seed:               func(t *testing.T, s connectors.Subject) int64 { return seed(t, root, s) },
		Count:              func(t *testing.T, s connectors.Subject) int64 { return remaining(t, root, s) },
		Subject:            subject,
		Hostile: []connectors.Subject{
			userID("../../etc"), userID(".."), userID("."), userID("a/b"), userID(`a\b`),
			userID("*"), userID("u60?"), userID("u60[01]"), userID("u6*"),
			userID("u600\x00"), userID("u600\n"), userID(strings.Repeat("u", 256)),
			{Email: "*@example.com"}, {Email: "subject60?@example.com"}, {Email: "subject60[0-9]@example.com"},
			{Email: "../uploads/subject600@example.com"}, {Email: "o'brien'--@example.com"},
		},
		Faulty: func(t *testing.T, f connectortest.Fault) connectors.Connector {
			root := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			c := newConnector(t, root, shopPaths...)
			switch f {
			case connectortest.FaultUnavailable: // the volume was unmounted
				if err := os.Remove(root); err != nil {
					t.Fatal(err)
				}
			case connectortest.FaultMisconfigured: // root is no longer a directory
				if err := os.Remove(root); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Dir(root), "root")
			default: // no credentials or rate limits; running as root defeats chmod
				return nil
			}
			return c
		},
	})
}

func erase(t *testing.T, c connectors.Connector, s connectors.Subject) connectors.Outcome {
	t.Helper()
	out, err := c.Erase(context.Background(), s)
	if err != nil {
		t.Fatalf("Erase: %v", err)
	}
	return out
}

// checkPermanent fails unless err is a permanent error free of s's identifiers
// that mentions want.
func checkPermanent(t *testing.T, err error, s connectors.Subject, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("Erase succeeded; want a permanent error")
	}
	if perm, _ := connectors.Classify(err); !perm {
		t.Errorf("error is retryable, want permanent: %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	for _, v := range s.Values() {
		if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(v)) {
			t.Errorf("error %q contains the subject's identifier", err)
		}
	}
}

// checkRefused erases s under root by template, wants a permanent error
// that mentions want, and the 2 files under kept left alone.
func checkRefused(t *testing.T, root, template string, s connectors.Subject, want, kept string) {
	t.Helper()
	_, err := newConnector(t, root, template).Erase(context.Background(), s)
	checkPermanent(t, err, s, want)
	if n := files(t, kept); n != 2 {
		t.Errorf("a refused erase removed files: %d of 2 left", n)
	}
}

func TestEvidenceNamesTemplatesNotPaths(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s := connectors.Subject{Email: "ann@example.com"} // no user id: the avatar template is skipped
	write(t, root, "exports/ann@example.com.csv")
	write(t, root, "uploads/ann@example.com/a.txt")
	write(t, root, "uploads/ann@example.com/b/c.txt")
	write(t, root, "avatars/ann@example.com.png")

	out := erase(t, newConnector(t, root, shopPaths...), s)

	if out.Status != connectors.StatusErased || out.Records != 3 {
		t.Errorf("Erase = %q with %d records, want erased with 3", out.Status, out.Records)
	}
	want := []connectors.Evidence{
		{Kind: "path", Value: "exports/{email}.csv: 1 file"},
		{Kind: "path", Value: "uploads/{email}/: 2 files"},
		{Kind: "path", Value: "avatars/{user_id}.*: skipped, the subject has no user_id for shop-files"},
	}
	if !slices.Equal(out.Evidence, want) {
		t.Errorf("evidence = %q\nwant       %q", out.Evidence, want)
	}
	if exists(filepath.Join(root, "uploads/ann@example.com")) {
		t.Error("the upload directory itself is still there")
	}
	if !exists(filepath.Join(root, "avatars/ann@example.com.png")) {
		t.Error("a skipped template removed a file")
	}
}

func TestUserIDSystemPicksTheID(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, root, "avatars/42.png")
	write(t, root, "avatars/7.png")
	c := connectortest.Build(t, "filesystem", instance, configYAML(root, "avatars/{user_id}.*")+"user_id_system: shop\n")

	out := erase(t, c, connectors.Subject{UserIDs: map[string]string{instance: "7", "shop": "42"}})

	if out.Records != 1 || exists(filepath.Join(root, "avatars/42.png")) || !exists(filepath.Join(root, "avatars/7.png")) {
		t.Errorf("Erase removed %d records; want only the id from user_ids.shop removed", out.Records)
	}
}

func TestTrailingSlashMatchesOnlyDirectories(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, root, "uploads/ann@example.com") // a file where the template expects a directory

	out := erase(t, newConnector(t, root, "uploads/{email}/"), connectors.Subject{Email: "ann@example.com"})

	if out.Status != connectors.StatusNotFound || !exists(filepath.Join(root, "uploads/ann@example.com")) {
		t.Errorf("Erase = %q; a template ending in / must not remove a file", out.Status)
	}
}

func TestSymlinksInsideTheSubjectsDirectoryAreNotFollowed(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	write(t, outside, "secret.txt")
	write(t, outside, "dir/other.txt")
	write(t, root, "uploads/ann@example.com/a.txt")
	symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(root, "uploads/ann@example.com/file-link"))
	symlink(t, filepath.Join(outside, "dir"), filepath.Join(root, "uploads/ann@example.com/sub/dir-link"))

	out := erase(t, newConnector(t, root, "uploads/{email}/"), connectors.Subject{Email: "ann@example.com"})

	if out.Records != 3 {
		t.Errorf("Erase reported %d records, want 3 (a file and two links)", out.Records)
	}
	if want := "uploads/{email}/: 1 file, 2 symlinks (removed as links; targets left alone)"; len(out.Evidence) != 1 || out.Evidence[0].Value != want {
		t.Errorf("evidence = %q, want %q", out.Evidence, want)
	}
	if exists(filepath.Join(root, "uploads/ann@example.com")) {
		t.Error("the subject's directory survived")
	}
	if files(t, outside) != 2 {
		t.Errorf("files outside root were removed: %d of 2 left", files(t, outside))
	}
}

func TestSymlinkNamedAfterTheSubjectIsRemovedAsALink(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	write(t, outside, "a.txt")
	write(t, outside, "b/c.txt")
	symlink(t, outside, filepath.Join(root, "uploads/ann@example.com"))
	symlink(t, filepath.Join(outside, "a.txt"), filepath.Join(root, "exports/ann@example.com.csv"))

	out := erase(t, newConnector(t, root, shopPaths...), connectors.Subject{Email: "ann@example.com"})

	if out.Status != connectors.StatusErased || out.Records != 2 {
		t.Errorf("Erase = %q with %d records, want erased with 2 links", out.Status, out.Records)
	}
	if exists(filepath.Join(root, "uploads/ann@example.com")) || exists(filepath.Join(root, "exports/ann@example.com.csv")) {
		t.Error("a link named after the subject survived")
	}
	if files(t, outside) != 2 {
		t.Errorf("a link's target was erased: %d of 2 files left outside root", files(t, outside))
	}
}

func TestDirectoryOnTheWayEscapingRootIsPermanent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, template, link string }{
		{"fixed directory", "exports/{email}.csv", "exports"},
		{"subject's directory", "users/{email}/profile.json", "users/ann@example.com"},
		{"wildcard directory", "*/{email}.csv", "exports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, outside := t.TempDir(), t.TempDir()
			write(t, outside, "ann@example.com.csv")
			write(t, outside, "profile.json")
			symlink(t, outside, filepath.Join(root, tc.link))

			checkRefused(t, root, tc.template, connectors.Subject{Email: "ann@example.com"}, "escapes the root", outside)
		})
	}
}

func TestSymlinkInsideRootOnTheWayIsFollowed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, root, "data/uploads/ann@example.com/a.txt")
	symlink(t, "data/uploads", filepath.Join(root, "uploads"))

	out := erase(t, newConnector(t, root, "uploads/{email}/"), connectors.Subject{Email: "ann@example.com"})

	if out.Records != 1 || exists(filepath.Join(root, "data/uploads/ann@example.com")) {
		t.Errorf("Erase = %d records; want the directory behind an in-root link removed", out.Records)
	}
}

func TestGlobMetacharactersInIdentifiersMatchLiterally(t *testing.T) {
	t.Parallel()
	names := []string{"ann@example.com", "bob@example.com", "a-c@example.com", "b@example.com",
		"*@example.com", "?ob@example.com", "[ab]@example.com", "^@example.com"}
	for _, email := range []string{"*@example.com", "?ob@example.com", "[ab]@example.com", "^@example.com"} {
		t.Run(email, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			for _, n := range names {
				write(t, root, "exports/"+n+".csv")
			}

			out := erase(t, newConnector(t, root, "exports/{email}.*"), connectors.Subject{Email: email})

			if out.Records != 1 || exists(filepath.Join(root, "exports", email+".csv")) {
				t.Errorf("Erase removed %d records; want exactly the file named after the literal value", out.Records)
			}
			if left := files(t, root); left != int64(len(names)-1) {
				t.Errorf("%d files left of %d: the value was taken as a pattern", left, len(names)-1)
			}
		})
	}
}

func TestUnsafeIdentifiersAreRefused(t *testing.T) {
	t.Parallel()
	for name, id := range map[string]string{
		"dot dot": "..", "dot": ".", "traversal": "../../etc", "slash": "a/b", "backslash": `a\b`,
		"NUL": "u1\x00", "newline": "u1\n", "too long": strings.Repeat("u", 256),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			write(t, root, "uploads/u1/a.txt")
			write(t, root, "etc/passwd")

			checkRefused(t, root, "uploads/{user_id}/", userID(id), "uploads/{user_id}/: the subject's user_id", root)
		})
	}
}

// The plan makes the runtime wait for every identifier the templates name.
// If the instance's keys were changed to need less, a template whose
// placeholder the subject lacks is skipped; a subject with none of them is
// refused: nothing was searched, which is never "not found" or "clean".
func TestTemplateMissingAnIdentifierIsSkipped(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, root, "phones/+447700900123.txt")
	write(t, root, "avatars/ann.png")
	c := newConnector(t, root, "phones/{phone}.txt", "avatars/{user_id}.png")

	none := connectors.Subject{Email: "ann@example.com", UserIDs: map[string]string{"other-system": "ann"}}
	_, err := c.Erase(context.Background(), none)
	checkPermanent(t, err, none, "nothing could be searched")
	if _, err := c.(connectors.Verifier).Verify(context.Background(), none); err == nil {
		t.Error("Verify of a subject nothing could be searched by succeeded; it must not call them clean")
	}
	if files(t, root) != 2 {
		t.Errorf("%d files left of 2", files(t, root))
	}

	out := erase(t, c, connectors.Subject{Phone: "+447700900123"})
	if out.Status != connectors.StatusErased || out.Records != 1 || files(t, root) != 1 {
		t.Errorf("Erase by phone alone = %q %d, %d files left; want the phone's file erased", out.Status, out.Records, files(t, root))
	}
	if len(out.Evidence) != 2 || !strings.Contains(out.Evidence[1].Value, "skipped") {
		t.Errorf("evidence %q does not record the user id template as skipped", out.Evidence)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	// The root need not exist where the plan is read (API processes).
	root := filepath.Join(t.TempDir(), "not-mounted-here")
	yaml := func(paths ...string) string { return configYAML(root, paths...) }
	// Each kind is its own requirement (a space, not "|"): all are needed.
	connectortest.RunPlanCases(t, "filesystem", connectortest.PlanCases{
		{Name: "the shop", Instance: instance, YAML: yaml(shopPaths...),
			Keys: "[email user_ids.shop-files]", Uses: "[email user_ids.shop-files]"},
		{Name: "user_id_system", Instance: instance, YAML: yaml("avatars/{user_id}.*") + "user_id_system: shop\n",
			Keys: "[user_ids.shop]", Uses: "[user_ids.shop]"},
		{Name: "phone", Instance: instance, YAML: yaml("calls/{phone}/"),
			Keys: "[phone]", Uses: "[phone]"},
		{Name: "two in one path", Instance: instance, YAML: yaml("{user_id}/{email}.json"),
			Keys: "[email user_ids.shop-files]", Uses: "[email user_ids.shop-files]"},
	})
}

func TestVerifyCountsWhatRemains(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, root, "exports/ann@example.com.csv")
	write(t, root, "uploads/ann@example.com/a/b.txt")
	write(t, root, "uploads/ann@example.com/c.txt")
	if err := os.MkdirAll(filepath.Join(root, "uploads/bob@example.com/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	v := newConnector(t, root, shopPaths...).(connectors.Verifier)

	for email, want := range map[string]int64{"ann@example.com": 3, "bob@example.com": 1, "cy@example.com": 0} {
		got, err := v.Verify(context.Background(), connectors.Subject{Email: email})
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if got.Remaining != want {
			t.Errorf("Verify(%s) = %d remaining, want %d", email, got.Remaining, want)
		}
	}
}

// countdown is a context that reports cancellation after n checks, to stop
// an erasure half-way.
type countdown struct {
	context.Context
	n atomic.Int32
}

func (c *countdown) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestCancelledHalfwayStopsAndRetryFinishes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 10 {
		write(t, root, fmt.Sprintf("uploads/ann@example.com/%d.txt", i))
	}
	s := connectors.Subject{Email: "ann@example.com"}
	c := newConnector(t, root, "uploads/{email}/")
	ctx := &countdown{Context: context.Background()}
	ctx.n.Store(5)

	_, err := c.Erase(ctx, s)

	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Erase with a context cancelled half-way = %v, want context.Canceled", err)
	}
	if perm, _ := connectors.Classify(err); perm {
		t.Errorf("cancellation classified permanent: %v", err)
	}
	left := files(t, filepath.Join(root, "uploads/ann@example.com"))
	if left == 0 || left == 10 {
		t.Fatalf("%d of 10 files left; want the erasure stopped part-way", left)
	}
	if out := erase(t, c, s); out.Records != left || exists(filepath.Join(root, "uploads/ann@example.com")) {
		t.Errorf("retry removed %d records, want the %d left and the directory", out.Records, left)
	}
}

func TestRootIsReopenedOnEveryCall(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "mnt")
	write(t, root, "exports/ann@example.com.csv")
	c := newConnector(t, root, shopPaths...)
	// The volume is unmounted and another mounted in its place.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	s := connectors.Subject{Email: "ann@example.com"}
	if _, err := c.Erase(context.Background(), s); err == nil {
		t.Fatal("Erase with the root missing succeeded")
	} else if perm, _ := connectors.Classify(err); perm {
		t.Errorf("missing root classified permanent: %v", err)
	}
	write(t, root, "exports/ann@example.com.csv")

	if out := erase(t, c, s); out.Records != 1 || exists(filepath.Join(root, "exports/ann@example.com.csv")) {
		t.Errorf("Erase after the root came back removed %d records, want 1", out.Records)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write(t, root, "a-file")
	cfg := func(paths ...string) string { return configYAML(root, paths...) }
	for _, tc := range []struct{ name, yaml, want string }{
		{"no root", "paths: [\"x/{email}\"]\n", "root: required"},
		{"missing root", configYAML(filepath.Join(root, "nope"), "x/{email}"), "root: stat " + filepath.Join(root, "nope") + ": no such file"},
		{"root is a file", configYAML(filepath.Join(root, "a-file"), "x/{email}"), "root: " + filepath.Join(root, "a-file") + " is not a directory"},
		{"no paths", fmt.Sprintf("root: %q\n", root), "paths: at least one"},
		{"no placeholder", cfg("exports/all.csv"), `paths[0]: "exports/all.csv" has no placeholder`},
		{"absolute", cfg("/etc/{email}"), "paths[0]: \"/etc/{email}\" must be relative to root"},
		{"dot dot", cfg("a/../{email}"), `paths[0]: "a/../{email}" has a ".." segment`},
		{"empty segment", cfg("a//{email}"), "paths[0]: \"a//{email}\" has an empty"},
		{"unknown placeholder", cfg("a/{name}"), "paths[0]: \"a/{name}\": unknown placeholder {name}"},
		{"unclosed brace", cfg("a/{email"), `unclosed "{"`},
		{"stray brace", cfg("a/}{email}"), `stray "}"`},
		{"bad glob", cfg("a[/{email}"), "invalid glob: syntax error in pattern"},
		{"wildcard after placeholder", cfg("a/{user_id}*"), "paths[0]: \"a/{user_id}*\": a wildcard right next to {user_id}"},
		{"wildcard before placeholder", cfg("a/*{email}"), "a wildcard right next to {email}"},
		{"escape before placeholder", cfg(`a/\{email}`), "a wildcard right next to {email}"},
		{"second path", cfg("a/{email}", "b"), "paths[1]: \"b\" has no placeholder"},
		{"unknown key", configYAML(root, "a/{email}") + "recursive: true\n", "field recursive not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := connectortest.TryBuild("filesystem", instance, tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("TryBuild error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		if _, err := connectortest.TryBuild("filesystem", instance, cfg("{user_id}.json", "a/*/{email}-*.csv", "b/{phone}/")+"user_id_system: shop\n"); err != nil {
			t.Errorf("TryBuild of a valid config: %v", err)
		}
	})
}

func TestScanReadsIdentifiersFromNames(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	seed(t, root, subject(1))
	seed(t, root, subject(2))
	write(t, root, "exports/not.an.email.csv")
	write(t, root, "unrelated/subject9@example.com.csv")
	c := newConnector(t, root, shopPaths...)
	var got []string
	err := c.(connectors.Scanner).Scan(context.Background(), func(s connectors.Subject) error {
		got = append(got, s.Email+"|"+s.UserIDs[instance])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(got, " ")
	for _, want := range []string{"subject1@example.com|", "subject2@example.com|", "|u1", "|u2", "not.an.email|"} {
		if !strings.Contains(joined, want) {
			t.Errorf("scan found %q, missing %q", joined, want)
		}
	}
	if strings.Contains(joined, "subject9") {
		t.Error("scan read a name outside every template")
	}
}

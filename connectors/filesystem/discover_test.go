package filesystem_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
)

// TestDiscover: files named after people are found by the shape of their
// paths; shapes a template names are covered, others uncovered (also when
// only some of their files are named), ignored folders say why, and no
// identifier reaches the report.
func TestDiscover(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(p string) {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		e := fmt.Sprintf("p%d@example.com", i)
		write("exports/" + e + ".csv")
		write("uploads/" + e + "/photo.jpg")
		write("uploads/" + e + "/scans/id.pdf")
		write(fmt.Sprintf("invoices/2026/%s-%d.pdf", e, i))
		write("legal/" + e + ".pdf")
	}
	write("products/mug.jpg")
	write("exports/+4930123456.csv") // an export named by a phone number: no template names it
	cfg := configYAML(root, shopPaths...) + "ignore:\n  - place: legal/\n    reason: litigation hold until 2027\n"
	c := connectortest.Build(t, "filesystem", instance, cfg).(connectors.Discoverer)
	cov, err := c.Discover(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	connectortest.CheckFindings(t, cov, 22, map[string]string{
		"exports/{email}.csv":      "covered 4: a path template names them",
		"uploads/{email}/":         "covered 8: a path template names them",
		"invoices/*/{email}-*.pdf": "uncovered 4: no path template names them",
		"legal/{email}.pdf":        "ignored 4: ignored: litigation hold until 2027",
		"exports/{phone}.csv":      "uncovered 1: no path template names them",
	}, "example.com", "4930")
}

func TestIgnoreIsValidated(t *testing.T) {
	t.Parallel()
	_, err := connectortest.TryBuild("filesystem", instance, configYAML(t.TempDir(), "a/{email}")+"ignore:\n  - place: legal/\n")
	if err == nil || !strings.Contains(err.Error(), "ignore[0].reason") {
		t.Errorf("build = %v", err)
	}
}

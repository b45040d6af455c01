package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/demo"
)

// TestDiscoverCommand: `lethe discover` on the demo shop finds the
// delivery notes no statement erases, in text and JSON, without printing
// any customer's data; --fail-uncovered exits 1 until a statement covers
// them (or an ignore entry says why not); command-line mistakes exit 2.
func TestDiscoverCommand(t *testing.T) {
	dir := t.TempDir()
	if _, err := demo.Seed(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "discover", "--dev-data-dir", dir)
	if code != 0 {
		t.Fatalf("discover = %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"shop-db (sql): 17 places read; 1 uncovered, 0 ignored, 6 covered",
		"UNCOVERED  orders.delivery_note",
		`statement "orders (anonymised)" touches orders but not this column`,
		"customer-files (filesystem): 15 places read; 0 uncovered, 0 ignored, 2 covered",
		"COVERED  uploads/{email}/",
		"1 place holds personal data no rule covers",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report does not say %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "shop-db: done") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	for _, c := range demo.Customers {
		for _, v := range []string{c.Email, c.Phone, c.Name, strings.Split(c.Email, "@")[0]} {
			if strings.Contains(stdout+stderr, v) {
				t.Errorf("discover printed a customer's data (%s)", v)
			}
		}
	}

	code, stdout, _ = runCLI(t, "discover", "--dev-data-dir", dir, "--format", "json", "--fail-uncovered", "--connectors", "shop-db")
	if code != 1 {
		t.Errorf("--fail-uncovered with an uncovered column = %d, want 1", code)
	}
	var reports []connectors.Coverage
	if err := json.Unmarshal([]byte(stdout), &reports); err != nil || len(reports) != 1 {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	if r := reports[0]; r.Connector != "shop-db" || r.Type != "sql" || r.RanAt.IsZero() || r.Findings[0].Place != "orders.delivery_note" ||
		r.Findings[0].Status != connectors.Uncovered || r.Findings[0].Kind != connectors.DataFreeText {
		t.Errorf("json report %+v", r)
	}

	// The shop's connector with the notes covered, then with them ignored.
	shop := demo.ConnectorsYAML(dir)
	shop = shop[:strings.Index(shop, "  - name: customer-files")]
	covered := strings.Replace(shop, "UPDATE orders SET email = NULL,", "UPDATE orders SET email = NULL, delivery_note = NULL,", 1)
	if covered == shop {
		t.Fatal("the demo's orders statement changed: update this test")
	}
	in := newInstance(t, "nats://127.0.0.1:1", covered, "")
	if code, stdout, stderr := runCLI(t, "discover", "--config", in.configPath, "--fail-uncovered"); code != 0 || !strings.Contains(stdout, "Every place found with personal data is covered or ignored.") {
		t.Errorf("covered: discover = %d\n%s%s", code, stdout, stderr)
	}
	ignored := strings.Replace(shop, "      statements:\n", "      ignore:\n        - place: orders.delivery_note\n          reason: couriers need it for 30 days; purged by the shop's own job\n      statements:\n", 1)
	in = newInstance(t, "nats://127.0.0.1:1", ignored, "")
	code, stdout, _ = runCLI(t, "discover", "--config", in.configPath, "--fail-uncovered")
	if code != 0 || !strings.Contains(stdout, "IGNORED  orders.delivery_note") || !strings.Contains(stdout, "ignored: couriers need it for 30 days") {
		t.Errorf("ignored: discover = %d\n%s", code, stdout)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"discover"}, 2, "give exactly one of --config and --dev-data-dir"},
		{[]string{"discover", "--config", in.configPath, "--dev-data-dir", dir}, 2, "give exactly one"},
		{[]string{"discover", "--dev-data-dir", dir, "--format", "xml"}, 2, "--format must be text or json"},
		{[]string{"discover", "--dev-data-dir", t.TempDir()}, 1, "no lethe dev data there"},
		{[]string{"discover", "--dev-data-dir", dir, "--connectors", "nope"}, 1, `no connector named "nope"`},
		{[]string{"discover", "--config", in.configPath, "--frobnicate"}, 2, "frobnicate"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v = %d %q, want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

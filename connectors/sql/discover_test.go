package sqlconn

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
)

// discoverySchema adds to the shop: support tickets whose free text holds
// emails and that refer to customers (no statement handles them), login
// sessions deleted with their customer by the database (ON DELETE
// CASCADE), an audit log ignored on purpose, and a table with no personal
// data.
func discoverySchema(t *testing.T, b *backend) {
	t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE support_tickets (id INTEGER PRIMARY KEY, customer_id INTEGER, body TEXT,
			FOREIGN KEY (customer_id) REFERENCES customers (id))`,
		`CREATE TABLE sessions (id INTEGER PRIMARY KEY, customer_id INTEGER, ip VARCHAR(45),
			FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE)`,
		`CREATE TABLE audit_log (id INTEGER PRIMARY KEY, actor_email VARCHAR(254))`,
		`CREATE TABLE products (id INTEGER PRIMARY KEY, title VARCHAR(100), sku VARCHAR(20))`,
	} {
		b.exec(t, stmt)
	}
	for i := 1; i <= 6; i++ {
		email := fmt.Sprintf("p%d@example.com", i)
		b.exec(t, "INSERT INTO customers (id, email, phone) VALUES (?, ?, ?)", i, email, fmt.Sprintf("+4930123456%d", i))
		b.exec(t, "INSERT INTO orders (id, customer_id, email, shipping_address) VALUES (?, ?, ?, ?)", i, i, email, fmt.Sprintf("%d High Street", i))
		b.exec(t, "INSERT INTO newsletter_signups (id, email) VALUES (?, ?)", i, email)
		b.exec(t, "INSERT INTO support_tickets (id, customer_id, body) VALUES (?, ?, ?)", i, i,
			fmt.Sprintf("Parcel %d late, please answer to %s or call", i, email))
		b.exec(t, "INSERT INTO sessions (id, customer_id, ip) VALUES (?, ?, ?)", i, i, fmt.Sprintf("203.0.113.%d", i))
		b.exec(t, "INSERT INTO audit_log (id, actor_email) VALUES (?, ?)", i, email)
		b.exec(t, "INSERT INTO products (id, title, sku) VALUES (?, ?, ?)", i, fmt.Sprintf("Mug %d", i), fmt.Sprintf("MUG-%d", i))
	}
}

// summary is place=status/kind for every finding, sorted.
func summary(c connectors.Coverage) string {
	var out []string
	for _, f := range c.Findings {
		out = append(out, fmt.Sprintf("%s=%s/%s", strings.ToLower(f.Place), f.Status, f.Kind))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func discover(t *testing.T, c connectors.Connector) connectors.Coverage {
	t.Helper()
	d, ok := c.(connectors.Discoverer)
	if !ok {
		t.Fatal("the sql connector does not implement connectors.Discoverer")
	}
	var steps []connectors.DiscoveryProgress
	cov, err := d.Discover(context.Background(), func(p connectors.DiscoveryProgress) { steps = append(steps, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 || steps[len(steps)-1].Done != steps[len(steps)-1].Total || steps[len(steps)-1].Unit != "tables" {
		t.Errorf("progress %v: want a last step with every table done", steps)
	}
	return cov
}

// TestDiscover: on each database, the columns holding personal data are
// found by their values (email, phone, IP, free text with emails) and the
// references to erased rows by the foreign keys; each is covered, ignored
// with its reason, or uncovered, and an uncovered place stays reported
// until a statement covers it. No sampled value reaches the report.
func TestDiscover(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		discoverySchema(t, b)
		ignore := "ignore:\n  - place: audit_log\n    reason: kept 6 years for the tax office\n"
		cov := discover(t, b.build(t, "shop", b.dsn, shopStatements+ignore))
		want := "audit_log.actor_email=ignored/email customers.email=covered/email customers.phone=covered/phone " +
			"newsletter_signups.email=covered/email orders.customer_id=covered/reference orders.email=covered/email " +
			"sessions.customer_id=covered/reference sessions.ip=covered/ip_address " +
			"support_tickets.body=uncovered/free_text_with_email support_tickets.customer_id=uncovered/reference"
		if got := summary(cov); got != want {
			t.Errorf("findings\n got %s\nwant %s", got, want)
		}
		if cov.Places < 20 {
			t.Errorf("%d places read, want every column", cov.Places)
		}
		for _, f := range cov.Findings {
			switch strings.ToLower(f.Place) {
			case "support_tickets.body":
				if f.Sampled != 6 || f.Matched != 6 || f.Reason != "no statement touches support_tickets" {
					t.Errorf("%s: %+v", f.Place, f)
				}
			case "support_tickets.customer_id":
				if !strings.Contains(f.Reason, `refers to customers, whose rows statement "customers" deletes; no statement handles support_tickets`) {
					t.Errorf("%s: reason %q", f.Place, f.Reason)
				}
			case "sessions.ip":
				if f.Reason != "the row is deleted by ON DELETE CASCADE from customers" {
					t.Errorf("%s: reason %q", f.Place, f.Reason)
				}
			case "audit_log.actor_email":
				if f.Reason != "ignored: kept 6 years for the tax office" {
					t.Errorf("%s: reason %q", f.Place, f.Reason)
				}
			case "orders.email":
				if f.Reason != `overwritten by statement "orders"` {
					t.Errorf("%s: reason %q", f.Place, f.Reason)
				}
			}
			for i := 1; i <= 6; i++ {
				if strings.Contains(fmt.Sprintf("%+v", f), fmt.Sprintf("p%d@", i)) || strings.Contains(fmt.Sprintf("%+v", f), "203.0.113") {
					t.Errorf("a sampled value reached the report: %+v", f)
				}
			}
		}
		if cov.Findings[0].Status != connectors.Uncovered {
			t.Errorf("uncovered findings do not come first: %+v", cov.Findings[0])
		}

		// A statement for the tickets covers both of their places.
		tickets := strings.Replace(shopStatements, "statements:\n", "statements:\n  - name: tickets\n    sql: DELETE FROM support_tickets WHERE customer_id IN (SELECT id FROM customers WHERE email = :email)\n", 1)
		cov = discover(t, b.build(t, "shop2", b.dsn, tickets+ignore))
		if n := cov.Count(connectors.Uncovered); n != 0 {
			t.Errorf("%d uncovered after a statement covers the tickets: %s", n, summary(cov))
		}
		// Without the ignore entry, the audit log is uncovered.
		cov = discover(t, b.build(t, "shop3", b.dsn, tickets))
		if got := summary(cov); !strings.Contains(got, "audit_log.actor_email=uncovered/email") {
			t.Errorf("without the ignore entry: %s", got)
		}
	})
}

// TestDiscoverClassifiesByName: empty columns named like personal data are
// reported by their name, with nothing sampled; values that are neither
// emails, phones nor addresses are not.
func TestDiscoverClassifiesByName(t *testing.T) {
	b := newBackend(t, driverSQLite)
	b.exec(t, `CREATE TABLE staff (id INTEGER PRIMARY KEY, first_name TEXT, mobile TEXT, last_login_ip TEXT, notes TEXT, created TEXT)`)
	b.exec(t, `INSERT INTO staff (id, notes, created) VALUES (1, 'likes tea', '2026-01-02'), (2, 'ordered 2024-01-01', '2026-01-03')`)
	cov := discover(t, b.build(t, "hr", b.dsn, "statements:\n  - sql: DELETE FROM customers WHERE email = :email\n"))
	got := summary(cov)
	for _, want := range []string{"staff.first_name=uncovered/name", "staff.mobile=uncovered/phone", "staff.last_login_ip=uncovered/ip_address"} {
		if !strings.Contains(got, want) {
			t.Errorf("findings %s: missing %s", got, want)
		}
	}
	if strings.Contains(got, "staff.notes") || strings.Contains(got, "staff.created") {
		t.Errorf("findings %s: notes or dates reported as personal data", got)
	}
	for _, f := range cov.Findings {
		if strings.HasPrefix(f.Place, "staff.") && (f.Sampled != 0 || f.Matched != 0) {
			t.Errorf("%s found by name claims sampled values: %+v", f.Place, f)
		}
	}
}

func TestIgnoreIsValidated(t *testing.T) {
	t.Parallel()
	cfg := Config{Driver: driverSQLite, Statements: []Statement{{SQL: "DELETE FROM t WHERE email = :email"}},
		Ignore: []connectors.Ignore{{Place: "audit_log"}}}
	cfg.DSN.Value = "x.db"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "ignore[0].reason: required") {
		t.Errorf("Validate = %v", err)
	}
}

package sqlconn

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
)

func TestResolveFindsEveryValue(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		// Two customer records for one email (a duplicate account): both
		// are reported, never one picked.
		s := connectors.Subject{Email: "twice@example.com"}
		first, _ := b.seed(t, s.With(connectors.Phone, "+447700900111  ")) // CHAR-style padding is trimmed
		second, _ := b.seed(t, s.With(connectors.UserIDKind("app"), "u-2"))
		b.exec(t, "UPDATE customers SET app_user_id = '' WHERE id = ?", first) // empty: skipped
		other := connectors.Subject{Email: "other@example.com", Phone: "+447700900999"}
		b.seed(t, other)

		r := b.build(t, "shop", b.dsn, shopStatements+shopResolve).(connectors.Resolver)
		got, err := r.Resolve(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		want := map[connectors.Kind][]string{
			connectors.Phone:                {"+447700900111"},
			connectors.UserIDKind("app"):    {"u-2"},
			connectors.UserIDKind("legacy"): {strconv.FormatInt(legacyNo(s), 10)}, // a BIGINT, as text; once though both rows hold it
		}
		if fmt.Sprint(got.Found) != fmt.Sprint(want) {
			t.Errorf("Resolve found %v, want %v", got.Found, want)
		}
		wantEv := []string{"resolve customer ids: 2 rows", "resolve customer by app id: not run, no user_ids.app"}
		if !slices.Equal(values(got.Evidence), wantEv) {
			t.Errorf("evidence = %q, want %q", values(got.Evidence), wantEv)
		}

		// By app id, the second query runs too, and finds the integer id.
		byApp := connectors.Subject{UserIDs: map[string]string{"app": "u-2"}}
		got, err = r.Resolve(ctxFor(t), byApp)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Found) != fmt.Sprint(map[connectors.Kind][]string{connectors.UserIDKind("customer"): {strconv.FormatInt(second, 10)}}) {
			t.Errorf("Resolve by app id found %v, want customer %d", got.Found, second)
		}
		wantEv = []string{"resolve customer ids: not run, no email", "resolve customer by app id: 1 row"}
		if !slices.Equal(values(got.Evidence), wantEv) {
			t.Errorf("evidence = %q, want %q", values(got.Evidence), wantEv)
		}

		// Nothing to look up by: an empty resolution, no error, no query.
		phoneOnly := connectors.Subject{Phone: "+447700900111"}
		unreachable := b.build(t, "shop", b.unreachable(t), shopStatements+shopResolve).(connectors.Resolver)
		got, err = unreachable.Resolve(ctxFor(t), phoneOnly)
		if err != nil || len(got.Found) != 0 || len(got.Evidence) != 2 {
			t.Errorf("Resolve with nothing to look up by = %v, %q, %v", got.Found, values(got.Evidence), err)
		}
	})
}

func TestResolveFindsSoftDeletedRows(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := connectors.Subject{Email: "gone@example.com"}
		b.seedSoftDeleted(t, s)
		got, err := b.build(t, "shop", b.dsn, shopStatements+shopResolve).(connectors.Resolver).Resolve(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if v := got.Found[connectors.UserIDKind("app")]; !slices.Equal(v, []string{appUserID(s)}) {
			t.Errorf("Resolve of a soft-deleted customer found app id %q: the record is still held and its ids must be erased elsewhere", v)
		}
	})
}

func TestResolveErrors(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := connectors.Subject{Email: "err@example.com"}
		b.seed(t, s)
		binary := map[string]string{driverPostgres: `decode('ff00', 'hex')`, driverMySQL: `X'FF00'`, driverSQLite: `X'FF00'`}[b.driver]
		tests := []struct {
			name, resolve, says string
			permanent           bool
		}{
			{"missing column", `{name: ids, sql: "SELECT id FROM customers WHERE email = :email", kinds: {app_user_id: user_ids.app}}`,
				`resolve ids: kinds names column "app_user_id", which is not in the query's result (id)`, true},
			{"missing table", `{name: ids, sql: "SELECT id FROM no_such_table WHERE email = :email", kinds: {id: user_ids.x}}`,
				"resolve ids:", true},
			{"bytes that are not text", `{name: ids, sql: "SELECT ` + binary + ` AS b FROM customers WHERE email = :email", kinds: {b: user_ids.x}}`,
				`resolve ids: column "b": holds bytes that are not text`, true},
			{"two columns of one name", `{name: ids, sql: "SELECT id, app_user_id AS ID FROM customers WHERE email = :email", kinds: {id: user_ids.x}}`,
				`two columns named "id"`, true},
		}
		if b.driver == driverPostgres {
			tests = append(tests, struct {
				name, resolve, says string
				permanent           bool
			}{"a write hidden in a CTE", `{name: ids, sql: "WITH d AS (DELETE FROM newsletter_signups WHERE email = :email RETURNING id) SELECT id FROM d", kinds: {id: user_ids.x}}`,
				"resolve queries run read-only", true}, struct {
				name, resolve, says string
				permanent           bool
			}{"a timestamp", `{name: ids, sql: "SELECT now() AS t FROM customers WHERE email = :email", kinds: {t: user_ids.x}}`,
				"holds values of type time.Time", true})
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := b.build(t, "shop", b.dsn, shopStatements+"resolve: ["+tt.resolve+"]\n").(connectors.Resolver)
				got, err := r.Resolve(ctxFor(t), s)
				if err == nil {
					t.Fatalf("Resolve succeeded with %v", got.Found)
				}
				if perm, _ := connectors.Classify(err); perm != tt.permanent {
					t.Errorf("permanent = %v, want %v: %v", perm, tt.permanent, err)
				}
				if !strings.Contains(err.Error(), tt.says) {
					t.Errorf("error %q does not say %q", err, tt.says)
				}
				if strings.Contains(err.Error(), s.Email) {
					t.Errorf("error echoes the email: %v", err)
				}
			})
		}
		if n := b.held(t, s); n != 4 {
			t.Errorf("a failed resolve changed data: %d of 4 rows left", n)
		}
	})
}

func TestResolveNeverCommits(t *testing.T) {
	t.Parallel()
	// SQLite does not enforce read-only transactions, and a CTE may lead
	// into a DELETE; the resolve transaction is rolled back all the same.
	b, s, _ := sqliteShop(t, "keep@example.com")
	r := b.build(t, "shop", b.dsn, shopStatements+`
resolve:
  - name: sneaky
    sql: WITH x AS (SELECT 1) DELETE FROM newsletter_signups WHERE email = :email RETURNING id
    kinds: {id: user_ids.x}
`).(connectors.Resolver)
	if _, err := r.Resolve(ctxFor(t), s); err != nil {
		t.Logf("Resolve: %v", err)
	}
	if n := b.count(t, "SELECT count(*) FROM newsletter_signups WHERE email = ?", s.Email); n != 1 {
		t.Errorf("a resolve query deleted a row: %d of 1 left", n)
	}
}

func TestResolveFaults(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		if b.driver == driverSQLite {
			return // no server to be down
		}
		r := b.build(t, "shop", b.unreachable(t), shopStatements+shopResolve).(connectors.Resolver)
		_, err := r.Resolve(ctxFor(t), connectors.Subject{Email: "down@example.com"})
		if perm, _ := connectors.Classify(err); err == nil || perm {
			t.Errorf("Resolve against a database that is down = %v; want a retryable error", err)
		}
	})
}

func TestResolveHostileUserIDs(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		for i := range 3 { // customer ids 0, 1, 2: what numeric coercion would hit
			b.seed(t, connectors.Subject{Email: fmt.Sprintf("bystander%d@example.com", i)})
		}
		r := b.build(t, "shop", b.dsn, shopStatements+`
resolve:
  - name: by number
    sql: SELECT app_user_id FROM customers WHERE id = :user_ids.shop
    kinds: {app_user_id: user_ids.app}
`).(connectors.Resolver)
		for _, id := range []string{"1 OR 1=1", "0 OR 1=1", "abc", "1x", "' OR '1'='1", "2; DROP TABLE customers; --"} {
			s := connectors.Subject{UserIDs: map[string]string{"shop": id}}
			got, err := r.Resolve(ctxFor(t), s)
			if err != nil {
				if perm, _ := connectors.Classify(err); !perm {
					t.Errorf("user id %q refused with a retryable error: %v", id, err)
				}
				if strings.Contains(err.Error(), id) {
					t.Errorf("error echoes the user id: %v", err)
				}
				continue
			}
			if len(got.Found) != 0 {
				t.Errorf("user id %q resolved to %v: another customer's id", id, got.Found)
			}
		}
	})
}

// TestStatementsMustNotFilterSoftDeletedRows shows why the statements
// must not skip soft-deleted rows: a row with deleted_at set is still
// held (the application can restore it). Statements written with
// `AND deleted_at IS NULL` leave it and find "nothing"; verify queries
// without the filter still count it, so the task is not certified clean.
func TestStatementsMustNotFilterSoftDeletedRows(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := connectors.Subject{Email: "soft@example.com"}
		seeded := b.seedSoftDeleted(t, s)
		c := b.build(t, "shop", b.dsn, `
statements:
  - name: orders
    sql: UPDATE orders SET email = NULL WHERE email = :email AND deleted_at IS NULL
  - name: customers
    sql: DELETE FROM customers WHERE email = :email AND deleted_at IS NULL
`+shopVerify)
		out, err := c.Erase(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if out.Records != 0 || b.held(t, s) != seeded {
			t.Fatalf("filtered statements: %d records erased, %d of %d rows held; the filter should have hidden them", out.Records, b.held(t, s), seeded)
		}
		v, err := c.(connectors.Verifier).Verify(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if v.Remaining != seeded {
			t.Errorf("Verify counts %d of the %d soft-deleted rows; it must count them all", v.Remaining, seeded)
		}

		// The shop statements do not filter: they erase the rows.
		out, err = b.build(t, "shop", b.dsn, shopStatements).Erase(ctxFor(t), s)
		if err != nil || out.Records != seeded || b.held(t, s) != 0 {
			t.Errorf("Erase = %d records, %v, %d rows left; want the %d soft-deleted rows erased", out.Records, err, b.held(t, s), seeded)
		}
	})
}

func TestVerifyWithNoRunnableQueryIsAnError(t *testing.T) {
	t.Parallel()
	b, s, _ := sqliteShop(t, "v@example.com")
	c := b.build(t, "shop", b.dsn, shopStatements+`
verify:
  - name: by phone
    sql: SELECT count(*) FROM customers WHERE phone = :phone
`)
	v, err := c.(connectors.Verifier).Verify(ctxFor(t), s)
	if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "(phone)") {
		t.Errorf("Verify with no query it can run = %d remaining, %v; want a permanent error (zero would certify a lookup that never happened)", v.Remaining, err)
	}
}

func TestSearchedByListsTheKindsBound(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := connectors.Subject{Email: "kinds@example.com", UserIDs: map[string]string{"app": "u-kinds", "crm": "c-1"}}
		b.seed(t, s)
		c := b.build(t, "shop", b.dsn, `
statements:
  - name: newsletter
    sql: DELETE FROM newsletter_signups WHERE email = :email
  - name: orders
    sql: UPDATE orders SET email = NULL, customer_id = NULL WHERE customer_id IN (SELECT id FROM customers WHERE app_user_id = :user_ids.app)
  - name: by phone
    sql: DELETE FROM customers WHERE phone = :phone
  - name: customers
    sql: DELETE FROM customers WHERE app_user_id = :user_ids.app
`)
		out, err := c.Erase(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"statement newsletter: 1 row", "statement orders: 2 rows", "statement by phone: skipped, the subject has no phone", "statement customers: 1 row"}
		if out.Records != 4 || !slices.Equal(values(out.Evidence), want) {
			t.Errorf("Erase = %d records, %q; want 4, %q", out.Records, values(out.Evidence), want)
		}
		if fmt.Sprint(out.SearchedBy) != "[email user_ids.app]" {
			t.Errorf("SearchedBy = %v, want [email user_ids.app] (not phone: skipped; not crm: no statement uses it)", out.SearchedBy)
		}
	})
}

func TestInterfacesFollowTheConfig(t *testing.T) {
	t.Parallel()
	b := &backend{driver: driverSQLite}
	dsn := filepath.Join(t.TempDir(), "x.db")
	for _, tt := range []struct {
		name               string
		rest               string
		verifies, resolves bool
	}{
		{"statements only", shopStatements, false, false},
		{"verify", shopStatements + shopVerify, true, false},
		{"resolve", shopStatements + shopResolve, false, true},
		{"verify and resolve", shopStatements + shopVerify + shopResolve, true, true},
	} {
		c := b.build(t, "shop", dsn, tt.rest)
		if _, ok := c.(connectors.Verifier); ok != tt.verifies {
			t.Errorf("%s: implements Verifier = %v, want %v", tt.name, ok, tt.verifies)
		}
		if _, ok := c.(connectors.Resolver); ok != tt.resolves {
			t.Errorf("%s: implements Resolver = %v, want %v", tt.name, ok, tt.resolves)
		}
		if _, ok := c.(connectors.Scanner); !ok {
			t.Errorf("%s: does not implement Scanner", tt.name)
		}
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	const base = "driver: postgres\ndsn: {env: UNSET_IN_THIS_TEST}\n"
	// Each kind of Keys is its own requirement (a space, not "|").
	connectortest.RunPlanCases(t, "sql", connectortest.PlanCases{
		{Name: "email only", Instance: "shop", YAML: base + "statements: [{sql: 'DELETE FROM c WHERE email = :email'}]",
			Keys: "[email]", Uses: "[email]"},
		{Name: "every kind its statements use is required", Instance: "shop-db", YAML: base + `
statements:
  - sql: DELETE FROM c WHERE email = :email OR phone = :phone
  - sql: DELETE FROM o WHERE customer = :user_id
  - sql: DELETE FROM a WHERE app = :user_ids.app
verify:
  - sql: SELECT count(*) FROM crm WHERE id = :user_ids.crm
`, Keys: "[email phone user_ids.app user_ids.shop-db]", Uses: "[email phone user_ids.app user_ids.crm user_ids.shop-db]"},
		{Name: "user_id_system names :user_id's namespace", Instance: "shop", YAML: base + "user_id_system: accounts\nstatements: [{sql: 'DELETE FROM c WHERE id = :user_id'}]",
			Keys: "[user_ids.accounts]", Uses: "[user_ids.accounts]"},
		{Name: "resolve queries", Instance: "shop", YAML: base + "statements: [{sql: 'DELETE FROM c WHERE id = :user_ids.customer'}]" + shopResolve,
			Keys: "[user_ids.customer]", Uses: "[user_ids.customer]", ResolveBy: "[email user_ids.app]", Gives: "[phone user_ids.app user_ids.customer user_ids.legacy]"},
	})
}

func TestResolveConfigValidation(t *testing.T) {
	t.Parallel()
	const base = "driver: sqlite\ndsn: x\nstatements: [{sql: 'DELETE FROM t WHERE e = :email'}]\n"
	runRefusals(t, base, refusals{
		{"no placeholder", "resolve: [{sql: 'SELECT id FROM c', kinds: {id: user_ids.c}}]",
			[]string{"resolve[0].sql: has no"}},
		{"no kinds", "resolve: [{sql: 'SELECT id FROM c WHERE e = :email'}]",
			[]string{"resolve[0].kinds: at least one"}},
		{"bad kind", "resolve: [{sql: 'SELECT id FROM c WHERE e = :email', kinds: {id: user_id, app: user_ids.App}}]",
			[]string{`resolve[0].kinds.id: "user_id" is not an identifier kind`, `resolve[0].kinds.app: "user_ids.App" is not an identifier kind`}},
		{"empty column", "resolve: [{sql: 'SELECT id FROM c WHERE e = :email', kinds: {'': phone}}]",
			[]string{"resolve[0].kinds: a column name is empty"}},
		{"column twice", "resolve: [{sql: 'SELECT id FROM c WHERE e = :email', kinds: {id: phone, ID: email}}]",
			[]string{"the column is named twice"}},
		{"not a select", "resolve: [{sql: 'DELETE FROM c WHERE e = :email RETURNING id', kinds: {id: user_ids.c}}]",
			[]string{"resolve[0].sql: must be a SELECT"}},
		{"duplicate names", "resolve: [{name: a, sql: 'SELECT id FROM c WHERE e = :email', kinds: {id: phone}}, {name: a, sql: 'SELECT id FROM d WHERE e = :email', kinds: {id: phone}}]",
			[]string{`resolve[1].name: "a" is used twice`}},
		{"bad namespace in a resolve query", "resolve: [{sql: 'SELECT id FROM c WHERE e = :user_ids.Shop', kinds: {id: phone}}]",
			[]string{`resolve[0].sql: :user_ids.Shop: "Shop" is not a user id namespace`}},
		{"bad namespace in a statement", "verify: [{sql: 'SELECT count(*) FROM c WHERE e = :user_ids.'}]",
			[]string{"verify[0].sql: :user_ids needs a namespace"}},
		{"bad scan kind", "scan: [{sql: 'SELECT id FROM c', kind: user_ids.X}]",
			[]string{"scan[0].kind: must be email, phone, user_id or user_ids.<namespace>"}},
	})
}

func TestReadsOnly(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{
		"SELECT id FROM c":                        true,
		"  select\nid FROM c":                     true,
		"-- ids\n/* x */ (SELECT id FROM c)":      true,
		"WITH x AS (SELECT 1) SELECT * FROM x":    true,
		"DELETE FROM c RETURNING id":              false,
		"SELECTED":                                false,
		"/* unterminated SELECT":                  false,
		"UPDATE c SET a = 1 -- SELECT":            false,
		"# mysql comment\nSELECT id FROM c":       true,
		"INSERT INTO c SELECT * FROM d":           false,
		"WITHOUT":                                 false,
		"\tWITH\td AS (SELECT 1) SELECT * FROM d": true,
		"VALUES (1)":                              false,
		"-- only a comment":                       false,
		"SELECT":                                  false,
		"(((SELECT 1)))":                          true,
		"select/**/id from c":                     true,
		"SELECT\u00a0id":                          false,
		"SELECT(1)":                               true,
		"":                                        false,
		"WITH":                                    false,
		"  ":                                      false,
		"SELECT id FROM c WHERE e = :user_ids.app": true,
	} {
		if got := readsOnly(q); got != want {
			t.Errorf("readsOnly(%q) = %v, want %v", q, got, want)
		}
	}
}

package sqlconn

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// Config is the `config:` block of a sql connector instance.
//
//	driver: postgres
//	dsn: {env: SHOP_DATABASE_URL}
//	statements:
//	  - name: customers
//	    sql: DELETE FROM customers WHERE email = :email
//	resolve:
//	  - name: customer ids
//	    sql: SELECT id, app_user_id FROM customers WHERE email = :email
//	    kinds: {id: user_ids.customer, app_user_id: user_ids.app}
type Config struct {
	// Driver is postgres, mysql or sqlite.
	Driver string `yaml:"driver"`
	// DSN is the connection string (a URL or key=value for postgres, a
	// go-sql-driver DSN for mysql, a file path or file: URI for sqlite).
	DSN config.Secret `yaml:"dsn"`
	// UserIDSystem is the subject.user_ids key :user_id binds to; default:
	// the instance name.
	UserIDSystem string `yaml:"user_id_system"`
	// Statements run in order in one transaction.
	Statements []Statement `yaml:"statements"`
	// Verify queries each return one count of what remains.
	Verify []Statement `yaml:"verify"`
	// Resolve queries look the subject up and return further identifiers
	// (the customer id, the app user id kept beside the email), so that
	// Lethe erases by them everywhere. Optional.
	Resolve []ResolveQuery `yaml:"resolve"`
	// Scan queries each return one column of identifiers of one kind
	// (email, phone, user_id or user_ids.<namespace>), so `lethe replay`
	// can find people who were erased and came back with a restored
	// backup. Optional.
	Scan []ScanQuery `yaml:"scan"`
	// Ignore lists places (table or table.column) holding personal data
	// that no statement erases on purpose, each with its reason: `lethe
	// discover` lists them as ignored instead of uncovered.
	Ignore []connectors.Ignore `yaml:"ignore"`
}

// ScanQuery lists identifiers held in the database.
type ScanQuery struct {
	Name string `yaml:"name"`
	SQL  string `yaml:"sql"`
	Kind string `yaml:"kind"`
}

// Statement is one named SQL statement with :email, :phone, :user_id or
// :user_ids.<namespace> placeholders.
type Statement struct {
	Name string `yaml:"name"`
	SQL  string `yaml:"sql"`
}

// ResolveQuery is a SELECT with placeholders whose result columns hold
// identifiers of the subject; Kinds names the kind of each column used.
//
//	name: customer ids
//	sql: SELECT id, phone FROM customers WHERE email = :email
//	kinds: {id: user_ids.customer, phone: phone}
type ResolveQuery struct {
	Name  string            `yaml:"name"`
	SQL   string            `yaml:"sql"`
	Kinds map[string]string `yaml:"kinds"`
}

// Validate reports every problem in the config at once, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	switch c.Driver {
	case driverPostgres, driverMySQL, driverSQLite:
	case "":
		errs = append(errs, errors.New("driver: required (postgres, mysql or sqlite)"))
	default:
		errs = append(errs, fmt.Errorf("driver: %q is not one of postgres, mysql, sqlite", c.Driver))
	}
	if !c.DSN.IsSet() {
		errs = append(errs, errors.New("dsn: required (a string, {env: NAME} or {file: PATH})"))
	}
	if c.UserIDSystem != "" && !connectors.InstanceNameRe.MatchString(c.UserIDSystem) {
		errs = append(errs, errors.New("user_id_system: must be lower-case letters, digits, '-' or '_'"))
	}
	if len(c.Statements) == 0 {
		errs = append(errs, errors.New("statements: at least one statement is required"))
	}
	// The namespace only changes what :user_id binds, never validity.
	const anyName = "x"
	if _, err := compile(c.Driver, anyName, "statements", "statement", c.Statements); err != nil {
		errs = append(errs, err)
	}
	if _, err := compile(c.Driver, anyName, "verify", "verify", c.Verify); err != nil {
		errs = append(errs, err)
	}
	if _, err := compileResolve(c.Driver, anyName, c.Resolve); err != nil {
		errs = append(errs, err)
	}
	if err := connectors.ValidateIgnores(c.Ignore); err != nil {
		errs = append(errs, err)
	}
	for i, q := range c.Scan {
		if _, err := scanKind(q.Kind, anyName); err != nil {
			errs = append(errs, fmt.Errorf("scan[%d].kind: %w", i, err))
		}
		if strings.TrimSpace(q.SQL) == "" {
			errs = append(errs, fmt.Errorf("scan[%d].sql: required: a query returning one column of identifiers", i))
		}
	}
	return errors.Join(errs...)
}

// userSystem is the namespace :user_id binds to in instance name.
func (c Config) userSystem(name string) string {
	if c.UserIDSystem != "" {
		return c.UserIDSystem
	}
	return name
}

// Plan implements connectors.Planner. Each kind the statements use is a
// requirement of its own, so by default the instance is searched only once
// the subject has every identifier its statements bind; the instance's
// `keys:` in Lethe's config can relax that (keys: [email] runs the phone
// statements only when a phone is known). Uses adds the verify queries'
// kinds; ResolveBy and Gives come from the resolve queries.
//
//	statements: [{sql: "DELETE FROM customers WHERE email = :email OR phone = :phone"}]
//	// Plan("shop") = Keys [[email] [phone]], Uses [email phone]
func (c Config) Plan(name string) connectors.Plan {
	sys := c.userSystem(name)
	var p connectors.Plan
	statements, _ := compile(c.Driver, sys, "statements", "statement", c.Statements)
	for _, k := range kindsOf(statements) {
		p.Keys = append(p.Keys, connectors.Requirement{k})
		p.Uses = append(p.Uses, k)
	}
	verify, _ := compile(c.Driver, sys, "verify", "verify", c.Verify)
	p.Uses = append(p.Uses, kindsOf(verify)...)
	resolve, _ := compileResolve(c.Driver, sys, c.Resolve)
	for _, q := range resolve {
		p.ResolveBy = append(p.ResolveBy, q.kinds...)
		for _, col := range q.columns {
			p.Gives = append(p.Gives, col.kind)
		}
	}
	return p
}

// kindsOf lists the kinds the statements bind, each once, in kind order.
func kindsOf(list []stmt) []connectors.Kind {
	var out []connectors.Kind
	for _, st := range list {
		for _, k := range st.kinds {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	erasure.SortKinds(out)
	return out
}

// stmt is a Statement rewritten for its driver.
type stmt struct {
	name  string
	query string
	kinds []connectors.Kind // the kind bound to each driver parameter
}

// kindOf is the kind of identifier placeholder p binds, with :user_id
// bound to namespace sys.
func kindOf(p, sys string) connectors.Kind {
	switch p {
	case phEmail:
		return connectors.Email
	case phPhone:
		return connectors.Phone
	case phUserID:
		return connectors.UserIDKind(sys)
	}
	return connectors.Kind(p) // "user_ids.<namespace>", checked by rewrite
}

// compile names and rewrites a list of statements; key is its config key
// and sys the namespace :user_id binds to. With an unknown driver it checks
// only names and emptiness.
func compile(drv, sys, key, defaultName string, list []Statement) ([]stmt, error) {
	var errs []error
	seen := map[string]bool{}
	out := make([]stmt, 0, len(list))
	for i, s := range list {
		at := fmt.Sprintf("%s[%d]", key, i)
		st, err := compileOne(drv, sys, at, s.Name, s.SQL, fmt.Sprintf("%s %d", defaultName, i+1))
		if err == nil && seen[st.name] {
			err = fmt.Errorf("%s.name: %q is used twice", at, st.name)
		}
		seen[st.name] = true
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

func compileOne(drv, sys, at, name, query, defaultName string) (stmt, error) {
	st := stmt{name: strings.TrimSpace(name)}
	if st.name == "" {
		st.name = defaultName
	}
	if strings.TrimSpace(query) == "" {
		return st, fmt.Errorf("%s.sql: required", at)
	}
	switch drv {
	case driverPostgres, driverMySQL, driverSQLite:
	default:
		return st, nil
	}
	text, params, err := rewrite(drv, query)
	if err != nil {
		return st, fmt.Errorf("%s.sql: %w", at, err)
	}
	if len(params) == 0 {
		return st, fmt.Errorf("%s.sql: has no %s placeholder, so it would touch the same rows for every subject", at, placeholders)
	}
	st.query = text
	for _, p := range params {
		st.kinds = append(st.kinds, kindOf(p, sys))
	}
	return st, nil
}

// resolveQuery is a ResolveQuery rewritten for its driver.
type resolveQuery struct {
	stmt
	columns []resultColumn // in column-name order
}

// resultColumn is a result column of a resolve query and the kind of
// identifier it holds.
type resultColumn struct {
	name string
	kind connectors.Kind
}

// compileResolve checks and rewrites the resolve queries.
func compileResolve(drv, sys string, list []ResolveQuery) ([]resolveQuery, error) {
	var errs []error
	seen := map[string]bool{}
	out := make([]resolveQuery, 0, len(list))
	for i, q := range list {
		at := fmt.Sprintf("resolve[%d]", i)
		var rq resolveQuery
		var bad []error
		st, err := compileOne(drv, sys, at, q.Name, q.SQL, fmt.Sprintf("resolve %d", i+1))
		if err != nil {
			bad = append(bad, err)
		} else if seen[st.name] {
			bad = append(bad, fmt.Errorf("%s.name: %q is used twice", at, st.name))
		} else if !readsOnly(q.SQL) {
			bad = append(bad, fmt.Errorf("%s.sql: must be a SELECT (or WITH … SELECT): resolve queries only read", at))
		}
		seen[st.name] = true
		rq.stmt = st
		if len(q.Kinds) == 0 {
			bad = append(bad, fmt.Errorf("%s.kinds: at least one result column and the kind of identifier it holds, e.g. {id: user_ids.customer}", at))
		}
		cols := make([]string, 0, len(q.Kinds))
		for col := range q.Kinds {
			cols = append(cols, col)
		}
		slices.Sort(cols)
		for _, col := range cols {
			name := strings.TrimSpace(col)
			if name == "" {
				bad = append(bad, fmt.Errorf("%s.kinds: a column name is empty", at))
				continue
			}
			k, err := erasure.ParseKind(q.Kinds[col])
			if err != nil {
				bad = append(bad, fmt.Errorf("%s.kinds.%s: %q is not an identifier kind: use email, phone or user_ids.<namespace>", at, name, q.Kinds[col]))
				continue
			}
			if slices.ContainsFunc(rq.columns, func(c resultColumn) bool { return strings.EqualFold(c.name, name) }) {
				bad = append(bad, fmt.Errorf("%s.kinds.%s: the column is named twice", at, name))
				continue
			}
			rq.columns = append(rq.columns, resultColumn{name: name, kind: k})
		}
		if len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		out = append(out, rq)
	}
	return out, errors.Join(errs...)
}

// readsOnly reports whether query starts with SELECT or WITH, after
// comments and parentheses. It is a guard against mistakes, not a parser:
// PostgreSQL and MySQL also run resolve queries in read-only transactions.
func readsOnly(query string) bool {
	q := query
	for {
		q = strings.TrimLeft(q, " \t\r\n(")
		switch {
		case strings.HasPrefix(q, "--"), strings.HasPrefix(q, "#"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return false
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q, "*/")
			if i < 0 {
				return false
			}
			q = q[i+2:]
		default:
			return startsWithWord(q, "SELECT") || startsWithWord(q, "WITH")
		}
	}
}

func startsWithWord(q, word string) bool {
	return len(q) > len(word) && strings.EqualFold(q[:len(word)], word) && !isIdent(q[len(word)])
}

// scanKind is the kind of a scan query's identifiers: email, phone,
// user_id (the instance's namespace) or user_ids.<namespace>.
func scanKind(kind, sys string) (connectors.Kind, error) {
	if kind == phUserID {
		return connectors.UserIDKind(sys), nil
	}
	k, err := erasure.ParseKind(kind)
	if err != nil || strings.TrimSpace(kind) != kind {
		return "", errors.New("must be email, phone, user_id or user_ids.<namespace>")
	}
	return k, nil
}

package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/connectors"
)

// sampleRows is how many non-null values of a column discovery reads.
const sampleRows = 200

// column is one column of the catalogue.
type column struct {
	table, name, typ string
}

// foreignKey is a column referring to another table.
type foreignKey struct {
	table, column, refTable, onDelete string
}

// Discover implements connectors.Discoverer: it reads the catalogue
// (tables, columns, foreign keys) of the database, samples the text
// columns, and reports each column that holds personal data and whether
// the instance's statements erase it. Values are read to be classified
// and never leave this function.
func (c *conn) Discover(ctx context.Context, progress func(connectors.DiscoveryProgress)) (connectors.Coverage, error) {
	var out connectors.Coverage
	cols, fks, err := c.catalogue(ctx)
	if err != nil {
		return out, err
	}
	rules := c.rules(fks)
	tables := tablesOf(cols)
	for i, table := range tables {
		if progress != nil {
			progress(connectors.DiscoveryProgress{Done: i, Total: len(tables), Unit: "tables"})
		}
		for _, col := range cols {
			if col.table != table {
				continue
			}
			out.Places++
			f, ok, err := c.classify(ctx, col)
			if err != nil {
				return out, err
			}
			if ok {
				rules.judge(&f, table, col.name)
				out.Findings = append(out.Findings, f)
			}
		}
	}
	out.Findings = append(out.Findings, rules.references(fks, out.Findings)...)
	if progress != nil {
		progress(connectors.DiscoveryProgress{Done: len(tables), Total: len(tables), Unit: "tables"})
	}
	out.Sort()
	return out, nil
}

func tablesOf(cols []column) []string {
	var out []string
	for _, c := range cols {
		if !slices.Contains(out, c.table) {
			out = append(out, c.table)
		}
	}
	slices.Sort(out)
	return out
}

// catalogue reads the columns and foreign keys of the connection's
// schema (PostgreSQL: the current schema; MySQL: the current database).
func (c *conn) catalogue(ctx context.Context) ([]column, []foreignKey, error) {
	var colQ, fkQ string
	switch c.driver {
	case driverPostgres:
		colQ = `SELECT table_name, column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
		fkQ = `SELECT kcu.table_name, kcu.column_name, ccu.table_name, rc.delete_rule
			FROM information_schema.referential_constraints rc
			JOIN information_schema.key_column_usage kcu ON kcu.constraint_schema = rc.constraint_schema AND kcu.constraint_name = rc.constraint_name
			JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_schema = rc.unique_constraint_schema AND ccu.constraint_name = rc.unique_constraint_name
			WHERE kcu.table_schema = current_schema()`
	case driverMySQL:
		colQ = `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION`
		fkQ = `SELECT kcu.TABLE_NAME, kcu.COLUMN_NAME, kcu.REFERENCED_TABLE_NAME, rc.DELETE_RULE
			FROM information_schema.KEY_COLUMN_USAGE kcu
			JOIN information_schema.REFERENTIAL_CONSTRAINTS rc ON rc.CONSTRAINT_SCHEMA = kcu.CONSTRAINT_SCHEMA AND rc.CONSTRAINT_NAME = kcu.CONSTRAINT_NAME
			WHERE kcu.TABLE_SCHEMA = DATABASE() AND kcu.REFERENCED_TABLE_NAME IS NOT NULL`
	default:
		colQ = `SELECT m.name, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`
		fkQ = `SELECT m.name, f."from", f."table", f.on_delete FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
			WHERE m.type = 'table'`
	}
	var cols []column
	if err := c.queryRows(ctx, colQ, func(r *sql.Rows) error {
		var col column
		if err := r.Scan(&col.table, &col.name, &col.typ); err != nil {
			return err
		}
		cols = append(cols, col)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("discover: reading the catalogue: %w", err)
	}
	var fks []foreignKey
	if err := c.queryRows(ctx, fkQ, func(r *sql.Rows) error {
		var fk foreignKey
		if err := r.Scan(&fk.table, &fk.column, &fk.refTable, &fk.onDelete); err != nil {
			return err
		}
		fk.onDelete = strings.ToUpper(fk.onDelete)
		fks = append(fks, fk)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("discover: reading foreign keys: %w", err)
	}
	return cols, fks, nil
}

func (c *conn) queryRows(ctx context.Context, q string, each func(*sql.Rows) error, args ...any) error {
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// quote quotes an identifier for the driver.
func (c *conn) quote(id string) string {
	if c.driver == driverMySQL {
		return "`" + strings.ReplaceAll(id, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(id, `"`, `""`) + `"`
}

var (
	emailRe       = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	emailInTextRe = regexp.MustCompile(`[^@\s<>"'(),;:]+@[^@\s<>"'(),;:]+\.[a-zA-Z]{2,}`)
	phoneRe       = regexp.MustCompile(`^\+?[0-9][0-9 ().-]{6,18}[0-9]$`)
	dateLikeRe    = regexp.MustCompile(`^[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|^[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4}$`)
	nameColumns   = []string{"name", "full_name", "first_name", "last_name", "surname", "given_name", "family_name", "middle_name",
		"maiden_name", "display_name", "customer_name", "contact_name", "billing_name", "shipping_name", "recipient_name"}
	emailColumns = []string{"email", "e_mail", "email_address", "mail"}
	phoneColumns = []string{"phone", "phone_number", "mobile", "telephone", "tel", "cell"}
	ipColumns    = []string{"ip", "ip_address", "ipaddress", "remote_addr", "remote_ip", "client_ip", "last_ip", "last_login_ip"}
)

// textual reports whether a column's type holds text worth sampling.
func textual(typ string) bool {
	t := strings.ToLower(typ)
	for _, s := range []string{"char", "text", "clob", "json", "inet", "cidr", "string"} {
		if strings.Contains(t, s) {
			return true
		}
	}
	return t == "" // SQLite: a column without a declared type holds anything
}

// classify samples a column and says whether it holds personal data, and
// of which kind: by its values (most look like an email, a phone number
// or an IP address; or some are text with an email inside), else by its
// name.
func (c *conn) classify(ctx context.Context, col column) (connectors.Finding, bool, error) {
	f := connectors.Finding{Place: col.table + "." + col.name}
	if textual(col.typ) {
		q := fmt.Sprintf("SELECT %[1]s FROM %[2]s WHERE %[1]s IS NOT NULL LIMIT %[3]d", c.quote(col.name), c.quote(col.table), sampleRows)
		var email, phone, ip, inText int64
		err := c.queryRows(ctx, q, func(r *sql.Rows) error {
			var v sql.NullString
			if err := r.Scan(&v); err != nil {
				return err
			}
			s := strings.TrimSpace(v.String)
			if s == "" {
				return nil
			}
			f.Sampled++
			switch {
			case emailRe.MatchString(s):
				email++
			case isIP(s):
				ip++
			case phoneRe.MatchString(s) && !dateLikeRe.MatchString(s):
				phone++
			case emailInTextRe.MatchString(s):
				inText++
			}
			return nil
		})
		if err != nil {
			// The query names only catalogue identifiers; the driver's
			// message quotes no value.
			return f, false, fmt.Errorf("discover: sampling %s: %w", f.Place, err)
		}
		half := (f.Sampled + 1) / 2
		switch {
		case f.Sampled > 0 && email >= half:
			f.Kind, f.Matched = connectors.DataEmail, email
		case f.Sampled > 0 && phone >= half:
			f.Kind, f.Matched = connectors.DataPhone, phone
		case f.Sampled > 0 && ip >= half:
			f.Kind, f.Matched = connectors.DataIP, ip
		case inText+email > 0:
			f.Kind, f.Matched = connectors.DataFreeText, inText+email
		}
		if f.Kind != "" {
			return f, true, nil
		}
	}
	name := strings.ToLower(col.name)
	switch {
	case slices.Contains(emailColumns, name):
		f.Kind = connectors.DataEmail
	case slices.Contains(phoneColumns, name):
		f.Kind = connectors.DataPhone
	case slices.Contains(ipColumns, name):
		f.Kind = connectors.DataIP
	case slices.Contains(nameColumns, name):
		f.Kind = connectors.DataName
	default:
		return f, false, nil
	}
	f.Matched = 0 // by name, not by value
	return f, true, nil
}

func isIP(s string) bool {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().IsValid()
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// rules is what the instance's statements and resolvers touch.
type rules struct {
	ignore []connectors.Ignore
	// deletes: table → the statement deleting its rows.
	deletes map[string]string
	// deleted: table → what deletes its rows for the person: a statement,
	// or the database cascading a statement's delete.
	deleted map[string]string
	// sets: table → column → the statement overwriting it.
	sets map[string]map[string]string
	// reads: table → the resolve queries reading it.
	reads map[string][]string
	// touches: table → statements naming it at all.
	touches map[string][]string
}

var (
	deleteRe = regexp.MustCompile(`(?is)^\s*DELETE\s+FROM\s+([\w."` + "`" + `]+)`)
	updateRe = regexp.MustCompile(`(?is)^\s*UPDATE\s+([\w."` + "`" + `]+)\s+SET\s+(.+?)(?:\s+WHERE\s|$)`)
	tableRe  = regexp.MustCompile(`(?i)\b(?:FROM|JOIN|UPDATE|INTO)\s+([\w."` + "`" + `]+)`)
)

// bareName is an identifier without quotes or schema, lower-cased.
func bareName(id string) string {
	id = strings.Trim(id, "\"`")
	if i := strings.LastIndexByte(id, '.'); i >= 0 {
		id = id[i+1:]
	}
	return strings.ToLower(strings.Trim(id, "\"`"))
}

func (c *conn) rules(fks []foreignKey) rules {
	r := rules{ignore: c.ignore, deletes: map[string]string{}, sets: map[string]map[string]string{},
		reads: map[string][]string{}, touches: map[string][]string{}}
	for _, st := range c.statements {
		if m := deleteRe.FindStringSubmatch(st.query); m != nil {
			t := bareName(m[1])
			if _, ok := r.deletes[t]; !ok {
				r.deletes[t] = st.name
			}
		}
		if m := updateRe.FindStringSubmatch(st.query); m != nil {
			t := bareName(m[1])
			if r.sets[t] == nil {
				r.sets[t] = map[string]string{}
			}
			for _, a := range splitTop(m[2]) {
				if col, _, ok := strings.Cut(a, "="); ok {
					r.sets[t][bareName(strings.TrimSpace(col))] = st.name
				}
			}
		}
		for _, m := range tableRe.FindAllStringSubmatch(st.query, -1) {
			r.touches[bareName(m[1])] = append(r.touches[bareName(m[1])], st.name)
		}
	}
	for _, q := range c.resolve {
		for _, m := range tableRe.FindAllStringSubmatch(q.query, -1) {
			r.reads[bareName(m[1])] = append(r.reads[bareName(m[1])], q.name)
		}
	}
	r.deleted = map[string]string{}
	for t, st := range r.deletes {
		r.deleted[t] = fmt.Sprintf("statement %q", st)
	}
	for changed := true; changed; { // cascades, to a fixed point
		changed = false
		for _, fk := range fks {
			from, to := strings.ToLower(fk.table), strings.ToLower(fk.refTable)
			if _, ok := r.deleted[to]; ok && fk.onDelete == "CASCADE" {
				if _, done := r.deleted[from]; !done {
					r.deleted[from] = "ON DELETE CASCADE from " + fk.refTable
					changed = true
				}
			}
		}
	}
	return r
}

// splitTop splits a SET list at commas outside parentheses and quotes.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '\'' || ch == '"' || ch == '`':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		case ch == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// judge sets a finding's status and reason from the rules.
func (r rules) judge(f *connectors.Finding, table, col string) {
	t, cl := strings.ToLower(table), strings.ToLower(col)
	if ig, ok := connectors.IgnoreFor(r.ignore, f.Place); ok {
		f.Status, f.Reason = connectors.Ignored, "ignored: "+ig.Reason
		return
	}
	if by, ok := r.deleted[t]; ok {
		f.Status, f.Reason = connectors.Covered, "the row is deleted by "+by
		return
	}
	if st, ok := r.sets[t][cl]; ok {
		f.Status, f.Reason = connectors.Covered, fmt.Sprintf("overwritten by statement %q", st)
		return
	}
	f.Status = connectors.Uncovered
	switch {
	case len(r.touches[t]) > 0:
		f.Reason = fmt.Sprintf("statement %q touches %s but not this column", r.touches[t][0], table)
	case len(r.reads[t]) > 0:
		f.Reason = fmt.Sprintf("read by resolver %q; no statement erases it", r.reads[t][0])
	default:
		f.Reason = "no statement touches " + table
	}
}

// references reports the foreign keys into tables whose rows a statement
// deletes, from tables no statement deletes: the referring rows stay,
// pointing at the person's deleted row, unless the database cascades the
// delete, nulls the reference, or a statement overwrites it.
func (r rules) references(fks []foreignKey, found []connectors.Finding) []connectors.Finding {
	deleted := r.deleted
	var out []connectors.Finding
	for _, fk := range fks {
		from, to := strings.ToLower(fk.table), strings.ToLower(fk.refTable)
		by, ok := deleted[to]
		if !ok || slices.ContainsFunc(found, func(f connectors.Finding) bool { return strings.EqualFold(f.Place, fk.table+"."+fk.column) }) {
			continue
		}
		f := connectors.Finding{Place: fk.table + "." + fk.column, Kind: connectors.DataReference}
		if ig, ok := connectors.IgnoreFor(r.ignore, f.Place); ok {
			f.Status, f.Reason = connectors.Ignored, "ignored: "+ig.Reason
			out = append(out, f)
			continue
		}
		switch how, gone := deleted[from]; {
		case gone:
			f.Status, f.Reason = connectors.Covered, fmt.Sprintf("refers to %s; its rows are deleted by %s", fk.refTable, how)
		case fk.onDelete == "SET NULL":
			f.Status, f.Reason = connectors.Covered, fmt.Sprintf("refers to %s (deleted by %s); the database sets it to NULL", fk.refTable, by)
		case r.sets[from][strings.ToLower(fk.column)] != "":
			f.Status, f.Reason = connectors.Covered, fmt.Sprintf("refers to %s; overwritten by statement %q", fk.refTable, r.sets[from][strings.ToLower(fk.column)])
		default:
			f.Status, f.Reason = connectors.Uncovered, fmt.Sprintf("refers to %s, whose rows %s deletes; no statement handles %s (ON DELETE %s)",
				fk.refTable, by, fk.table, fk.onDelete)
		}
		out = append(out, f)
	}
	return out
}

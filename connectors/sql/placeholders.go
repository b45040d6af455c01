package sqlconn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// Placeholder names a statement may use; each binds one identifier of the
// subject. :user_ids.<namespace> binds Subject.UserIDs[namespace].
const (
	phEmail   = "email"
	phPhone   = "phone"
	phUserID  = "user_id"
	phUserIDs = "user_ids"
)

// placeholders is how error messages name the placeholders.
const placeholders = ":email, :phone, :user_id or :user_ids.<namespace>"

// isPlaceholder reports whether name (after the colon) is a placeholder;
// a "user_ids.<namespace>" name must have had its namespace checked.
func isPlaceholder(name string) bool {
	return name == phEmail || name == phPhone || name == phUserID || strings.HasPrefix(name, phUserIDs+".")
}

// namespaceEnd returns the end of the namespace that starts at q[i], after
// ":user_ids.": a run of identifier characters, dots (refused later, but
// reported whole) and hyphens that join two such characters, so that
// :user_ids.shop-db is one placeholder and :user_ids.app--x a placeholder
// and a comment.
func namespaceEnd(q string, i int) int {
	for i < len(q) {
		switch c := q[i]; {
		case isIdent(c), c == '.':
			i++
		case c == '-' && i+1 < len(q) && isIdent(q[i+1]):
			i++
		default:
			return i
		}
	}
	return i
}

// userIDsPlaceholder checks the namespace of a :user_ids.<namespace>
// placeholder and returns the placeholder's name, "user_ids.<namespace>".
func userIDsPlaceholder(ns string) (string, error) {
	if ns == "" {
		return "", errors.New(":user_ids needs a namespace, the key of subject.user_ids: :user_ids.<namespace>, e.g. :user_ids.app")
	}
	k, err := erasure.ParseKind(phUserIDs + "." + ns)
	if err != nil {
		return "", fmt.Errorf(":user_ids.%s: %q is not a user id namespace: use lower-case letters, digits, '-' or '_', starting with a letter or digit (the key of subject.user_ids)", ns, ns)
	}
	return string(k), nil
}

// rewrite turns the :email, :phone, :user_id and :user_ids.<namespace>
// placeholders of query into the driver's own parameters ($1… for
// postgres, ? for mysql and sqlite) and returns the new text with the
// placeholder that binds each parameter, in order ("email", "phone",
// "user_id", "user_ids.<namespace>"). String literals, quoted identifiers, comments and PostgreSQL ::casts
// are copied untouched. Parameters written in the driver's own syntax are
// refused: the connector supplies every argument, so a stray one would bind
// nothing (or the wrong value).
//
//	rewrite("postgres", "DELETE FROM t WHERE a = :email OR b = :user_ids.app OR c = :email")
//	// "DELETE FROM t WHERE a = $1 OR b = $2 OR c = $1", ["email", "user_ids.app"]
func rewrite(driver, query string) (string, []string, error) {
	var (
		out    strings.Builder
		params []string
		pgNum  = map[string]int{} // postgres reuses $n for a repeated name
	)
	q := query
	for i := 0; i < len(q); {
		c := q[i]
		next := byte(0)
		if i+1 < len(q) {
			next = q[i+1]
		}
		var end int // when set, q[i:end] is copied verbatim
		switch {
		case c == '\'':
			backslash := driver == driverMySQL ||
				driver == driverPostgres && i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i < 2 || !isIdent(q[i-2]))
			end = skipQuoted(q, i, '\'', backslash)
		case c == '"':
			end = skipQuoted(q, i, '"', driver == driverMySQL)
		case c == '`' && driver != driverPostgres:
			end = skipQuoted(q, i, '`', false)
		case c == '[' && driver == driverSQLite:
			end = skipTo(q, i+1, "]")
		case c == '-' && next == '-', c == '#' && driver == driverMySQL:
			if end = strings.IndexByte(q[i:], '\n'); end < 0 {
				end = len(q)
			} else {
				end += i + 1
			}
		case c == '/' && next == '*':
			end = skipBlockComment(q, i, driver == driverPostgres)
		case c == '$' && driver == driverPostgres && (i == 0 || !isIdent(q[i-1])):
			if isDigit(next) {
				return "", nil, errors.New("positional parameters such as $1 are not allowed; use " + placeholders)
			}
			end = skipDollarQuoted(q, i)
		case c == ':' && next == ':':
			end = i + 2 // a PostgreSQL cast: x::text
		case c == ':' && (isIdentStart(next) || driver == driverSQLite && isIdent(next)):
			j := i + 1
			for j < len(q) && isIdent(q[j]) {
				j++
			}
			name := q[i+1 : j]
			if strings.EqualFold(name, phUserIDs) {
				if name != phUserIDs || j >= len(q) || q[j] != '.' {
					return "", nil, fmt.Errorf(":%s is not a placeholder; write :user_ids.<namespace>, in lower case", name)
				}
				end := namespaceEnd(q, j+1)
				var err error
				if name, err = userIDsPlaceholder(q[j+1 : end]); err != nil {
					return "", nil, err
				}
				j = end
			} else if !isPlaceholder(name) && isPlaceholder(strings.ToLower(name)) {
				return "", nil, fmt.Errorf(":%s is not a placeholder; placeholders are lower case: :%s", name, strings.ToLower(name))
			}
			switch {
			case isPlaceholder(name) && driver == driverPostgres:
				n, ok := pgNum[name]
				if !ok {
					params = append(params, name)
					n = len(params)
					pgNum[name] = n
				}
				out.WriteString("$" + strconv.Itoa(n))
			case isPlaceholder(name):
				params = append(params, name)
				out.WriteByte('?')
			case driver == driverSQLite:
				// SQLite would bind NULL to it, silently matching nothing.
				return "", nil, fmt.Errorf(":%s is not a placeholder; use %s", name, placeholders)
			default:
				out.WriteString(q[i:j])
			}
			i = j
			continue
		case c == '?' && driver != driverPostgres:
			return "", nil, errors.New("positional parameters (?) are not allowed; use " + placeholders)
		case (c == '@' || c == '$') && driver == driverSQLite && isIdent(next):
			return "", nil, fmt.Errorf("%c-parameters are not allowed; use %s", c, placeholders)
		default:
			out.WriteByte(c)
			i++
			continue
		}
		if end < 0 {
			return "", nil, fmt.Errorf("unterminated %s", describe(c))
		}
		out.WriteString(q[i:end])
		i = end
	}
	return out.String(), params, nil
}

// skipQuoted returns the index just past the quote that closes the one at
// q[i], where a doubled quote (and, if backslash, \x) is an escape; -1 if
// it never closes.
func skipQuoted(q string, i int, quote byte, backslash bool) int {
	for j := i + 1; j < len(q); j++ {
		switch {
		case backslash && q[j] == '\\':
			j++
		case q[j] == quote && j+1 < len(q) && q[j+1] == quote:
			j++
		case q[j] == quote:
			return j + 1
		}
	}
	return -1
}

// skipTo returns the index just past the first end at or after i, or -1.
func skipTo(q string, i int, end string) int {
	if k := strings.Index(q[i:], end); k >= 0 {
		return i + k + len(end)
	}
	return -1
}

// skipBlockComment skips a /* */ comment; PostgreSQL comments nest.
func skipBlockComment(q string, i int, nested bool) int {
	depth := 0
	for j := i; j+1 < len(q); j++ {
		switch {
		case q[j] == '/' && q[j+1] == '*' && (nested || depth == 0):
			depth++
			j++
		case q[j] == '*' && q[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}

// skipDollarQuoted skips a PostgreSQL $tag$…$tag$ string starting at q[i];
// a $ that does not open one is copied as a single byte.
func skipDollarQuoted(q string, i int) int {
	j := i + 1
	for j < len(q) && isIdent(q[j]) && q[j] != '$' {
		j++
	}
	if j >= len(q) || q[j] != '$' || (j > i+1 && !isIdentStart(q[i+1])) {
		return i + 1
	}
	tag := q[i : j+1]
	return skipTo(q, j+1, tag)
}

func describe(c byte) string {
	switch c {
	case '\'':
		return "string literal"
	case '"', '`', '[':
		return "quoted identifier"
	case '$':
		return "dollar-quoted string"
	}
	return "comment"
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

// isIdent reports whether c may continue an identifier ($ may, in PostgreSQL).
func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

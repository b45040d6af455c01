package sqlconn

import (
	"slices"
	"strings"
	"testing"
)

func TestRewrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, driver, in, want string
		params                 []string
	}{
		{"postgres numbers", "postgres",
			"DELETE FROM t WHERE email = :email AND phone = :phone",
			"DELETE FROM t WHERE email = $1 AND phone = $2", []string{"email", "phone"}},
		{"postgres reuses a repeated placeholder", "postgres",
			"UPDATE t SET x = NULL WHERE a = :email OR b = :user_id OR c = :email",
			"UPDATE t SET x = NULL WHERE a = $1 OR b = $2 OR c = $1", []string{"email", "user_id"}},
		{"mysql repeats a repeated placeholder", "mysql",
			"DELETE FROM t WHERE a = :email OR b = :email",
			"DELETE FROM t WHERE a = ? OR b = ?", []string{"email", "email"}},
		{"sqlite", "sqlite",
			"DELETE FROM t WHERE id = :user_id",
			"DELETE FROM t WHERE id = ?", []string{"user_id"}},
		{"string literal with doubled quote", "postgres",
			"DELETE FROM t WHERE note <> 'it''s :email' AND email = :email",
			"DELETE FROM t WHERE note <> 'it''s :email' AND email = $1", []string{"email"}},
		{"mysql backslash escape", "mysql",
			`DELETE FROM t WHERE note <> 'it\'s :phone' AND email = :email`,
			`DELETE FROM t WHERE note <> 'it\'s :phone' AND email = ?`, []string{"email"}},
		{"postgres E string", "postgres",
			`DELETE FROM t WHERE note <> E'it\'s :phone' AND email = :email`,
			`DELETE FROM t WHERE note <> E'it\'s :phone' AND email = $1`, []string{"email"}},
		{"postgres standard string ends at a backslash", "postgres",
			`DELETE FROM t WHERE note <> 'C:\' AND email = :email`,
			`DELETE FROM t WHERE note <> 'C:\' AND email = $1`, []string{"email"}},
		{"double-quoted identifier", "postgres",
			`DELETE FROM "odd "":email"" table" WHERE email = :email`,
			`DELETE FROM "odd "":email"" table" WHERE email = $1`, []string{"email"}},
		{"backtick identifier", "mysql",
			"DELETE FROM `a:phone` WHERE email = :email",
			"DELETE FROM `a:phone` WHERE email = ?", []string{"email"}},
		{"sqlite bracket identifier", "sqlite",
			"DELETE FROM [a:phone] WHERE email = :email",
			"DELETE FROM [a:phone] WHERE email = ?", []string{"email"}},
		{"line comment", "postgres",
			"DELETE FROM t -- not :phone\nWHERE email = :email",
			"DELETE FROM t -- not :phone\nWHERE email = $1", []string{"email"}},
		{"mysql hash comment", "mysql",
			"DELETE FROM t # not :phone\nWHERE email = :email",
			"DELETE FROM t # not :phone\nWHERE email = ?", []string{"email"}},
		{"block comment", "mysql",
			"DELETE /* :phone */ FROM t WHERE email = :email",
			"DELETE /* :phone */ FROM t WHERE email = ?", []string{"email"}},
		{"nested postgres comment", "postgres",
			"DELETE /* a /* :phone */ :user_id */ FROM t WHERE email = :email",
			"DELETE /* a /* :phone */ :user_id */ FROM t WHERE email = $1", []string{"email"}},
		{"casts", "postgres",
			"DELETE FROM t WHERE id = :user_id::bigint AND e::text = :email::text",
			"DELETE FROM t WHERE id = $1::bigint AND e::text = $2::text", []string{"user_id", "email"}},
		{"cast to a type named like a placeholder", "postgres",
			"DELETE FROM t WHERE c::email = :email",
			"DELETE FROM t WHERE c::email = $1", []string{"email"}},
		{"dollar-quoted string", "postgres",
			"DELETE FROM t WHERE note <> $q$ :phone ' $q$ AND email = :email",
			"DELETE FROM t WHERE note <> $q$ :phone ' $q$ AND email = $1", []string{"email"}},
		{"other names are left alone", "postgres",
			"DELETE FROM t WHERE email = :email AND x = :emails",
			"DELETE FROM t WHERE email = $1 AND x = :emails", []string{"email"}},
		{"mysql assignment", "mysql",
			"UPDATE t SET n = (@c := 1) WHERE email = :email",
			"UPDATE t SET n = (@c := 1) WHERE email = ?", []string{"email"}},
		{"postgres user id namespaces", "postgres",
			"DELETE FROM t WHERE app = :user_ids.app OR crm = :user_ids.crm OR again = :user_ids.app OR mine = :user_id",
			"DELETE FROM t WHERE app = $1 OR crm = $2 OR again = $1 OR mine = $3", []string{"user_ids.app", "user_ids.crm", "user_id"}},
		{"postgres cast after a namespace", "postgres",
			"DELETE FROM t WHERE id::text = :user_ids.app::text AND e = :email",
			"DELETE FROM t WHERE id::text = $1::text AND e = $2", []string{"user_ids.app", "email"}},
		{"mysql user id namespaces", "mysql",
			"DELETE FROM t WHERE app = :user_ids.app OR again = :user_ids.app",
			"DELETE FROM t WHERE app = ? OR again = ?", []string{"user_ids.app", "user_ids.app"}},
		{"sqlite user id namespace", "sqlite",
			"DELETE FROM t WHERE app = :user_ids.app",
			"DELETE FROM t WHERE app = ?", []string{"user_ids.app"}},
		{"namespace with hyphens and digits", "postgres",
			"DELETE FROM t WHERE a = :user_ids.shop-db AND b = :user_ids.v2_x-9",
			"DELETE FROM t WHERE a = $1 AND b = $2", []string{"user_ids.shop-db", "user_ids.v2_x-9"}},
		{"namespace then a comment", "mysql",
			"DELETE FROM t WHERE a = :user_ids.app-- :phone\n",
			"DELETE FROM t WHERE a = ?-- :phone\n", []string{"user_ids.app"}},
		{"namespace in parentheses", "sqlite",
			"DELETE FROM t WHERE a IN (:user_ids.app,:email)",
			"DELETE FROM t WHERE a IN (?,?)", []string{"user_ids.app", "email"}},
		{"user_ids in literals and comments", "postgres",
			"DELETE FROM t /* :user_ids.App */ WHERE note <> ':user_ids.' AND a = :user_ids.app -- :user_ids",
			"DELETE FROM t /* :user_ids.App */ WHERE note <> ':user_ids.' AND a = $1 -- :user_ids", []string{"user_ids.app"}},
		{"no placeholder", "postgres",
			"DELETE FROM t WHERE note = ':email'",
			"DELETE FROM t WHERE note = ':email'", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, params, err := rewrite(tt.driver, tt.in)
			if err != nil {
				t.Fatalf("rewrite: %v", err)
			}
			if got != tt.want {
				t.Errorf("rewrite =\n  %s\nwant\n  %s", got, tt.want)
			}
			if !slices.Equal(params, tt.params) {
				t.Errorf("params = %q, want %q", params, tt.params)
			}
		})
	}
}

func TestRewriteRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, driver, in, want string }{
		{"unterminated literal", "postgres", "DELETE FROM t WHERE e = ':email", "unterminated string literal"},
		{"unterminated identifier", "mysql", "DELETE FROM `t WHERE e = :email", "unterminated quoted identifier"},
		{"unterminated comment", "postgres", "DELETE FROM t /* WHERE e = :email", "unterminated comment"},
		{"unterminated dollar quote", "postgres", "DELETE FROM t WHERE e = $x$ :email", "unterminated dollar-quoted string"},
		{"postgres positional", "postgres", "DELETE FROM t WHERE e = $1 OR f = :email", "positional"},
		{"mysql positional", "mysql", "DELETE FROM t WHERE e = ? OR f = :email", "positional"},
		{"sqlite positional", "sqlite", "DELETE FROM t WHERE e = ?1 OR f = :email", "positional"},
		{"sqlite unknown named parameter", "sqlite", "DELETE FROM t WHERE e = :emial", ":emial is not a placeholder"},
		{"sqlite at parameter", "sqlite", "DELETE FROM t WHERE e = @email", "@-parameters"},
		{"user_ids without a namespace", "postgres", "DELETE FROM t WHERE e = :user_ids", "write :user_ids.<namespace>"},
		{"user_ids with an empty namespace", "mysql", "DELETE FROM t WHERE e = :user_ids. AND f = :email", ":user_ids needs a namespace"},
		{"upper-case namespace", "postgres", "DELETE FROM t WHERE e = :user_ids.App", `"App" is not a user id namespace`},
		{"dotted namespace", "sqlite", "DELETE FROM t WHERE e = :user_ids.a.b", `"a.b" is not a user id namespace`},
		{"namespace starting with a hyphen", "mysql", "DELETE FROM t WHERE e = :user_ids.-x", `"-x" is not a user id namespace`},
		{"namespace with a dollar", "postgres", "DELETE FROM t WHERE e = :user_ids.a$1", `"a$1" is not a user id namespace`},
		{"namespace too long", "postgres", "DELETE FROM t WHERE e = :user_ids." + strings.Repeat("a", 64), "is not a user id namespace"},
		{"non-ASCII namespace", "mysql", "DELETE FROM t WHERE e = :user_ids.café", "is not a user id namespace"},
		{"upper-case user_ids", "postgres", "DELETE FROM t WHERE e = :USER_IDS.app", "in lower case"},
		{"upper-case placeholder", "postgres", "DELETE FROM t WHERE e = :Email", "placeholders are lower case: :email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := rewrite(tt.driver, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("rewrite(%q) error = %v, want one containing %q", tt.in, err, tt.want)
			}
		})
	}
}

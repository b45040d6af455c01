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

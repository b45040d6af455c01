package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secret is a credential in the config file. It is written either inline
// (discouraged outside development), or as a reference to an environment
// variable or a file:
//
//	dsn: "postgres://…"            # inline
//	dsn: {env: SHOP_DATABASE_URL}  # from the environment
//	dsn: {file: /run/secrets/dsn}  # from a file (trailing newline trimmed)
//
// Its String method never shows the value, so a Secret can be logged or
// printed in an error without leaking it.
type Secret struct {
	Value string `yaml:"-"`
	Env   string `yaml:"env"`
	File  string `yaml:"file"`
}

// String hides the value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "[secret from env " + s.Env + "]"
	case s.File != "":
		return "[secret from file " + s.File + "]"
	case s.Value != "":
		return "[secret]"
	}
	return "[unset secret]"
}

// IsSet reports whether the secret names a value or a source.
func (s Secret) IsSet() bool { return s.Value != "" || s.Env != "" || s.File != "" }

// UnmarshalYAML accepts a plain string or {env: NAME} or {file: PATH}.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = Secret{Value: n.Value}
		return nil
	}
	type plain Secret
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	if (p.Env == "") == (p.File == "") {
		return errors.New("a secret is a string, {env: NAME} or {file: PATH}")
	}
	*s = Secret(p)
	return nil
}

// Reveal returns the secret's value. getenv reads the environment (os.Getenv
// in production, a map in tests).
func (s Secret) Reveal(getenv func(string) string) (string, error) {
	switch {
	case s.Env != "":
		v := getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty or unset", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	}
	return s.Value, nil
}

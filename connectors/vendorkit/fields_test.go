package vendorkit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// vendorConfig is a connector's Config with the shared fields inlined.
type vendorConfig struct {
	APIKey           config.Secret `yaml:"api_key"`
	vendorkit.Fields `yaml:",inline"`
	Mode             string `yaml:"mode"`
}

func TestFields(t *testing.T) {
	t.Parallel()
	rule := &vendorkit.URLRule{Default: "https://api.example.com"}
	decode := func(t *testing.T, text string) (vendorConfig, error) {
		t.Helper()
		var c vendorConfig
		if err := config.DecodeYAML([]byte(text), &c); err != nil {
			return c, err
		}
		var p vendorkit.Problems
		c.Check(&p, rule, time.Hour)
		return c, p.Err()
	}
	t.Run("inline keys are the connector's own", func(t *testing.T) {
		c, err := decode(t, "api_key: k\nbase_url: https://eu.example.com/\nuser_id_system: app\npoll_interval: 5m\nmode: x\n")
		if err != nil || c.BaseURL != "https://eu.example.com" || c.UserIDSystem != "app" || c.PollInterval != 5*time.Minute || c.Mode != "x" {
			t.Errorf("decoded %+v, %v", c, err)
		}
		if c.System("crm") != "app" || c.IDKind("crm") != connectors.UserIDKind("app") {
			t.Errorf("system %q, kind %q: want the configured key", c.System("crm"), c.IDKind("crm"))
		}
	})
	t.Run("defaults", func(t *testing.T) {
		c, err := decode(t, "api_key: k\n")
		if err != nil || c.BaseURL != "https://api.example.com" || c.PollInterval != time.Hour || c.System("crm") != "crm" {
			t.Errorf("decoded %+v, %v; want the default URL and interval, the instance's name", c, err)
		}
	})
	t.Run("unknown keys are still refused", func(t *testing.T) {
		if _, err := decode(t, "api_key: k\nbase_uri: https://x.example\n"); err == nil || !strings.Contains(err.Error(), "base_uri") {
			t.Errorf("a misspelt key: %v, want it named", err)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := decode(t, "api_key: k\nbase_url: ftp://x\nuser_id_system: A B\npoll_interval: -1s\n")
		for _, want := range []string{"base_url:", "user_id_system:", "poll_interval:"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not name %s", err, want)
			}
		}
	})
	t.Run("base_url left to the connector", func(t *testing.T) {
		f := vendorkit.Fields{BaseURL: "not a url"}
		var p vendorkit.Problems
		f.Check(&p, nil, time.Minute)
		if err := p.Err(); err != nil || f.BaseURL != "not a url" || f.PollInterval != time.Minute {
			t.Errorf("with no rule: %+v, %v; want base_url untouched", f, err)
		}
	})
}

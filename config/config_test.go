package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
)

func TestExampleIsValid(t *testing.T) {
	t.Parallel()
	c, err := config.Load("lethe.example.yaml")
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if c.Store.Driver != "postgres" || len(c.Connectors) != 3 || c.NATS.Replicas != 3 || c.Tasks.Timeout != 5*time.Minute {
		t.Errorf("example decoded wrongly: %+v", c)
	}
	type loose struct {
		Driver     string        `yaml:"driver"`
		DSN        config.Secret `yaml:"dsn"`
		Statements []any         `yaml:"statements"`
		Verify     []any         `yaml:"verify"`
		Resolve    []any         `yaml:"resolve"`
		Ignore     []any         `yaml:"ignore"`
	}
	var l loose
	if err := c.Connectors[0].Decode(&l); err != nil || l.Driver != "postgres" || l.DSN.Env != "SHOP_DATABASE_URL" {
		t.Errorf("connector config = %+v, %v", l, err)
	}
	if err := c.Connectors[0].Decode(&struct{ Driver string }{}); err == nil {
		t.Error("a connector config with unknown keys decoded without error")
	}
}

// minimal is the least a config must say.
const minimal = `
store: {driver: sqlite, url: /tmp/x.db}
nats: {url: "nats://127.0.0.1:4222"}
signing: {key: {env: K}}
subject: {hash_key: {env: H}}
encryption: {keys: [{id: k1, key: {env: KEK}}]}
`

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.Tasks.MaxAttempts != 8 || c.NATS.AckWait != time.Minute || c.Log.Format != "json" ||
		c.Retention.ShredAfter != 720*time.Hour || c.Retention.KeepRequests != config.MinKeepRequests || c.Certificates.LogOrigin != "lethe.local/log" ||
		c.Discovery.Interval != 0 || c.Discovery.Timeout != 30*time.Minute {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ yaml, want string }{
		{`store: {driver: mongo}`, "store.driver"},
		{`lsiten: ":80"`, "lsiten"},
		{`nats: {url: x, replicas: 2}`, "nats.replicas"},
		{`auth: {tokens: [{name: a, role: root, sha256: abc}]}`, "auth.tokens[0].role"},
		{`auth: {tokens: [{name: a, role: admin}]}`, "exactly one of token and sha256"},
		{`connectors: [{name: "Bad Name", type: sql}]`, "connectors[0].name"},
		{`connectors: [{name: a, type: sql}, {name: a, type: sql}]`, `"a" is used twice`},
		{`tasks: {retry_initial: 2h, retry_max: 1m}`, "tasks.retry_max"},
		{`signing: {key: {env: A, file: B}}`, "a secret is"},
		{`retention: {keep_requests: 8760h}`, "retention.keep_requests"},
		{`encryption: {keys: [{id: "a b", key: x}]}`, "encryption.keys[0].id"},
		{`nats: {url: x}`, "encryption.keys"},
		{`discovery: {interval: 30s}`, "discovery.interval: must be 0 (off) or at least 1m"},
		{`discovery: {interval: -1h}`, "discovery.interval"},
		{`discovery: {timeout: 1ms}`, "discovery.timeout"},
		{`suppression_sweep: {interval: 10ms}`, "suppression_sweep.interval: must be 0 (off) or at least 1s"},
		{`connectors: [{name: a, type: sql, recheck_after: [72h, 720h]}]`, "connectors[0].recheck_after[1]: 720h0m0s is not before retention.shred_after"},
		{`connectors: [{name: a, type: sql, recheck_after: [72h, 24h]}]`, "connectors[0].recheck_after[1]: ages must grow"},
		{`connectors: [{name: a, type: sql, recheck_after: [0s]}]`, "connectors[0].recheck_after[0]: must be at least 1s"},
		{`connectors: [{name: a, type: sql, recheck_after: [soon]}]`, "cannot unmarshal !!str `soon` into time.Duration"},
		{`connectors: [{name: a, type: segment, batch_window: -1s}]`, "connectors[0].batch_window: must be from 0s"},
		{`connectors: [{name: a, type: segment, batch_window: 1m}]`, "connectors[0].batch_window: must be from 0s"},
		{`{nats: {ack_wait: 10s}, connectors: [{name: a, type: segment, batch_window: 5s}]}`, "under half of nats.ack_wait (10s)"},
		{`connectors: [{name: a, type: segment, batch_max: 1}]`, "connectors[0].batch_max: must be 2 or more"},
		{`connectors: [{name: a, type: segment, batch_max: -5}]`, "connectors[0].batch_max"},
	} {
		_, err := config.Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.yaml, err, tc.want)
		}
	}
}

func TestRecheckAfterBeforeShredding(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(minimal + `
retention: {shred_after: 1440h}
connectors: [{name: a, type: sql, recheck_after: [72h, 720h]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Connectors[0].RecheckAfter; len(got) != 2 || got[1] != 720*time.Hour {
		t.Errorf("recheck_after = %v", got)
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"E": "from-env"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		s    config.Secret
		want string
	}{
		{config.Secret{Value: "inline"}, "inline"},
		{config.Secret{Env: "E"}, "from-env"},
		{config.Secret{File: path}, "from-file"},
	} {
		got, err := tc.s.Reveal(getenv)
		if err != nil || got != tc.want {
			t.Errorf("Reveal(%v) = %q, %v", tc.s, got, err)
		}
		if strings.Contains(tc.s.String(), tc.want) {
			t.Errorf("String() shows the value: %s", tc.s)
		}
	}
	if _, err := (config.Secret{Env: "MISSING"}).Reveal(getenv); err == nil {
		t.Error("an unset variable revealed without error")
	}
	if _, err := (config.Secret{File: filepath.Join(dir, "nope")}).Reveal(getenv); err == nil {
		t.Error("a missing file revealed without error")
	}
}

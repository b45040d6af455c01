package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/testenv"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = app.Run(context.Background(), append([]string{"lethe"}, args...), os.Getenv, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve"}, 2, "--config is required"},
		{[]string{"serve", "--config", "/nonexistent.yaml"}, 1, "no such file"},
		{[]string{"serve", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"cert", "verify"}, 2, "usage: lethe cert verify"},
		{[]string{"cert", "verify", "x.json"}, 2, "say which keys to trust: --key PUBLIC_KEY.pem or --jwks"},
		{[]string{"cert", "verify", "/nonexistent.json", "--key", "k.pem"}, 1, "no such file"},
		{[]string{"keygen"}, 2, "--out is required"},
		{[]string{"keygen", "--out", filepath.Join(in.dir, "keys")}, 1, "never overwrites"},
		{[]string{"worker", "--config", in.configPath, "--connectors", "nope"}, 1, `no connector named "nope"`},
		{[]string{"config", "check", "--worker", "--connectors", "nope", "--config", in.configPath}, 1, `no connector named "nope"`},
		{[]string{"config", "check", "--worker", "--connectors", "files", "--config", in.configPath}, 0, "connector files (filesystem): ok"},
		{[]string{"config", "check", "--bogus", "--config", in.configPath}, 2, "flag provided but not defined"},
		{[]string{"version"}, 0, "lethe dev ("},
		// --help answers on stdout with the synopsis, the description
		// and the flags, and exits 0; a boolean flag takes no value.
		{[]string{"serve", "--help"}, 0, "usage: lethe serve --config lethe.yaml [--no-migrate] [--no-workers]\n\nproduction: PostgreSQL and a NATS cluster"},
		{[]string{"serve", "-h"}, 0, "  -no-workers\n    \trun no connectors here"},
		{[]string{"cert", "verify", "--help"}, 0, "usage: lethe cert verify FILE (--key PUBLIC_KEY.pem | --jwks FILE_OR_URL) [--origin O] [--log URL] [--email E --nonce N]"},
		{[]string{"config", "check", "--help"}, 0, "validate a config file"},
		{[]string{"witness", "--help"}, 0, "  -key string\n    \tthis witness's Ed25519 private key (PKCS#8 PEM; lethe keygen makes one)"},
		{[]string{"cert", "verify", "x.json", "--key", "k.pem", "--email", "a@example.com"}, 2, "--email needs --nonce"},
		{[]string{"cert", "verify", "--key", "k.pem"}, 2, "name the certificate file"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		where := stdout + stderr
		if slices.Contains(tc.args, "--help") || slices.Contains(tc.args, "-h") {
			where = stdout
		}
		if code != tc.code || !strings.Contains(where, tc.want) {
			t.Errorf("lethe %v = %d, %q %q; want %d and %q", tc.args, code, stdout, stderr, tc.code, tc.want)
		}
	}

	code, stdout, stderr := runCLI(t, "migrate", "--config", in.configPath)
	if code != 0 || !strings.Contains(stdout, "the schema is up to date") {
		t.Errorf("migrate = %d %q %q", code, stdout, stderr)
	}
	if code, stdout, _ = runCLI(t, "migrate", "--config", in.configPath); code != 0 || !strings.Contains(stdout, "applied 0") {
		t.Errorf("second migrate = %d %q", code, stdout)
	}
	if code, stdout, stderr = runCLI(t, "config", "check", "--config", in.configPath); code != 0 || !strings.Contains(stdout, "connector shop-db (sql): ok") {
		t.Errorf("config check = %d %q %q", code, stdout, stderr)
	}
	bad := filepath.Join(in.dir, "bad.yaml")
	writeFile(t, bad, []byte("store: {driver: mongo}\nconnectors: [{name: x, type: nosuch}]\n"))
	if code, _, stderr = runCLI(t, "config", "check", "--config", bad); code != 1 || !strings.Contains(stderr, "store.driver") || !strings.Contains(stderr, "nats.url") {
		t.Errorf("config check of a bad file = %d %q", code, stderr)
	}
	if code, _, _ = runCLI(t, "cert", "verify", "--key", "k.pem"); code != 2 {
		t.Errorf("cert verify without a file = %d", code)
	}
}

// TestWorkerProcess: `lethe serve --no-workers` runs the API and the
// coordinator, `lethe worker` runs the connectors; the worker answers
// probes but not the API.
func TestWorkerProcess(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	in.serveArgs(t, "--no-workers")
	base := "http://" + in.addr

	// With no worker running, tasks queue up in NATS, and /metrics says
	// how many per connector: what an autoscaler scales workers on.
	var early []string
	for i := range 3 {
		email := fmt.Sprintf("queued%d@example.com", i)
		tg.seed(t, email)
		early = append(early, fileRequest(t, base, in.adminToken, email).ID)
	}
	waitMetric(t, base, `lethe_tasks_pending{connector="files"} 3`, `lethe_tasks_pending{connector="shop-db"} 3`)

	// A second config for the worker: same NATS, another port, and no
	// access to the database or the keys.
	workerConfig, workerAddr := in.workerConfig(t)
	if code, _, stderr := runCLI(t, "config", "check", "--config", workerConfig); code == 0 {
		t.Error("the worker's config passes a full check without keys")
	} else if code, stdout, stderr2 := runCLI(t, "config", "check", "--worker", "--config", workerConfig); code != 0 || !strings.Contains(stdout, "connector files (filesystem): ok") {
		t.Errorf("config check --worker = %d %q %q (full check said %q)", code, stdout, stderr2, stderr)
	}
	logs := &syncBuffer{}
	runInProcess(t, []string{"lethe", "worker", "--config", workerConfig}, &syncBuffer{}, logs, "http://"+workerAddr)
	resp, err := http.Get("http://" + workerAddr + "/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a worker serves the API: /v1/keys = %d", resp.StatusCode)
	}
	for _, id := range early {
		waitStatus(t, base, in.adminToken, id, 30*time.Second, "completed")
	}
	waitMetric(t, base, `lethe_tasks_pending{connector="files"} 0`, `lethe_tasks_pending{connector="shop-db"} 0`)
	for i := range 6 {
		email := "w" + string(rune('a'+i)) + "@example.com"
		tg.seed(t, email)
		r := fileRequest(t, base, in.adminToken, email)
		waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
		if rows, files := tg.remaining(t, email); rows != 0 || files != 0 {
			t.Errorf("%s: %d rows, %d files left", email, rows, files)
		}
	}
	for _, c := range []string{"files", "shop-db"} {
		if !strings.Contains(logs.String(), `"connector":"`+c+`"`) {
			t.Errorf("the worker process logged no task of %s", c)
		}
	}
}

// waitMetric waits until base's /metrics holds every one of lines.
func waitMetric(t *testing.T, base string, lines ...string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
		missing := false
		for _, l := range lines {
			if !strings.Contains(last, "\n"+l+"\n") {
				missing = true
			}
		}
		if !missing {
			return
		}
	}
	t.Fatalf("/metrics never showed %q:\n%s", lines, grepLines(last, "lethe_tasks_pending"))
}

// TestAPIWithoutWorkersHoldsNoConnectorCredentials: `lethe serve
// --no-workers` builds only the connectors that take vendor callbacks, so
// the other connectors' credentials need not be there at all; the
// callbacks still reach the one that takes them.
func TestAPIWithoutWorkersHoldsNoConnectorCredentials(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - name: shop
    type: sql
    config:
      driver: postgres
      dsn: {env: LETHE_TEST_NEVER_SET_DSN}
      statements: [{name: customers, sql: "DELETE FROM customers WHERE email = :email"}]
  - {name: processor, type: test_callback, config: {secret: s3cret}}`, "")
	if code, _, stderr := runCLI(t, "config", "check", "--config", in.configPath); code == 0 || !strings.Contains(stderr, "LETHE_TEST_NEVER_SET_DSN") {
		t.Errorf("a full config check without the shop's DSN = %d %q", code, stderr)
	}
	if code, stdout, stderr := runCLI(t, "config", "check", "--no-workers", "--config", in.configPath); code != 0 || !strings.Contains(stdout, "connector processor (test_callback): ok") || strings.Contains(stdout, "connector shop") {
		t.Errorf("config check --no-workers = %d %q %q", code, stdout, stderr)
	}
	in.serveArgs(t, "--no-workers")
	base := "http://" + in.addr
	req, _ := http.NewRequest("POST", base+"/v1/connectors/processor/callback", strings.NewReader(`{"job":"job-1","status":"done"}`))
	req.Header.Set("X-Signature", "not-signed")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an unsigned callback to the API process = %d, want 403 (its connector is built there)", resp.StatusCode)
	}
	r := fileRequest(t, base, in.adminToken, "api-only@example.com")
	if len(r.Tasks) != 2 {
		t.Errorf("request filed with %d tasks, want 2", len(r.Tasks))
	}
}

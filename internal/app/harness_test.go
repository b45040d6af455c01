package app_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// target is an organisation's own data for connectors to erase: a shop
// schema in PostgreSQL and a file tree.
type target struct {
	url   string // PostgreSQL URL with search_path on the shop schema
	db    *sql.DB
	files string
	// resolving: customers also have an app user id, which only the shop
	// knows and an app events table is keyed by (resolvingYAML).
	resolving bool
}

func newTarget(t testing.TB) *target {
	t.Helper()
	url := testenv.PostgresSchema(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(`
		CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text, app_user_id text);
		CREATE TABLE orders (id serial PRIMARY KEY, email text, address text, total int);
		CREATE TABLE newsletter (email text NOT NULL);
		CREATE TABLE app_events (app_user_id text NOT NULL, name text NOT NULL);`)
	if err != nil {
		t.Fatal(err)
	}
	return &target{url: url, db: db, files: t.TempDir()}
}

// seed creates a customer with one row in each table plus two orders and
// two files; it returns the rows and files a full erasure removes. A
// resolving target also gives them an app user id and two app events.
func (tg *target) seed(t testing.TB, email string) (rows, files int) {
	t.Helper()
	for _, q := range []string{
		`INSERT INTO customers (email, name, app_user_id) VALUES ($1, 'Test Person', 'app-' || md5($1))`,
		`INSERT INTO orders (email, address, total) VALUES ($1, '1 Street', 10), ($1, '1 Street', 20)`,
		`INSERT INTO newsletter (email) VALUES ($1)`,
	} {
		if _, err := tg.db.Exec(q, email); err != nil {
			t.Fatal(err)
		}
	}
	tg.writeFiles(t, email)
	if !tg.resolving {
		return 4, 2
	}
	if _, err := tg.db.Exec(`INSERT INTO app_events (app_user_id, name) VALUES ('app-' || md5($1), 'login'), ('app-' || md5($1), 'view')`, email); err != nil {
		t.Fatal(err)
	}
	return 6, 2
}

// appUserID is the app user id a resolving target gives email.
func appUserID(email string) string {
	sum := md5.Sum([]byte(email))
	return "app-" + hex.EncodeToString(sum[:])
}

// writeFiles gives the customer their two files.
func (tg *target) writeFiles(t testing.TB, email string) {
	t.Helper()
	for _, p := range []string{"exports/" + email + ".csv", "uploads/" + email + "/a.png"} {
		full := filepath.Join(tg.files, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// remaining counts what is left of a customer.
func (tg *target) remaining(t testing.TB, email string) (rows, files int) {
	t.Helper()
	err := tg.db.QueryRow(`SELECT (SELECT count(*) FROM customers WHERE email = $1)
		+ (SELECT count(*) FROM orders WHERE email = $1) + (SELECT count(*) FROM newsletter WHERE email = $1)
		+ (SELECT count(*) FROM app_events WHERE app_user_id = $2)`, email, appUserID(email)).Scan(&rows)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"exports/" + email + ".csv", "uploads/" + email + "/a.png"} {
		if _, err := os.Lstat(filepath.Join(tg.files, p)); err == nil {
			files++
		}
	}
	return rows, files
}

// resolvingYAML adds to connectorsYAML a resolver and a system keyed only
// by what it finds: the shop looks up the person's app user id by email,
// and app-events erases by it (after the shop: erase_after).
func (tg *target) resolvingYAML() string {
	return strings.Replace(tg.connectorsYAML(), "    config:\n      driver: postgres\n", `    authority_for: [user_ids.app]
    config:
      driver: postgres
      resolve:
        - {name: customers, sql: "SELECT app_user_id FROM customers WHERE email = :email", kinds: {app_user_id: user_ids.app}}
`, 1) + fmt.Sprintf(`  - name: app-events
    type: sql
    erase_after: [shop-db]
    config:
      driver: postgres
      dsn: %q
      statements:
        - {name: events, sql: "DELETE FROM app_events WHERE app_user_id = :user_ids.app"}
      verify:
        - {name: events, sql: "SELECT count(*) FROM app_events WHERE app_user_id = :user_ids.app"}
`, tg.url)
}

// scanningYAML is connectorsYAML with the shop database able to list the
// emails it holds (for replay and sweeps).
func (tg *target) scanningYAML() string {
	return strings.Replace(tg.connectorsYAML(), "      verify:", `      scan:
        - {name: customers, sql: "SELECT email FROM customers", kind: email}
        - {name: newsletter, sql: "SELECT email FROM newsletter", kind: email}
      verify:`, 1)
}

func (tg *target) connectorsYAML() string {
	return fmt.Sprintf(`
  - name: shop-db
    type: sql
    config:
      driver: postgres
      dsn: %q
      statements:
        - {name: newsletter, sql: "DELETE FROM newsletter WHERE email = :email"}
        - {name: orders, sql: "UPDATE orders SET email = NULL, address = NULL WHERE email = :email"}
        - {name: customers, sql: "DELETE FROM customers WHERE email = :email"}
      verify:
        - {name: customers, sql: "SELECT count(*) FROM customers WHERE email = :email"}
        - {name: orders, sql: "SELECT count(*) FROM orders WHERE email = :email"}
  - name: files
    type: filesystem
    config:
      root: %q
      paths: ["exports/{email}.csv", "uploads/{email}/"]
`, tg.url, tg.files)
}

// instance is a Lethe configured for a test: a serve config against a fresh
// PostgreSQL schema and the given NATS URL, with keys in a temp dir.
type instance struct {
	dir        string
	configPath string
	addr       string
	adminToken string
	agentToken string
	auditToken string
	storeURL   string
}

func newInstance(t testing.TB, natsURL, connectorsYAML string, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{dir: dir, addr: freeAddr(t), storeURL: testenv.PostgresSchema(t),
		adminToken: "admin-token-0123456789", agentToken: "agent-token-0123456789", auditToken: "audit-token-0123456789"}
	var stdout bytes.Buffer
	if code := app.Run(context.Background(), []string{"lethe", "keygen", "--out", filepath.Join(dir, "keys")}, os.Getenv, &stdout, io.Discard); code != 0 {
		t.Fatalf("keygen exited %d", code)
	}
	cfg := fmt.Sprintf(`organisation: Test Org
listen: %q
store: {driver: postgres, url: %q}
nats: {url: %q, ack_wait: 2s}
signing: {key: {file: %q}}
subject: {hash_key: {file: %q}}
encryption: {keys: [{id: test, key: {file: %q}}]}
auth:
  tokens:
    - {name: admin, role: admin, token: %q}
    - {name: agent, role: agent, token: %q}
    - {name: auditor, role: auditor, token: %q}
tasks: {retry_initial: 200ms, retry_max: 1s, poll_interval: 200ms, scheduler_interval: 100ms, timeout: 20s}
log: {level: debug}
%s
connectors:%s`, in.addr, in.storeURL, natsURL, filepath.Join(dir, "keys", "signing.key"), filepath.Join(dir, "keys", "subject-hash.key"), filepath.Join(dir, "keys", "kek.key"),
		in.adminToken, in.agentToken, in.auditToken, extra, connectorsYAML)
	in.configPath = filepath.Join(dir, "lethe.yaml")
	if err := os.WriteFile(in.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// parallel calls fn(i) for every i in [0, n) from 8 goroutines, as 8
// clients would, and waits for all of them.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				fn(i)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// replica is a second process of the same installation: the same config,
// store, NATS and keys, listening elsewhere.
func (in *instance) replica(t testing.TB) *instance {
	t.Helper()
	r := *in
	r.addr = freeAddr(t)
	b, err := os.ReadFile(in.configPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), fmt.Sprintf("listen: %q", in.addr), fmt.Sprintf("listen: %q", r.addr), 1)
	r.configPath = filepath.Join(t.TempDir(), "lethe.yaml")
	if err := os.WriteFile(r.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &r
}

// serve runs `lethe serve` in-process until the test ends and waits for
// /healthz. Logs go to the returned buffer.
func (in *instance) serve(t testing.TB) *syncBuffer {
	t.Helper()
	return in.serveArgs(t).syncBuffer
}

// serving is a running `lethe serve`.
type serving struct {
	*syncBuffer
	stop func()
}

// serveArgs is serve with extra flags.
func (in *instance) serveArgs(t testing.TB, flags ...string) *serving {
	t.Helper()
	logs := &syncBuffer{}
	stop := runInProcess(t, append([]string{"lethe", "serve", "--config", in.configPath}, flags...), &syncBuffer{}, logs, "http://"+in.addr)
	return &serving{logs, stop}
}

// runInProcess runs the lethe command in this process until stop (or the
// end of the test), once it answers /healthz at base.
func runInProcess(t testing.TB, args []string, stdout, logs *syncBuffer, base string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- app.Run(ctx, args, os.Getenv, stdout, logs)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("lethe %s exited %d\n%s", args[1], code, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Errorf("lethe %s did not stop within 30s of cancellation", args[1])
		}
	}
	t.Cleanup(stop)
	waitHealthy(t, base, done, logs)
	return stop
}

func stopServe(t testing.TB, s *serving) {
	t.Helper()
	s.stop()
}

func waitHealthy(t testing.TB, base string, done <-chan int, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("lethe exited %d before it was healthy\n%s", code, logs.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("lethe not healthy within 30s\n%s", logs.String())
}

// call makes an API call and decodes a JSON response into out (if non-nil).
func call(t testing.TB, method, url, token, body string, out any) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %s", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

type apiRequest struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	DueAt          string `json:"due_at"`
	CertificateURL string `json:"certificate_url"`
	Tasks          []struct {
		Connector      string `json:"connector"`
		Phase          string `json:"phase"`
		Reason         string `json:"reason"`
		Status         string `json:"status"`
		Attempts       int    `json:"attempts"`
		RecordsErased  int64  `json:"records_erased"`
		RecordsUnknown bool   `json:"records_unknown"`
		LastError      string `json:"last_error"`
		Verification   string `json:"verification"`
	} `json:"tasks"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func fileRequest(t *testing.T, base, token, email string) apiRequest {
	t.Helper()
	var r apiRequest
	code := call(t, "POST", base+"/v1/requests", token, fmt.Sprintf(`{"subject":{"email":%q},"jurisdiction":"gdpr"}`, email), &r)
	if code != http.StatusCreated {
		t.Fatalf("file request: status %d", code)
	}
	return r
}

// waitStatus polls a request until its status is one of want.
func waitStatus(t *testing.T, base, token, id string, timeout time.Duration, want ...string) apiRequest {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var r apiRequest
	for time.Now().Before(deadline) {
		r = apiRequest{}
		call(t, "GET", base+"/v1/requests/"+id, token, "", &r)
		for _, w := range want {
			if r.Status == w {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("request %s is %s after %s, want %v: %+v", id, r.Status, timeout, want, r)
	return r
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

type posted struct {
	status int
	id     string
}

func postWithKey(t *testing.T, url, token, body, key string) posted {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r apiRequest
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return posted{resp.StatusCode, r.ID}
}

// keyRing is the instance's key-encryption key ring, to read its store
// directly.
func (in *instance) keyRing(t testing.TB) *seal.KeyRing {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.dir, "keys", "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := seal.NewKeyRing(seal.KEK{ID: "test", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// workerConfig writes the config of a `lethe worker` for in's
// installation: the same NATS and connectors, another port, and no access
// to the database or the keys (a worker reads only NATS and its
// connectors' settings). It returns the config's path and the address.
func (in *instance) workerConfig(t *testing.T) (path, addr string) {
	t.Helper()
	addr = freeAddr(t)
	cfg := strings.Replace(string(mustRead(t, in.configPath)), in.addr, addr, 1)
	cfg = strings.ReplaceAll(cfg, in.storeURL, "postgres://nobody@127.0.0.1:1/none")
	cfg = strings.ReplaceAll(cfg, filepath.Join(in.dir, "keys"), filepath.Join(in.dir, "not-mounted"))
	path = filepath.Join(t.TempDir(), "worker.yaml")
	writeFile(t, path, []byte(cfg))
	return path, addr
}

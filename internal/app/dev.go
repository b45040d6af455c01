package app

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/demo"
	"github.com/nats-io/nats-server/v2/server"
)

// runDev runs everything on one machine with no setup: an embedded NATS
// server with JetStream and a SQLite store under the data dir, the API, and
// demo connectors against demo data made on first start.
func runDev(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "HTTP listen address")
	dataDir := fs.String("data-dir", "lethe-data", "where dev keeps its store, NATS data, keys and demo data")
	natsAddr := fs.String("nats-addr", "127.0.0.1:0", "address of the embedded NATS server (port 0: any free port)")
	var opt devOptions
	fs.BoolVar(&opt.requireApproval, "require-approval", false, "portal requests wait for staff to approve or deny them in the console")
	fs.BoolVar(&opt.manual, "manual", false, "add a manual system (a paper archive) whose task waits for staff to complete it in the console")
	if _, err := parseFlags(fs, args, e); err != nil {
		return err
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := ensureDevSecrets(dir); err != nil {
		return err
	}
	if _, err := demo.Seed(ctx, dir); err != nil {
		return err
	}
	natsKey, err := os.ReadFile(filepath.Join(dir, "nats.key"))
	if err != nil {
		return err
	}
	ns, err := startEmbeddedNATS(*natsAddr, filepath.Join(dir, "nats"), strings.TrimSpace(string(natsKey)))
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	cfg, err := config.ParseDev([]byte(devConfig(dir, *addr, ns.ClientURL(), opt)))
	if err != nil {
		return fmt.Errorf("dev config: %w", err)
	}
	return run(ctx, e, cfg, roles{api: true, embedded: ns, onListening: func(a net.Addr) {
		printBanner(e, dir, a.String(), ns.ClientURL())
	}})
}

// devSecrets are made once per data dir and kept, so certificates and
// tokens survive restarts.
var devSecrets = []string{"signing.key", "subject-hash.key", "kek.key", "nats.key", "admin.token", "agent.token", "auditor.token",
	"console-admin.password", "console-admin.hash"}

func ensureDevSecrets(dir string) error {
	missing := false
	for _, f := range devSecrets {
		if _, err := os.Stat(filepath.Join(dir, f)); errors.Is(err, os.ErrNotExist) {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	k, err := newKeys()
	if err != nil {
		return err
	}
	password := randomToken()[:24]
	hash, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	// The console password and its hash are made as a pair: if either is
	// missing, both are made again.
	_, errPw := os.Stat(filepath.Join(dir, "console-admin.password"))
	_, errHash := os.Stat(filepath.Join(dir, "console-admin.hash"))
	if (errPw == nil) != (errHash == nil) {
		for _, f := range []string{"console-admin.password", "console-admin.hash"} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("dev secrets: %w", err)
			}
		}
	}
	bodies := map[string]string{
		"console-admin.password": password + "\n", "console-admin.hash": hash + "\n",
		"signing.key": string(k.signingPEM), "subject-hash.key": k.hashKey + "\n", "kek.key": k.kek + "\n",
		"nats.key": hex.EncodeToString(randomBytes(32)) + "\n", "admin.token": k.adminToken + "\n",
		"agent.token": randomToken() + "\n", "auditor.token": randomToken() + "\n",
	}
	for _, f := range devSecrets {
		p := filepath.Join(dir, f)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := writeFileExcl(p, []byte(bodies[f]), 0o600); err != nil {
			return fmt.Errorf("dev secrets: %w", err)
		}
	}
	return nil
}

// startEmbeddedNATS starts NATS with JetStream, its store encrypted at rest
// with key, so task messages never reach the disk in clear.
func startEmbeddedNATS(addr, storeDir, key string) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--nats-addr: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("--nats-addr: bad port %q", portText)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "lethe-dev", Host: host, Port: port,
		JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true,
		JetStreamKey: key, JetStreamCipher: server.ChaCha,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 15s")
	}
	return ns, nil
}

// devOptions are the parts of the dev config its flags choose.
type devOptions struct {
	// requireApproval holds portal requests for staff approval.
	requireApproval bool
	// manual adds a connector whose task a person completes.
	manual bool
}

// manualDemo is the manual system of `lethe dev --manual`.
const manualDemo = `
  - name: paper-archive
    type: manual
    display_name: Paper archive
    config:
      instructions: "Find the person's folder in the archive room (filed by surname), shred it, and note the box number."`

func devConfig(dir, addr, natsURL string, opt devOptions) string {
	q := func(name string) string { return strconv.Quote(filepath.Join(dir, name)) }
	manual := ""
	if opt.manual {
		manual = manualDemo
	}
	return `organisation: Lethe dev
listen: ` + strconv.Quote(addr) + `
public_url: ` + strconv.Quote("http://"+addr) + `
portal:
  enabled: true
  ask_customer_number: true
  customer_system: shop
  require_approval: ` + strconv.FormatBool(opt.requireApproval) + `
console:
  insecure_cookies: true
  users:
    - {name: admin, role: admin, password_hash: {file: ` + q("console-admin.hash") + `}}
store:
  driver: sqlite
  url: ` + q("lethe.db") + `
nats:
  url: ` + strconv.Quote(natsURL) + `
  ack_wait: 30s
signing:
  key: {file: ` + q("signing.key") + `}
subject:
  hash_key: {file: ` + q("subject-hash.key") + `}
encryption:
  keys:
    - {id: dev, key: {file: ` + q("kek.key") + `}}
auth:
  tokens:
    - {name: admin, role: admin, token: {file: ` + q("admin.token") + `}}
    - {name: agent, role: agent, token: {file: ` + q("agent.token") + `}}
    - {name: auditor, role: auditor, token: {file: ` + q("auditor.token") + `}}
tasks:
  max_attempts: 5
  retry_initial: 2s
  retry_max: 1m
  poll_interval: 5s
  timeout: 1m
discovery:
  interval: 1h
# The shop database is swept against the suppression list every 10
# minutes: someone an import re-creates after their erasure is erased again.
suppression_sweep:
  interval: 10m
log:
  level: info
  format: console
connectors:` + demo.ConnectorsYAML(dir) + manual + "\n"
}

func printBanner(e env, dir, addr, natsURL string) {
	token, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	base := "http://" + addr
	var emails []string
	for _, c := range demo.Customers {
		emails = append(emails, c.Email)
	}
	fmt.Fprintf(e.stdout, `
Lethe dev is running.

  API          %[1]s   (OpenAPI: %[1]s/openapi.json, keys: %[1]s/v1/keys)
  Admin token  %[2]s
               (also in %[3]s; agent.token and auditor.token beside it)
  NATS         %[4]s (embedded JetStream, data in %[5]s)
  Store        %[6]s (SQLite)
  Demo data    %[7]s, %[12]s and %[8]s
  Customers    %[9]s

  Portal       %[1]s/portal      (ask for erasure as a data subject)
  Mailbox      %[1]s/dev/mailbox (the emails Lethe would send)
  Console      %[1]s/console     (admin, password in %[11]s)
  Auditors     %[1]s/audit
  Data map     %[1]s/console/coverage (personal data no erasure rule covers)

File an erasure request for a demo customer:

  curl -s -X POST %[1]s/v1/requests \
    -H "Authorization: Bearer $(cat %[3]s)" \
    -H "Content-Type: application/json" \
    -d '{"subject":{"email":"alice@example.com"},"jurisdiction":"gdpr"}'

Then follow it with GET %[1]s/v1/requests/<id> and fetch
%[1]s/v1/requests/<id>/certificate once it is completed.
Stop with Ctrl-C; delete %[10]s to start over.

`, base, strings.TrimSpace(string(token)), filepath.Join(dir, "admin.token"), natsURL, filepath.Join(dir, "nats"),
		filepath.Join(dir, "lethe.db"), demo.ShopPath(dir), demo.FilesDir(dir), strings.Join(emails, ", "), dir,
		filepath.Join(dir, "console-admin.password"), demo.AnalyticsPath(dir))
}

package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/httpapi"
	"github.com/lethe-dev/lethe/internal/httpapi/openapicheck"
	"github.com/lethe-dev/lethe/internal/ratelimit"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsNodeEnv makes the test binary run as one NATS cluster node instead
// of running tests, so a test can start nodes as processes of their own
// and kill them with SIGKILL. The server is nats-server's own code, the
// same module the other tests embed.
const natsNodeEnv = "LETHE_TEST_NATS_NODE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(natsNodeEnv); spec != "" {
		os.Exit(runNATSNode(spec))
	}
	os.Exit(checkOpenAPI(m))
}

// rawTransport is the transport before checkOpenAPI wrapped it, for the
// benchmarks: the check's cost is the test's, not Lethe's.
var rawTransport http.RoundTripper = http.DefaultTransport

// checkOpenAPI runs the tests with every HTTP exchange of the default
// client checked against /openapi.json: a status, a field or a path the
// document does not describe fails the run, so the description cannot
// drift from the server.
func checkOpenAPI(m *testing.M) int {
	check := openapicheck.MustNew(httpapi.OpenAPIDocument())
	// Lethe's answers carry its security headers; fake vendors' do not.
	lethe := func(r *http.Response) bool {
		return r.Header.Get("Referrer-Policy") == "no-referrer" && r.Header.Get("X-Content-Type-Options") == "nosniff"
	}
	rawTransport = http.DefaultTransport
	http.DefaultTransport = check.Transport(http.DefaultTransport, lethe)
	code := m.Run()
	if v := check.Violations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the API answered outside /openapi.json (%d exchanges checked, %d not described):\n  %s\n",
			check.Checked(), len(v), strings.Join(v, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// natsNode describes one node of a test cluster on loopback.
type natsNode struct {
	Name     string   `json:"name"`
	Client   int      `json:"client"`
	Cluster  int      `json:"cluster"`
	Routes   []string `json:"routes"`
	StoreDir string   `json:"store_dir"`
}

func runNATSNode(spec string) int {
	var n natsNode
	if err := json.Unmarshal([]byte(spec), &n); err != nil {
		fmt.Fprintln(os.Stderr, "nats node:", err)
		return 2
	}
	opts := &server.Options{
		ServerName: n.Name, Host: "127.0.0.1", Port: n.Client,
		JetStream: true, StoreDir: n.StoreDir,
		Cluster: server.ClusterOpts{Name: "lethe-test", Host: "127.0.0.1", Port: n.Cluster},
		Routes:  server.RoutesFromStr(strings.Join(n.Routes, ",")),
		NoSigs:  true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats node:", err)
		return 2
	}
	s.ConfigureLogger()
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats node: not ready")
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}

// proc is a child process whose output the test keeps.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
}

func startProc(t testing.TB, name, bin string, args, env []string) *proc {
	t.Helper()
	p := &proc{name: name, logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.stop)
	return p
}

// kill stops the process at once, as a crash or an OOM kill would.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the process to stop and waits; it kills it after 20s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// natsCluster is three NATS nodes clustered on loopback ports, each a
// process of its own with its own JetStream store.
type natsCluster struct {
	t     *testing.T
	nodes []natsNode
	procs []*proc
}

func startNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}
	var routes []string
	for i := range 3 {
		n := natsNode{Name: fmt.Sprintf("n%d", i+1), Client: freePort(t), Cluster: freePort(t), StoreDir: t.TempDir()}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", n.Cluster))
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("NATS node %s:\n%s", p.name, tail(p.logs.String(), 30000))
			}
		}
	})
	for i := range c.nodes {
		c.nodes[i].Routes = routes
		c.procs = append(c.procs, nil)
		c.start(i)
	}
	// Wait until the cluster can make a replicated stream: a meta leader
	// is elected and all three nodes take part.
	nc, err := nats.Connect(c.url(), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "READY", Subjects: []string{"ready"}, Replicas: 3})
		if err == nil {
			err = js.DeleteStream(ctx, "READY")
		}
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS cluster cannot make a 3-replica stream after 60s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *natsCluster) start(i int) {
	spec, _ := json.Marshal(c.nodes[i])
	exe, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	c.procs[i] = startProc(c.t, c.nodes[i].Name, exe, []string{"-test.run=^$"}, []string{natsNodeEnv + "=" + string(spec)})
}

func (c *natsCluster) url() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.Client))
	}
	return strings.Join(urls, ",")
}

func (c *natsCluster) index(name string) int {
	for i, n := range c.nodes {
		if n.Name == name {
			return i
		}
	}
	c.t.Fatalf("no NATS node named %q", name)
	return -1
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := strings.Cut(freeAddr(t), ":")
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// seedMany gives each person the same rows and files as target.seed, in
// bulk.
func (tg *target) seedMany(t testing.TB, emails []string) {
	t.Helper()
	tx, err := tg.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	for _, q := range []string{
		`INSERT INTO customers (email, name) SELECT e, 'Test Person' FROM unnest($1::text[]) e`,
		`INSERT INTO orders (email, address, total) SELECT e, '1 Street', t FROM unnest($1::text[]) e, (VALUES (10), (20)) v(t)`,
		`INSERT INTO newsletter (email) SELECT e FROM unnest($1::text[]) e`,
	} {
		if _, err := tx.Exec(q, "{"+strings.Join(emails, ",")+"}"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, e := range emails {
		tg.writeFiles(t, e)
	}
}

// fileAt files a request for email at one of bases, moving on to the next
// when a process does not answer; the Idempotency-Key makes a repeat safe.
func fileAt(bases []string, token, email string, first int) (string, error) {
	body := fmt.Sprintf(`{"subject":{"email":%q},"jurisdiction":"gdpr"}`, email)
	var last error
	for try := range 40 {
		base := bases[(first+try)%len(bases)]
		req, _ := http.NewRequest("POST", base+"/v1/requests", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "cluster-"+email)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var r apiRequest
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if (resp.StatusCode == 201 || resp.StatusCode == 200) && err == nil {
			return r.ID, nil
		}
		last = fmt.Errorf("%s: %d %v", base, resp.StatusCode, err)
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}

// TestCluster runs Lethe as it is deployed at scale, on one machine: three
// NATS nodes clustered on loopback, two `lethe serve` replicas and one
// `lethe worker` process (the real binary) against one PostgreSQL. It
// files requests at both replicas, kills one replica and the NATS node
// leading the task stream with SIGKILL a third of the way, and the worker
// two thirds of the way, restarts them, and checks that every request
// reaches exactly one certificate, no task is lost or completed twice, the
// data is gone and the transparency log is consistent.
func TestCluster(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	bin := buildBinary(t)
	cl := startNATSCluster(t)
	tg := newTarget(t)
	in := newInstance(t, cl.url(), tg.connectorsYAML(), "")
	a, b, w := in, in.replica(t), in.replica(t)

	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("c%04d@example.com", i)
	}
	tg.seedMany(t, append(emails, "bystander@example.com"))

	var started []*proc // every Lethe process, killed ones too
	lethe := func(i *instance, name string, args ...string) *proc {
		p := startProc(t, name, bin, append(args, "--config", i.configPath), nil)
		waitProcHealthy(t, p, "http://"+i.addr)
		started = append(started, p)
		return p
	}
	serve := func(i *instance, name string) *proc { return lethe(i, name, "serve") }
	worker := func() *proc { return lethe(w, "worker", "worker", "--connectors", "shop-db") }
	pa := serve(a, "serve-a")
	pb := serve(b, "serve-b")
	pw := worker()
	logsOf := func() string {
		var all strings.Builder
		for _, p := range append(started, cl.procs...) {
			all.WriteString(p.logs.String())
		}
		return all.String()
	}

	nc, err := nats.Connect(cl.url(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	checkReplicas(t, js)

	// File from 8 clients at both replicas; at a third of the way, kill
	// serve-a and the NATS node leading the task stream, and bring both
	// back two seconds later.
	bases := []string{"http://" + a.addr, "http://" + b.addr}
	ids := make([]string, n)
	var filed atomic.Int32
	chaos := make(chan string, 1)
	go func() {
		for filed.Load() < int32(n/3) {
			time.Sleep(10 * time.Millisecond)
		}
		leader := streamLeader(js, bus.TasksStream)
		node := cl.index(leader)
		pa.kill()
		cl.procs[node].kill()
		time.Sleep(2 * time.Second)
		cl.start(node)
		for filed.Load() < int32(2*n/3) {
			time.Sleep(10 * time.Millisecond)
		}
		pw.kill()
		chaos <- leader
	}()
	start := time.Now()
	parallel(n, func(i int) {
		id, err := fileAt(bases, in.adminToken, emails[i], i)
		if err != nil {
			t.Errorf("%s not filed: %v", emails[i], err)
			return
		}
		ids[i] = id
		filed.Add(1)
	})
	leader := <-chaos
	pa = serve(a, "serve-a")
	pw = worker()
	t.Logf("%d requests filed in %s; killed serve-a and NATS node %s (the task stream's leader) at %d, the worker at %d",
		n, time.Since(start).Round(time.Millisecond), leader, n/3, 2*n/3)

	// Wait for every request to complete.
	db, err := sql.Open("pgx", in.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(5 * time.Minute)
	lastLog := time.Now()
	for {
		var done int
		if err := db.QueryRow(`SELECT count(*) FROM requests WHERE status = 'completed'`).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done == n {
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			t.Logf("%s: %d of %d completed", time.Since(start).Round(time.Second), done, n)
			rows, _ := db.Query(`SELECT r.status, t.connector, t.status, t.attempt, count(*) FROM requests r JOIN tasks t ON t.request_id = r.id WHERE r.status <> 'completed' GROUP BY 1,2,3,4`)
			for rows.Next() {
				var a, b, c string
				var at, k int
				_ = rows.Scan(&a, &b, &c, &at, &k)
				t.Logf("  %s %s %s attempt %d: %d", a, b, c, at, k)
			}
			rows.Close()
			var ob int
			_ = db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&ob)
			t.Logf("  outbox %d", ob)
			for _, name := range []string{"worker-files", "worker-shop-db"} {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				c, err := js.Consumer(ctx, bus.TasksStream, name)
				cancel()
				if err != nil {
					t.Logf("  %s: %v", name, err)
					continue
				}
				ci := c.CachedInfo()
				t.Logf("  %s: pending %d ack_pending %d redelivered %d waiting %d leader %s", name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Cluster.Leader)
			}
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests completed after 5 minutes\n%s", done, n, tail(logsOf(), 6000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("all %d requests completed %s after the first was filed", n, time.Since(start).Round(time.Millisecond))
	for _, p := range []*proc{pa, pb, pw} {
		p.stop()
	}

	byEmail := map[string]string{}
	for i, e := range emails {
		byEmail[e] = ids[i]
	}
	checkErasures(t, in, tg, byEmail, 6)
	checkNoIdentifiers(t, logsOf(), emails[:50])
}

// checkReplicas: with the replica count left to Lethe, its streams and
// rate-limit bucket have three replicas on a three-node cluster.
func checkReplicas(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{bus.TasksStream, bus.ResultsStream, bus.NoticesStream, "KV_" + ratelimit.Bucket} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas on a 3-node cluster, want 3", name, r)
		}
	}
}

// streamLeader names the node leading a stream.
func streamLeader(js jetstream.JetStream, stream string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil || s.CachedInfo().Cluster == nil {
		return "n1"
	}
	return s.CachedInfo().Cluster.Leader
}

func waitProcHealthy(t testing.TB, p *proc, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			t.Fatalf("%s exited before it was healthy\n%s", p.name, p.logs.String())
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT) // a Go process prints its goroutines
	<-p.exited
	t.Fatalf("%s not healthy within 30s\n%s", p.name, tail(p.logs.String(), 20000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

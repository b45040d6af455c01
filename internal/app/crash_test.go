package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store/postgres"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/translog"
)

// crashPoints stop the process abruptly at the risky moments of the flow:
// after a request is committed but before it is published, between
// publishing and recording it, after a connector erased but before it
// reported, after it reported but before it acknowledged, and on either
// side of the commit that records a result and issues the certificate —
// and after a resolver looked the person up but before it reported what it
// found.
const crashPoints = "intake.after_commit=0.1,relay.before_publish=0.05,relay.after_publish=0.15," +
	"worker.after_resolve=0.4,worker.after_erase=0.15,worker.after_report=0.1,coordinator.before_commit=0.1,coordinator.after_commit=0.1"

// TestCrashRecovery runs the real binary against PostgreSQL and NATS, lets
// failpoints and SIGKILL stop it at random points, restarts it each time,
// and checks that every request still reaches exactly one certificate, no
// task is lost or counted twice, the event chains hold and the data is
// gone. Each request is resolved first (the shop finds the app user id an
// events table is keyed by), so crashes strike during resolution too, and
// the resolved ids must never reach a log.
func TestCrashRecovery(t *testing.T) {
	bin := buildBinary(t)
	ns := testenv.NATS(t)
	tg := newTarget(t)
	tg.resolving = true
	in := newInstance(t, ns.ClientURL(), tg.resolvingYAML(), "")
	base := "http://" + in.addr

	const n = 12
	var subjects []string
	for i := range n {
		s := fmt.Sprintf("crash%02d@example.com", i)
		tg.seed(t, s)
		subjects = append(subjects, s)
	}
	tg.seed(t, "bystander@example.com")

	sup := &supervisor{t: t, bin: bin, config: in.configPath, base: base}
	defer sup.stop()
	ids := map[string]string{}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("not done after 4 minutes: %d filed, %d crashes\n%s", len(ids), sup.crashes, sup.tail())
		}
		if !sup.ensureRunning() {
			continue
		}
		// File what is not filed yet. The Idempotency-Key makes a filing
		// interrupted by a crash safe to repeat.
		for _, s := range subjects {
			if ids[s] != "" {
				continue
			}
			if id, ok := sup.file(s); ok {
				ids[s] = id
			}
		}
		if len(ids) == n && sup.allCompleted(ids, in.adminToken) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sup.stop()
	if sup.crashes == 0 {
		t.Fatal("the process never crashed: the test proved nothing")
	}
	t.Logf("%d requests completed through %d crashes (%d by SIGKILL)", n, sup.crashes, sup.kills.Load())
	if !strings.Contains(sup.allLogs.String(), "failpoint worker.after_resolve: crashing") {
		t.Error("no crash struck during resolution: the test proved nothing about it")
	}

	checkErasures(t, in, tg, ids, 8)
	secrets := append([]string(nil), subjects...)
	for _, s := range subjects {
		secrets = append(secrets, appUserID(s))
	}
	checkNoIdentifiers(t, sup.allLogs.String(), secrets)
}

// checkErasures checks, in the store itself, that every request in ids
// (subject → request id) completed with exactly one certificate that
// verifies, every task reached a final state exactly once without counting
// records twice (maxRecords existed per person), the event chains hold,
// the data is gone and the bystander's is not, and the transparency log
// holds the key activation and each certificate exactly once, its latest
// checkpoint extending every certificate's.
func checkErasures(t *testing.T, in *instance, tg *target, ids map[string]string, maxRecords int64) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, in.storeURL, postgres.Options{Keys: in.keyRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := certificate.ParseKeySet(mustRead(t, filepath.Join(in.dir, "keys", "signing.pub.pem")))
	if err != nil {
		t.Fatal(err)
	}
	for s, id := range ids {
		req, err := st.Request(ctx, id)
		if err != nil || req.Status != erasure.RequestCompleted {
			t.Errorf("%s: %v %s", s, err, req.Status)
			continue
		}
		events, err := st.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := erasure.VerifyChain(events); err != nil {
			t.Errorf("%s: event chain: %v", s, err)
		}
		finals, certs := map[string]int{}, 0
		for _, e := range events {
			switch e.Type {
			case erasure.EventTaskResult:
				var d struct{ Status string }
				_ = json.Unmarshal(e.Data, &d)
				if d.Status == "erased" || d.Status == "not_found" || d.Status == "resolved" {
					finals[e.TaskID]++
				}
			case erasure.EventCertificateIssue:
				certs++
			}
		}
		tasks, _ := st.Tasks(ctx, id)
		var records int64
		if tg.resolving && len(tasks) != 4 {
			t.Errorf("%s: %d tasks, want the shop's look-up and three erasures", s, len(tasks))
		}
		for _, task := range tasks {
			if task.Connector == "app-events" {
				// Searched by the id the shop resolved. A crash after the
				// erase makes the redelivered run find nothing; it says so.
				redelivered := slices.ContainsFunc(task.Evidence, func(e erasure.Evidence) bool { return e.Kind == "redelivered" })
				if fmt.Sprint(task.SearchedBy) != "[user_ids.app]" || !(task.Status == erasure.TaskErased && task.RecordsErased == 2 ||
					task.Status == erasure.TaskNotFound && redelivered) {
					t.Errorf("%s: app-events %s with %d records, searched by %v, evidence %v", s, task.Status, task.RecordsErased, task.SearchedBy, task.Evidence)
				}
			}
			if finals[task.ID] != 1 {
				t.Errorf("%s: task %s reached a final state %d times", s, task.Connector, finals[task.ID])
			}
			records += task.RecordsErased
		}
		if records > maxRecords {
			t.Errorf("%s: %d records counted, but only %d existed: counted twice", s, records, maxRecords)
		}
		if certs != 1 {
			t.Errorf("%s: %d certificate events, want 1", s, certs)
		}
		c, err := st.Certificate(ctx, id)
		if err != nil {
			t.Errorf("%s: certificate: %v", s, err)
			continue
		}
		if _, err := certificate.Verify(c.Document, keys); err != nil {
			t.Errorf("%s: certificate does not verify: %v", s, err)
		}
		if rows, files := tg.remaining(t, s); rows != 0 || files != 0 {
			t.Errorf("%s: %d rows and %d files remain", s, rows, files)
		}
	}
	keep := 4
	if tg.resolving {
		keep = 6
	}
	if rows, files := tg.remaining(t, "bystander@example.com"); rows != keep || files != 2 {
		t.Errorf("bystander lost data: %d rows, %d files", rows, files)
	}
	// The transparency log holds the key activation and each certificate
	// exactly once, and its latest checkpoint extends every certificate's.
	size, err := st.LogSize(ctx)
	if err != nil || size != int64(len(ids))+1 {
		t.Errorf("log size %d (%v), want %d: a certificate was logged twice or not at all", size, err, len(ids)+1)
	}
	latest, err := st.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := translog.OpenCheckpoint(latest.Note, "lethe.local/log", keys.PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	reader := translog.NewReader(st)
	for s, id := range ids {
		c, _ := st.Certificate(ctx, id)
		v, err := certificate.Verify(c.Document, keys)
		if err != nil {
			continue // reported above
		}
		p, err := reader.Consistency(ctx, v.Log.Checkpoint.Size, cp.Size)
		if err == nil {
			err = translog.VerifyConsistency(p, v.Log.Checkpoint.Root, cp.Root)
		}
		if err != nil {
			t.Errorf("%s: its checkpoint is not a prefix of the latest: %v", s, err)
		}
	}
}

func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lethe")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/lethe-dev/lethe/cmd/lethe")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// supervisor keeps one `lethe serve` process running, restarting it when a
// failpoint kills it and sometimes killing it itself.
type supervisor struct {
	t       *testing.T
	bin     string
	config  string
	base    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logs    *syncBuffer
	allLogs syncBuffer
	crashes int
	kills   atomic.Int32
}

func (s *supervisor) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		s.crashes++
		s.allLogs.Write([]byte(s.logs.String()))
		s.cmd = nil
		return false
	default:
		return true
	}
}

// ensureRunning starts the process if it is not running and reports
// whether it is up and healthy.
func (s *supervisor) ensureRunning() bool {
	if s.running() {
		return true
	}
	s.logs = &syncBuffer{}
	cmd := exec.Command(s.bin, "serve", "--config", s.config)
	cmd.Env = append(os.Environ(), "LETHE_FAILPOINTS="+crashPoints)
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, s.exited)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !s.running() {
			return false // crashed during start-up work: go round again
		}
		if resp, err := http.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				// Now and then, a SIGKILL at a random moment.
				if rand.IntN(3) == 0 {
					c := s.cmd
					time.AfterFunc(time.Duration(50+rand.IntN(400))*time.Millisecond, func() {
						if c.Process.Signal(syscall.SIGKILL) == nil {
							s.kills.Add(1)
						}
					})
				}
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("lethe serve not healthy within 20s\n%s", s.logs.String())
	return false
}

func (s *supervisor) file(email string) (string, bool) {
	body := fmt.Sprintf(`{"subject":{"email":%q},"jurisdiction":"gdpr"}`, email)
	req, _ := http.NewRequest("POST", s.base+"/v1/requests", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "crash-test-"+email)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false // the process died under us
	}
	defer resp.Body.Close()
	var r apiRequest
	if resp.StatusCode != 201 && resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&r) != nil {
		return "", false
	}
	return r.ID, true
}

func (s *supervisor) allCompleted(ids map[string]string, token string) bool {
	for _, id := range ids {
		req, _ := http.NewRequest("GET", s.base+"/v1/requests/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		var r apiRequest
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || r.Status != "completed" {
			return false
		}
	}
	return true
}

func (s *supervisor) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.allLogs.Write([]byte(s.logs.String()))
	s.cmd = nil
}

func (s *supervisor) tail() string {
	l := s.allLogs.String() + s.logs.String()
	if len(l) > 4000 {
		l = l[len(l)-4000:]
	}
	return l
}

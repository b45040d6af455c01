package app_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// BenchmarkBacklogMemory files b.N requests at one `lethe serve` process
// (the real binary, PostgreSQL, in-process NATS) through
// POST /v1/requests/batch and reports the process's resident memory while
// the backlog builds and for 20s after, as the coordinator, the relay and
// the workers chew it. Its one connector is `manual`, whose tasks wait for a
// person, so no request completes and the whole backlog stays open. The
// target is 256 MiB with 100,000 requests open; peak_vs_256MiB above 1
// misses it. Next to it, the baseline measured in the same run: the RSS of
// the same process once healthy, before anything is filed.
//
// RSS is VmRSS from /proc/<pid>/status, sampled every 200ms; hwm_MiB is the
// kernel's own peak (VmHWM). heap_live_*_MiB is the Go heap live after each
// GC (GODEBUG=gctrace=1 on the child), to tell the heap from the rest.
// requests_open counts the requests in the store at the end. Add -v for
// every log line (RSS every 10,000 filed, the store's counts at the end):
// without it the testing package keeps only the first ten.
//
//	go test ./internal/app -run '^$' -bench BacklogMemory -benchtime 100000x
func BenchmarkBacklogMemory(b *testing.B) {
	bin := buildBinary(b)
	ns := testenv.NATS(b)
	in := newInstance(b, ns.ClientURL(),
		"\n  - {name: paper, type: manual, config: {instructions: \"Shred the paper file.\"}}\n", "")
	// Production logs at info; debug would also pile the child's logs up in
	// this process's memory.
	cfg, err := os.ReadFile(in.configPath)
	if err != nil {
		b.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("log: {level: debug}"), []byte("log: {level: info}"), 1)
	if err := os.WriteFile(in.configPath, cfg, 0o600); err != nil {
		b.Fatal(err)
	}
	base := "http://" + in.addr
	p := startProc(b, "serve", bin, []string{"serve", "--config", in.configPath}, []string{"GODEBUG=gctrace=1"})
	waitProcHealthy(b, p, base)
	pid := p.cmd.Process.Pid
	db, err := sql.Open("pgx", in.storeURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()

	time.Sleep(2 * time.Second) // let start-up settle
	idle, _ := memStatus(pid)

	var peak atomic.Int64
	peak.Store(idle)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				if rss, _ := memStatus(pid); rss > peak.Load() {
					peak.Store(rss)
				}
			}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	var filed atomic.Int64
	batches := make(chan [2]int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range batches {
				if err := memFileBatch(base, in.adminToken, r[0], r[1]); err != nil {
					b.Error(err)
					continue
				}
				n := filed.Add(int64(r[1] - r[0]))
				if n/10000 != (n-int64(r[1]-r[0]))/10000 {
					rss, _ := memStatus(pid)
					b.Logf("%d filed in %s, rss %.0f MiB", n, time.Since(start).Round(time.Second), mib(rss))
				}
			}
		}()
	}
	const batch = 1000
	for i := 0; i < b.N; i += batch {
		batches <- [2]int{i, min(i+batch, b.N)}
	}
	close(batches)
	wg.Wait()
	filing := time.Since(start)
	b.StopTimer()

	after := 20 * time.Second
	if b.N < 1000 { // the run the testing package makes with b.N = 1
		after = time.Second
	}
	for end := time.Now().Add(after); time.Now().Before(end); {
		time.Sleep(min(5*time.Second, after))
		rss, _ := memStatus(pid)
		b.Logf("%s after filing: rss %.0f MiB", time.Since(start.Add(filing)).Round(time.Second), mib(rss))
	}
	close(stopSampling)
	<-sampled
	if !p.alive() {
		b.Fatalf("serve exited\n%s", tail(p.logs.String(), 20000))
	}
	end, hwm := memStatus(pid)

	var open int
	if err := db.QueryRow(`SELECT count(*) FROM requests WHERE status <> 'completed'`).Scan(&open); err != nil {
		b.Fatal(err)
	}
	b.Logf("store: requests %s; tasks %s; outbox %s", memCounts(b, db, `SELECT status, count(*) FROM requests GROUP BY status`),
		memCounts(b, db, `SELECT status, count(*) FROM tasks GROUP BY status`), memCounts(b, db, `SELECT 'rows', count(*) FROM outbox`))
	liveEnd, livePeak := gcLive(p.logs.String())

	top := max(peak.Load(), hwm)
	b.ReportMetric(float64(b.N)/filing.Seconds(), "filed/s")
	b.ReportMetric(mib(idle), "rss_idle_MiB")
	b.ReportMetric(mib(peak.Load()), "rss_peak_MiB")
	b.ReportMetric(mib(hwm), "hwm_MiB")
	b.ReportMetric(mib(end), "rss_end_MiB")
	b.ReportMetric(mib(top)/256, "peak_vs_256MiB")
	b.ReportMetric(float64(livePeak), "heap_live_peak_MiB")
	b.ReportMetric(float64(liveEnd), "heap_live_end_MiB")
	b.ReportMetric(float64(open), "requests_open")
	if open < b.N {
		b.Errorf("%d requests open in the store, want %d: the backlog did not stay", open, b.N)
	}
}

// memFileBatch files requests [from, to) in one POST /v1/requests/batch.
func memFileBatch(base, token string, from, to int) error {
	type item struct {
		Subject        map[string]string `json:"subject"`
		Jurisdiction   string            `json:"jurisdiction"`
		IdempotencyKey string            `json:"idempotency_key"`
	}
	var body struct {
		Requests []item `json:"requests"`
	}
	for i := from; i < to; i++ {
		body.Requests = append(body.Requests, item{Subject: map[string]string{"email": fmt.Sprintf("mem-%07d@example.com", i)},
			Jurisdiction: "gdpr", IdempotencyKey: fmt.Sprintf("mem-%d", i)})
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	code, answer, err := benchPost(base+"/v1/requests/batch", token, string(buf))
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("batch %d-%d: %d %.2000s", from, to, code, answer)
	}
	var v struct {
		Filed        int `json:"filed"`
		Existing     int `json:"existing"`
		Refused      int `json:"refused"`
		NotAttempted int `json:"not_attempted"`
	}
	if err := json.Unmarshal(answer, &v); err != nil {
		return err
	}
	if v.Filed+v.Existing != to-from {
		return fmt.Errorf("batch %d-%d: %+v", from, to, v)
	}
	return nil
}

// memStatus is a process's VmRSS and VmHWM in bytes.
func memStatus(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// gcTrace matches a gctrace line's heap sizes: before->after->live MB.
var gcTrace = regexp.MustCompile(`(?m)^gc \d+ .* (\d+)->(\d+)->(\d+) MB`)

// gcLive is the live heap after the last GC and the largest, in MB.
func gcLive(logs string) (last, peak int) {
	for _, m := range gcTrace.FindAllStringSubmatch(logs, -1) {
		n, _ := strconv.Atoi(m[3])
		last, peak = n, max(peak, n)
	}
	return last, peak
}

func memCounts(b *testing.B, db *sql.DB, query string) string {
	rows, err := db.Query(query)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			b.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	return strings.Join(parts, " ")
}

package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// BenchmarkPipeline pushes requests through `lethe serve` (PostgreSQL,
// in-process NATS) to M connectors that succeed at once, so it measures
// Lethe's own cost per request and task. Next to it, the baseline: single-row
// INSERT commits per second on the same PostgreSQL, one client, which is
// what every state change ultimately waits for.
//
//	go test -run '^$' -bench Pipeline -benchtime 400x ./internal/app/
func BenchmarkPipeline(b *testing.B) {
	b.Run("baseline=insert_commits", benchInsertCommits)
	for _, m := range []int{1, 4} {
		b.Run(fmt.Sprintf("connectors=%d", m), func(b *testing.B) {
			ns := testenv.NATS(b)
			conns := ""
			for i := range m {
				conns += fmt.Sprintf("\n  - {name: bench-%d, type: test_script, concurrency: 16, config: {}}", i)
			}
			in := newInstance(b, ns.ClientURL(), conns, "")
			in.serve(b)
			base := "http://" + in.addr
			b.ResetTimer()
			start := time.Now()
			parallel(b.N, func(i int) {
				body := fmt.Sprintf(`{"subject":{"email":"bench%d@example.com"},"jurisdiction":"gdpr"}`, i)
				if code, _, err := benchPost(base+"/v1/requests", in.adminToken, body); err != nil || code != 201 {
					b.Errorf("file: %d %v", code, err)
				}
			})
			filed := time.Since(start)
			waitCertificates(b, base, b.N, 5*time.Minute)
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/filed.Seconds(), "filed/s")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
			b.ReportMetric(float64(b.N*m)/elapsed.Seconds(), "tasks/s")
		})
	}
}

// benchClient skips the OpenAPI check the tests' default client makes of
// every answer: that is the test's cost, and it ran on the same two cores.
var benchClient = &http.Client{Transport: rawTransport}

// benchPost posts body to url with token, through benchClient, and
// returns the status and the answer.
func benchPost(url, token, body string) (int, []byte, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}

// completedRequests reads the store-wide gauge, which every replica
// reports alike.
var completedRequests = regexp.MustCompile(`(?m)^lethe_requests\{status="completed"\} (\d+)`)

func waitCertificates(b *testing.B, base string, want int, timeout time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := benchClient.Get(base + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := completedRequests.FindSubmatch(body); m != nil {
				if n, _ := strconv.Atoi(string(m[1])); n >= want {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("fewer than %d requests completed after %s", want, timeout)
}

package app_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// mappedConfig is a test_mapped instance's config: the findings its
// discovery reports.
type mappedConfig struct {
	Uncovered []string `yaml:"uncovered"`
	Covered   []string `yaml:"covered"`
}

// mapped is a connector whose system discovery can read; runs counts its
// discoveries across the test binary.
type mapped struct{ cfg mappedConfig }

var mappedRuns atomic.Int32

func init() {
	connectors.Register("test_mapped", "test connector with discovery", connectors.Limits{Concurrency: 1},
		func(_ context.Context, _ string, cfg mappedConfig, _ connectors.Deps) (connectors.Connector, error) {
			return &mapped{cfg: cfg}, nil
		}, connectors.Discovers())
}

func (m *mapped) Erase(context.Context, connectors.Subject) (connectors.Outcome, error) {
	return connectors.NotFound(), nil
}

func (m *mapped) Discover(context.Context, func(connectors.DiscoveryProgress)) (connectors.Coverage, error) {
	mappedRuns.Add(1)
	c := connectors.Coverage{Places: int64(len(m.cfg.Uncovered) + len(m.cfg.Covered) + 3)}
	for _, p := range m.cfg.Uncovered {
		c.Findings = append(c.Findings, connectors.Finding{Place: p, Kind: connectors.DataEmail, Status: connectors.Uncovered,
			Reason: "no statement touches it", Sampled: 10, Matched: 4})
	}
	for _, p := range m.cfg.Covered {
		c.Findings = append(c.Findings, connectors.Finding{Place: p, Kind: connectors.DataEmail, Status: connectors.Covered, Reason: "deleted"})
	}
	return c, nil
}

type dataMapRow struct {
	Connector string           `json:"connector"`
	Status    string           `json:"status"`
	Uncovered int              `json:"uncovered"`
	Covered   int              `json:"covered"`
	ErasesBy  []string         `json:"erases_by"`
	RanAt     *time.Time       `json:"ran_at"`
	Findings  []map[string]any `json:"findings"`
}

// TestDataMap: with the API in one process (no connector credentials)
// and the connectors in a worker, the worker's scheduled discovery reaches
// the API's GET /v1/coverage and /metrics; an instance whose type cannot
// discover says so, and one never discovered has no metric (a zero would
// claim a check that never ran). Auditors may read the map; no token, no
// map.
func TestDataMap(t *testing.T) {
	ns := testenv.NATS(t)
	conns := `
  - name: app-db
    type: test_mapped
    config: {uncovered: [orders.delivery_note, newsletter.email], covered: [customers.email]}
  - name: clean-db
    type: test_mapped
    config: {covered: [users.email]}
  - name: crm
    type: test_script
`
	in := newInstance(t, ns.ClientURL(), conns, "discovery: {interval: 1h}")
	in.serveArgs(t, "--no-workers")
	base := "http://" + in.addr

	var before struct {
		Connectors []dataMapRow `json:"connectors"`
		Interval   string       `json:"discovery_interval"`
	}
	if code := call(t, "GET", base+"/v1/coverage", in.auditToken, "", &before); code != http.StatusOK {
		t.Fatalf("GET /v1/coverage = %d", code)
	}
	if got := statuses(before.Connectors); got != "app-db=not_run clean-db=not_run crm=cannot_discover" || before.Interval != "1h0m0s" {
		t.Fatalf("before any worker ran: %s, interval %q", got, before.Interval)
	}
	runs := mappedRuns.Load()

	workerConfig, workerAddr := in.workerConfig(t)
	runInProcess(t, []string{"lethe", "worker", "--config", workerConfig}, &syncBuffer{}, &syncBuffer{}, "http://"+workerAddr)

	waitMetric(t, base, `lethe_uncovered_columns{connector="app-db"} 2`, `lethe_uncovered_columns{connector="clean-db"} 0`)
	var after struct {
		Connectors []dataMapRow `json:"connectors"`
	}
	call(t, "GET", base+"/v1/coverage", in.auditToken, "", &after)
	if got := statuses(after.Connectors); got != "app-db=uncovered clean-db=covered crm=cannot_discover" {
		t.Fatalf("after the worker's discovery: %s", got)
	}
	app := after.Connectors[0]
	if app.Uncovered != 2 || app.Covered != 1 || app.RanAt == nil || len(app.Findings) != 3 || app.Findings[0]["status"] != "uncovered" ||
		strings.Join(app.ErasesBy, ",") != "email" {
		t.Errorf("app-db row %+v", app)
	}
	if got := mappedRuns.Load() - runs; got != 2 {
		t.Errorf("%d discoveries, want one per discoverable instance", got)
	}
	_, body, _ := getBody(t, base+"/metrics", "")
	metrics := string(body)
	if strings.Contains(metrics, `lethe_uncovered_columns{connector="crm"}`) {
		t.Error("an instance that cannot be discovered has an uncovered-columns metric")
	}
	if code := call(t, "GET", base+"/v1/coverage", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/coverage without a token = %d", code)
	}
	// A second worker started now finds the reports fresh: no second run.
	second, secondAddr := in.workerConfig(t)
	runInProcess(t, []string{"lethe", "worker", "--config", second}, &syncBuffer{}, &syncBuffer{}, "http://"+secondAddr)
	time.Sleep(500 * time.Millisecond)
	if got := mappedRuns.Load() - runs; got != 2 {
		t.Errorf("a second worker discovered again within the interval: %d runs", got)
	}
}

func statuses(rows []dataMapRow) string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Connector+"="+r.Status)
	}
	return strings.Join(out, " ")
}

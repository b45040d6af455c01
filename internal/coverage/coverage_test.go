package coverage_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/coverage"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// replica opens the map as a separate process would: its own connection.
func replica(t *testing.T, url string) *coverage.Map {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := coverage.Open(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeSystem is a Discoverer whose findings and failure the test sets.
type fakeSystem struct {
	runs     atomic.Int32
	delay    time.Duration
	findings []connectors.Finding
	err      error
}

func (f *fakeSystem) Discover(ctx context.Context, _ func(connectors.DiscoveryProgress)) (connectors.Coverage, error) {
	f.runs.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return connectors.Coverage{}, ctx.Err()
	}
	return connectors.Coverage{Places: 7, Findings: f.findings}, f.err
}

var shopFindings = []connectors.Finding{
	{Place: "customers.email", Kind: connectors.DataEmail, Status: connectors.Covered, Reason: "statement customers deletes the row", Sampled: 3, Matched: 3},
	{Place: "orders.delivery_note", Kind: connectors.DataFreeText, Status: connectors.Uncovered, Reason: "no statement touches orders", Sampled: 5, Matched: 2},
	{Place: "audit.actor", Kind: connectors.DataName, Status: connectors.Ignored, Reason: "legal hold"},
}

// TestOneReplicaDiscoversEachInstance: three processes running the same
// instance at the same moment run its discovery once; the others see the
// claim, and nobody runs it again until the report is older than the
// interval.
func TestOneReplicaDiscoversEachInstance(t *testing.T) {
	t.Parallel()
	s := testenv.NATS(t)
	clock := testenv.NewClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	sys := &fakeSystem{delay: 50 * time.Millisecond, findings: shopFindings}
	var wg sync.WaitGroup
	runners := make([]*coverage.Runner, 3)
	for i := range runners {
		runners[i] = &coverage.Runner{Map: replica(t, s.ClientURL()), Interval: time.Hour, Log: zap.NewNop(), Now: clock.Now,
			Instances: []coverage.Instance{{Name: "shop-db", Type: "sql", Discoverer: sys}}}
	}
	for _, r := range runners {
		wg.Go(func() { r.RunDue(context.Background()) })
	}
	wg.Wait()
	if n := sys.runs.Load(); n != 1 {
		t.Fatalf("discovery ran %d times across 3 replicas, want 1", n)
	}
	clock.Advance(59 * time.Minute)
	runners[1].RunDue(context.Background())
	if n := sys.runs.Load(); n != 1 {
		t.Fatalf("discovery ran again before the interval passed (%d runs)", n)
	}
	clock.Advance(2 * time.Minute)
	runners[2].RunDue(context.Background())
	if n := sys.runs.Load(); n != 2 {
		t.Fatalf("discovery did not run again once the report was older than the interval (%d runs)", n)
	}
	reps, err := runners[0].Map.Reports(context.Background())
	testenv.Must(t, err)
	rep := reps["shop-db"]
	if rep.Connector != "shop-db" || rep.Type != "sql" || !rep.RanAt.Equal(clock.Now()) || rep.Places != 7 {
		t.Errorf("report %+v: want it named, typed and dated by the runner", rep)
	}
	if len(rep.Findings) != 3 || rep.Findings[0].Status != connectors.Uncovered {
		t.Errorf("findings %+v: want all three, uncovered first", rep.Findings)
	}
}

// TestAbandonedClaimIsTakenOver: a process that claimed a discovery and
// died before storing a report holds the instance until the timeout, and
// not longer.
func TestAbandonedClaimIsTakenOver(t *testing.T) {
	t.Parallel()
	s := testenv.NATS(t)
	clock := testenv.NewClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	dying := &fakeSystem{delay: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	dead := &coverage.Runner{Map: replica(t, s.ClientURL()), Interval: time.Hour, Timeout: 10 * time.Minute, Log: zap.NewNop(), Now: clock.Now,
		Instances: []coverage.Instance{{Name: "files", Type: "filesystem", Discoverer: dying}}}
	done := make(chan struct{})
	go func() { dead.RunDue(ctx); close(done) }()
	for dying.runs.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the process dies mid-discovery: nothing stored but its claim
	<-done
	live := &fakeSystem{findings: shopFindings[:1]}
	other := &coverage.Runner{Map: replica(t, s.ClientURL()), Interval: time.Hour, Timeout: 10 * time.Minute, Log: zap.NewNop(), Now: clock.Now,
		Instances: []coverage.Instance{{Name: "files", Type: "filesystem", Discoverer: live}}}
	clock.Advance(9 * time.Minute)
	other.RunDue(context.Background())
	if live.runs.Load() != 0 {
		t.Fatal("a claim 9 minutes old (timeout 10) was taken over")
	}
	reps, err := other.Map.Reports(context.Background())
	testenv.Must(t, err)
	if _, ok := reps["files"]; ok {
		t.Fatal("the dead process's discovery left a report")
	}
	clock.Advance(2 * time.Minute)
	other.RunDue(context.Background())
	if live.runs.Load() != 1 {
		t.Fatalf("an expired claim was never taken over (%d runs)", live.runs.Load())
	}
}

// TestDataMapRows: every configured instance is listed in config order
// with a status that says no more than was checked.
func TestDataMapRows(t *testing.T) {
	t.Parallel()
	s := testenv.NATS(t)
	m := replica(t, s.ClientURL())
	ctx := context.Background()
	clock := testenv.NewClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	r := &coverage.Runner{Map: m, Interval: time.Hour, Log: zap.NewNop(), Now: clock.Now, Instances: []coverage.Instance{
		{Name: "shop-db", Type: "sql", Discoverer: &fakeSystem{findings: shopFindings}},
		{Name: "clean-db", Type: "sql", Discoverer: &fakeSystem{findings: shopFindings[:1]}},
		{Name: "broken-db", Type: "sql", Discoverer: &fakeSystem{findings: shopFindings[1:2], err: errors.New("permission denied for table orders")}},
		{Name: "renamed", Type: "sql", Discoverer: &fakeSystem{}},
	}}
	r.RunDue(ctx)
	rows, err := m.DataMap(ctx, []coverage.Described{
		{Name: "crm", Type: "hubspot", ErasesBy: []connectors.Kind{connectors.Email}},
		{Name: "shop-db", Type: "sql", DisplayName: "Shop", ErasesBy: []connectors.Kind{connectors.Email, connectors.UserIDKind("shop")}, Discoverable: true},
		{Name: "clean-db", Type: "sql", Discoverable: true},
		{Name: "broken-db", Type: "sql", Discoverable: true},
		{Name: "new-db", Type: "sql", Discoverable: true},
		{Name: "renamed", Type: "filesystem", Discoverable: true}, // a report of another type is stale
	})
	testenv.Must(t, err)
	var got []string
	for _, row := range rows {
		got = append(got, row.Connector+"="+row.Status)
	}
	want := "crm=cannot_discover shop-db=uncovered clean-db=covered broken-db=failed new-db=not_run renamed=not_run"
	if strings.Join(got, " ") != want {
		t.Errorf("rows %v\nwant %s", got, want)
	}
	shop := rows[1]
	if shop.Uncovered != 1 || shop.Ignored != 1 || shop.Covered != 1 || shop.RanAt == nil || shop.DisplayName != "Shop" || len(shop.ErasesBy) != 2 {
		t.Errorf("shop row %+v", shop)
	}
	if rows[3].Error == "" || rows[3].Uncovered != 1 {
		t.Errorf("a failed discovery must keep its error and what it saw: %+v", rows[3])
	}
	if rows[0].RanAt != nil || rows[0].Findings == nil {
		t.Errorf("an undiscoverable row claims a run or has null findings: %+v", rows[0])
	}
	unc, err := m.Uncovered(ctx)
	testenv.Must(t, err)
	if unc["shop-db"] != 1 || unc["clean-db"] != 0 || unc["broken-db"] != 1 {
		t.Errorf("uncovered counts %v", unc)
	}
}

package worker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/amplitude/amplitudefake"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/internal/ratelimit"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/worker"
)

// searchPath is Amplitude's user search, the endpoint with a limit of
// its own (360 an hour against the deletions' one a second).
const searchPath = "/api/2/usersearch"

// amplitudeBench starts an Amplitude fake whose user search allows
// searchRate a second (burst 2: a lookup that reaches it a little early
// behind a delayed one, as on a loaded machine, is not refused; calls at
// the instance's rate still are) and the rest of its API 50, and a worker
// running an amplitude instance at 25 a second (well inside the 50, so
// that only the user search can be refused) with endpoints; people are
// seeded, their jobs done at the first poll.
func amplitudeBench(t *testing.T, people int, searchRate float64, endpoints map[string]connectors.Rate) (*amplitudefake.Fake, *bench, []connectors.Subject) {
	t.Helper()
	f := amplitudefake.Start(t, amplitudefake.Options{RateLimit: 50, Burst: 10, Polls: -1})
	f.RateLimitPath(searchPath, searchRate, 2)
	subjects := make([]connectors.Subject, people)
	for i := range subjects {
		subjects[i] = connectortest.VendorSubject(i)
		f.Seed(subjects[i])
	}
	conn := connectortest.Build(t, "amplitude", "bulk", f.Config())
	bn := startInstance(t, worker.Instance{Type: "amplitude", Connector: conn, Concurrency: 4,
		RatePerSecond: 25, Burst: 5, Endpoints: endpoints})
	return f, bn, subjects
}

// TestEndpointLimit: Amplitude's user search allows fewer lookups than
// its deletions allow calls. With the endpoint's own limit every
// post-erasure lookup keeps to it: none is refused and every person is
// verified clean. Without it (the control) the lookups go at the
// instance's rate and the vendor refuses some.
func TestEndpointLimit(t *testing.T) {
	t.Parallel()
	const people, searchRate = 12, 4.0
	t.Run("kept", func(t *testing.T) {
		t.Parallel()
		f, bn, subjects := amplitudeBench(t, people, searchRate, map[string]connectors.Rate{"user search": {PerSecond: searchRate, Burst: 1}})
		bn.drive(t, subjects)
		if f.Limited() != 0 {
			for _, c := range f.Calls() {
				if c.Status == 429 {
					t.Logf("refused: %s %s", c.Method, c.Path)
				}
			}
			t.Errorf("the fake refused %d requests as too many; want none", f.Limited())
		}
		if bn.verdicts["clean"] != people {
			t.Errorf("verifications %v; want all %d clean", bn.verdicts, people)
		}
		for i, s := range subjects {
			if n := f.Count(s); n != 0 {
				t.Errorf("person %d: %d records left", i, n)
			}
		}
	})
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		f, bn, subjects := amplitudeBench(t, people, searchRate, nil)
		bn.drive(t, subjects)
		if f.Limited() == 0 {
			t.Error("without the endpoint's limit no lookup was refused: the fake's user search limit is not in force, and the kept case proves nothing")
		}
	})
}

// TestEndpointLimitBeyondDeadline: when the endpoint's next turn comes
// after the call's deadline the lookup fails at once, says why, and
// sends nothing: the person ends erased with verification lookup_failed,
// as the certificate then says, not clean and not after a wait.
func TestEndpointLimitBeyondDeadline(t *testing.T) {
	t.Parallel()
	const people = 3
	f, bn, subjects := amplitudeBench(t, people, 100, map[string]connectors.Rate{"user search": {PerSecond: 1.0 / 3600, Burst: 1}})
	start := time.Now()
	bn.drive(t, subjects)
	if took := time.Since(start); took > time.Minute {
		t.Errorf("took %s: a lookup waited for a turn an hour away", took)
	}
	if bn.verdicts["clean"] != 1 || bn.verdicts["lookup_failed"] != people-1 {
		t.Errorf("verifications %v; want 1 clean (the burst) and %d lookup_failed", bn.verdicts, people-1)
	}
	searches := 0
	for _, c := range f.Calls() {
		if c.Path == searchPath {
			searches++
		}
	}
	if searches != 1 || f.Limited() != 0 {
		t.Errorf("%d user searches sent, %d refused; want 1 and none", searches, f.Limited())
	}
	found := false
	for _, e := range bn.logs.All() {
		if s, ok := e.ContextMap()["error"].(string); ok && strings.Contains(s, "1 request an hour") {
			found = true
		}
	}
	if !found {
		t.Error("no log line says the user search's limit left no turn")
	}
}

// TestEndpointRefusalHoldsTheEndpointOnly: when Amplitude refuses user
// searches as too many (the instance's endpoint limit set above the
// vendor's), the refusal slows and pauses the user search's limiter, in
// every process, and not the instance's: the deletions and status polls,
// which the vendor did not refuse, keep their pace.
func TestEndpointRefusalHoldsTheEndpointOnly(t *testing.T) {
	t.Parallel()
	const people = 8
	f, bn, subjects := amplitudeBench(t, people, 2, map[string]connectors.Rate{"user search": {PerSecond: 20, Burst: 4}})
	bn.drive(t, subjects)
	refused := 0
	for _, c := range f.Calls() {
		if c.Status == 429 {
			if c.Path != searchPath {
				t.Fatalf("the fake refused %s %s: only the user search may be refused here", c.Method, c.Path)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no user search was refused: the test proves nothing")
	}
	kv, err := bn.js.KeyValue(connectortest.Ctx(t), ratelimit.Bucket)
	testenv.Must(t, err)
	read := func(key string) (st struct {
		Pause int64   `json:"pause"`
		Slow  float64 `json:"slow"`
	}) {
		e, err := kv.Get(connectortest.Ctx(t), key)
		testenv.Must(t, err)
		testenv.Must(t, json.Unmarshal(e.Value(), &st))
		return st
	}
	if st := read("bulk"); st.Pause != 0 || st.Slow != 0 {
		t.Errorf("the instance's limiter was held for the user search's refusals: %+v", st)
	}
	if st := read("bulk.user_search"); st.Pause == 0 && st.Slow == 0 {
		t.Errorf("the user search's limiter was not slowed or paused after %d refusals: %+v", refused, st)
	}
	if bn.verdicts["clean"]+bn.verdicts["lookup_failed"] != people {
		t.Errorf("verifications %v; want every person verified or their lookup failed", bn.verdicts)
	}
}

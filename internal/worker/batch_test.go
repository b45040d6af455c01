package worker_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// vendor is a system that erases many people a call: records by email, a
// deletion job per call that is done when polled. A subject whose email
// starts with "refused" makes the vendor refuse the whole call (as a 400
// naming the bad id would); "flaky" makes it fail the call for a while.
type vendor struct {
	mu      sync.Mutex
	records map[string]int64
	erases  []int // size of each EraseBatch call
	polls   []int // size of each PollBatch call
	singles int   // Erase and Poll calls
}

func newVendor(emails ...string) *vendor {
	v := &vendor{records: map[string]int64{}}
	for i, e := range emails {
		v.records[e] = int64(i%3 + 1)
	}
	return v
}

func (v *vendor) BatchLimit() int { return 100 }

func (v *vendor) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.erases = append(v.erases, len(subjects))
	var all []string
	for _, s := range subjects {
		all = append(all, s.Email)
	}
	for _, s := range subjects {
		switch {
		case strings.HasPrefix(s.Email, "refused"):
			// The whole call refused, quoting every address sent: the
			// runtime must redact them all.
			return nil, connectors.Permanentf("vendor refused the call: %s", strings.Join(all, ","))
		case strings.HasPrefix(s.Email, "flaky"):
			return nil, connectors.Retryable(fmt.Errorf("vendor unavailable for %s", strings.Join(all, ",")), 0)
		}
	}
	items := make([]connectors.Item, len(subjects))
	for i, s := range subjects {
		if s.Email == "" {
			items[i].Err = connectors.Permanentf("the subject has no email")
			continue
		}
		n := v.records[s.Email]
		delete(v.records, s.Email)
		items[i].Outcome = connectors.Running(fmt.Sprintf("job-%d:%d", len(v.erases), n), 10*time.Millisecond)
	}
	return items, nil
}

func (v *vendor) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	v.mu.Lock()
	v.singles++
	v.mu.Unlock()
	return connectors.Outcome{}, connectors.Permanentf("the batching runtime called Erase")
}

func (v *vendor) PollBatch(_ context.Context, refs []string) ([]connectors.Item, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.polls = append(v.polls, len(refs))
	items := make([]connectors.Item, len(refs))
	for i, ref := range refs {
		var job, n int64
		if _, err := fmt.Sscanf(ref, "job-%d:%d", &job, &n); err != nil {
			items[i].Err = connectors.Permanentf("bad ref")
			continue
		}
		items[i].Outcome = connectors.Erased(n, connectors.Evidence{Kind: "job", Value: fmt.Sprintf("job %d done", job)})
	}
	return items, nil
}

func (v *vendor) Poll(context.Context, string) (connectors.Outcome, error) {
	v.mu.Lock()
	v.singles++
	v.mu.Unlock()
	return connectors.Outcome{}, connectors.Permanentf("the batching runtime called Poll")
}

func (v *vendor) calls() (erases, polls []int, singles int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.erases), slices.Clone(v.polls), v.singles
}

// bench is a NATS server with Lethe's streams, a worker running one
// instance, and the results it reports.
type bench struct {
	js      jetstream.JetStream
	results jetstream.Consumer
	logs    *observer.ObservedLogs
	topo    bus.Topology
	log     *zap.Logger
	// start runs the worker: after the first tasks are published, so
	// that one pull finds them all.
	start func()
	once  sync.Once
	// verdicts counts, after drive, the people erased or found absent
	// by their results' verification.
	verdicts map[string]int
}

func startWorker(t *testing.T, conn connectors.Connector, window time.Duration) *bench {
	t.Helper()
	return startInstance(t, worker.Instance{Connector: conn, Concurrency: 2, BatchWindow: window})
}

// startInstance is startWorker for any instance; its name is "bulk".
func startInstance(t testing.TB, in worker.Instance) *bench {
	t.Helper()
	srv := testenv.NATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	testenv.Must(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	testenv.Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	topo := bus.Topology{Replicas: 1}
	testenv.Must(t, topo.EnsureStreams(ctx, js))
	results, err := topo.CoordinatorConsumer(ctx, js)
	testenv.Must(t, err)
	core, logs := observer.New(zap.DebugLevel)
	b := &bench{js: js, results: results, logs: logs, topo: topo, log: zap.New(core)}
	b.start = func() { b.run(ctx, in, 0) }
	return b
}

// run runs a worker for in until ctx ends (with grace for its calls in
// flight: 0 for the default); done closes when it has stopped.
func (b *bench) run(ctx context.Context, in worker.Instance, grace time.Duration) (done chan struct{}) {
	done = make(chan struct{})
	w := &worker.Worker{JS: b.js, Topology: b.topo, Log: b.log, Grace: grace}
	in.Name, in.Type = "bulk", cmp.Or(in.Type, "test")
	go func() {
		defer close(done)
		_ = w.Run(ctx, []worker.Instance{in})
	}()
	return done
}

func (b *bench) publish(t testing.TB, tasks ...bus.Task) {
	t.Helper()
	for _, task := range tasks {
		task.V, task.Connector, task.IssuedAt = bus.Version, "bulk", time.Now()
		if task.Attempt == 0 {
			task.Attempt = 1
		}
		body, err := json.Marshal(task)
		testenv.Must(t, err)
		_, err = b.js.Publish(context.Background(), bus.TaskSubject("bulk"), body, jetstream.WithMsgID(task.TaskID+"/"+task.Kind))
		testenv.Must(t, err)
	}
	b.once.Do(b.start)
}

// collect waits for n results, by task id.
func (b *bench) collect(t *testing.T, n int) map[string]bus.Result {
	t.Helper()
	got := map[string]bus.Result{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		batch, err := b.results.Fetch(n-len(got), jetstream.FetchMaxWait(time.Second))
		testenv.Must(t, err)
		for msg := range batch.Messages() {
			res, err := bus.DecodeResult(msg.Data())
			testenv.Must(t, err)
			if _, dup := got[res.TaskID]; dup {
				t.Errorf("task %s reported twice", res.TaskID)
			}
			got[res.TaskID] = res
			_ = msg.Ack()
		}
	}
	if len(got) < n {
		t.Fatalf("%d of %d results reported", len(got), n)
	}
	return got
}

// noAddressLogged fails the test when a log line names anyone.
func (b *bench) noAddressLogged(t *testing.T) {
	t.Helper()
	for _, e := range b.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if strings.Contains(line, "@example.com") {
			t.Errorf("a log line names someone: %s", line)
		}
	}
}

func eraseTask(i int, email string) bus.Task {
	return bus.Task{Kind: bus.KindErase, TaskID: fmt.Sprintf("t%d", i), RequestID: fmt.Sprintf("r%d", i),
		Subject: connectors.Subject{Email: email}}
}

// TestBatchGathersTasksOfManyRequests: erase tasks of twelve requests go to
// the vendor in one call, their polls in another, and each request gets
// its own count back.
func TestBatchGathersTasksOfManyRequests(t *testing.T) {
	var emails []string
	for i := range 12 {
		emails = append(emails, fmt.Sprintf("p%d@example.com", i))
	}
	v := newVendor(emails...)
	want := map[string]int64{}
	for i, e := range emails {
		want[fmt.Sprintf("t%d", i)] = v.records[e]
	}
	b := startWorker(t, v, 500*time.Millisecond)
	for i, e := range emails {
		b.publish(t, eraseTask(i, e))
	}
	running := b.collect(t, len(emails))
	var polls []bus.Task
	for id, res := range running {
		if res.Status != bus.ResultRunning || res.JobRef == "" || res.RequestID != "r"+id[1:] {
			t.Fatalf("%s: %+v, want running on its own request", id, res)
		}
		polls = append(polls, bus.Task{Kind: bus.KindPoll, TaskID: id, RequestID: res.RequestID, JobRef: res.JobRef,
			Subject: connectors.Subject{Email: emails[atoi(t, id[1:])]}})
	}
	b.publish(t, polls...)
	done := b.collect(t, len(emails))
	for id, res := range done {
		if res.Status != bus.ResultErased || res.Records != want[id] {
			t.Errorf("%s: %s with %d records, want erased with %d", id, res.Status, res.Records, want[id])
		}
		if res.Verification != "not_available" {
			t.Errorf("%s: verification %q, want not_available (the vendor cannot look people up)", id, res.Verification)
		}
	}
	// The polls are published while a pull is open: a window may close
	// while they arrive, leaving them in two batches.
	erases, pollCalls, singles := v.calls()
	if !slices.Equal(erases, []int{12}) || len(pollCalls) > 2 || sum(pollCalls) != 12 || singles != 0 {
		t.Errorf("vendor calls: erase batches %v, poll batches %v, single calls %d; want one of 12, at most two summing to 12, and none single", erases, pollCalls, singles)
	}
}

func sum(ns []int) int {
	var n int
	for _, x := range ns {
		n += x
	}
	return n
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBatchRefusedSplits: the vendor refuses any call holding one bad
// address; the runtime halves the batch until the bad one stands alone,
// so the seven others are erased, and the bad one's error names nobody.
func TestBatchRefusedSplits(t *testing.T) {
	emails := []string{"a@example.com", "b@example.com", "c@example.com", "refused@example.com",
		"d@example.com", "e@example.com", "f@example.com", "g@example.com"}
	v := newVendor(emails...)
	b := startWorker(t, v, 500*time.Millisecond)
	for i, e := range emails {
		b.publish(t, eraseTask(i, e))
	}
	got := b.collect(t, len(emails))
	for i, e := range emails {
		res := got[fmt.Sprintf("t%d", i)]
		if e != "refused@example.com" {
			if res.Status != bus.ResultRunning {
				t.Errorf("%d: %s (%+v), want running: a neighbour's refusal held it up", i, res.Status, res.Error)
			}
			continue
		}
		if res.Status != bus.ResultFailed || res.Error == nil || !res.Error.Permanent {
			t.Fatalf("the refused subject: %+v, want a permanent failure", res)
		}
		if strings.Contains(res.Error.Message, "@example.com") {
			t.Errorf("the refused subject's error names someone: %q", res.Error.Message)
		}
	}
	b.noAddressLogged(t)
	erases, _, _ := v.calls()
	// 8 refused → its first 4 refused → 2 erased, 2 refused → 1 erased,
	// 1 refused → the last 4 erased.
	if want := []int{8, 4, 2, 2, 1, 1, 4}; !slices.Equal(erases, want) {
		t.Errorf("erase calls %v, want %v", erases, want)
	}
}

// TestBatchItemErrorAndOutage: a subject the connector cannot use fails
// alone without splitting the call; a call failing for a while fails its
// tasks retryably, after the quick retries, without splitting, and with
// nobody's address in any error.
func TestBatchItemErrorAndOutage(t *testing.T) {
	t.Run("item", func(t *testing.T) {
		v := newVendor("a@example.com", "b@example.com")
		b := startWorker(t, v, 300*time.Millisecond)
		b.publish(t, eraseTask(0, "a@example.com"), eraseTask(1, ""), eraseTask(2, "b@example.com"))
		got := b.collect(t, 3)
		if got["t1"].Status != bus.ResultFailed || !got["t1"].Error.Permanent {
			t.Errorf("subject without an email: %+v, want a permanent failure", got["t1"])
		}
		if got["t0"].Status != bus.ResultRunning || got["t2"].Status != bus.ResultRunning {
			t.Errorf("the others: %s and %s, want running", got["t0"].Status, got["t2"].Status)
		}
		if erases, _, _ := v.calls(); !slices.Equal(erases, []int{3}) {
			t.Errorf("erase calls %v, want one of 3", erases)
		}
	})
	t.Run("outage", func(t *testing.T) {
		v := newVendor("a@example.com", "flaky@example.com")
		b := startWorker(t, v, 300*time.Millisecond)
		b.publish(t, eraseTask(0, "a@example.com"), eraseTask(1, "flaky@example.com"))
		got := b.collect(t, 2)
		for id, res := range got {
			if res.Status != bus.ResultFailed || res.Error == nil || res.Error.Permanent {
				t.Errorf("%s: %+v, want a retryable failure", id, res)
				continue
			}
			if strings.Contains(res.Error.Message, "@example.com") {
				t.Errorf("%s: the error names someone: %q", id, res.Error.Message)
			}
		}
		b.noAddressLogged(t)
		if erases, _, _ := v.calls(); !slices.Equal(erases, []int{2, 2, 2}) {
			t.Errorf("erase calls %v, want the call and its two quick retries, unsplit", erases)
		}
	})
}

// TestBatchOffErasesOneByOne: with no batch window the runtime calls
// Erase, one person a call, as for any connector.
func TestBatchOffErasesOneByOne(t *testing.T) {
	v := newVendor("a@example.com")
	b := startWorker(t, v, 0)
	b.publish(t, eraseTask(0, "a@example.com"))
	got := b.collect(t, 1)
	if got["t0"].Status != bus.ResultFailed {
		t.Errorf("status %s, want the failure of the single Erase", got["t0"].Status)
	}
	if erases, _, singles := v.calls(); len(erases) != 0 || singles != 1 {
		t.Errorf("erase batches %v, single calls %d; want none and one", erases, singles)
	}
}

// lookingVendor is vendor with lookups, alone and in batches; "stays"
// addresses are still found after erasure.
type lookingVendor struct {
	*vendor
	batchLookups, lookups []string
}

func (v *lookingVendor) found(s connectors.Subject) connectors.Verification {
	if strings.HasPrefix(s.Email, "stays") {
		return connectors.Verification{Remaining: 1}
	}
	return connectors.Verification{Evidence: []connectors.Evidence{{Kind: "lookup", Value: "none left"}}}
}

func (v *lookingVendor) Verify(_ context.Context, s connectors.Subject) (connectors.Verification, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lookups = append(v.lookups, s.Email)
	return v.found(s), nil
}

func (v *lookingVendor) VerifyBatch(_ context.Context, subjects []connectors.Subject) ([]connectors.Checked, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]connectors.Checked, len(subjects))
	for i, s := range subjects {
		v.batchLookups = append(v.batchLookups, s.Email)
		out[i].Verification = v.found(s)
	}
	return out, nil
}

// TestBatchLookups: after a batch's polls, the post-erasure lookups go to
// the vendor in one call; only the subject still found is looked up again
// alone, and fails.
func TestBatchLookups(t *testing.T) {
	emails := []string{"a@example.com", "b@example.com", "stays@example.com", "c@example.com"}
	v := &lookingVendor{vendor: newVendor(emails...)}
	b := startWorker(t, v, 300*time.Millisecond)
	for i, e := range emails {
		b.publish(t, eraseTask(i, e))
	}
	var polls []bus.Task
	for id, res := range b.collect(t, len(emails)) {
		polls = append(polls, bus.Task{Kind: bus.KindPoll, TaskID: id, RequestID: res.RequestID, JobRef: res.JobRef,
			Subject: connectors.Subject{Email: emails[atoi(t, id[1:])]}})
	}
	b.publish(t, polls...)
	got := b.collect(t, len(emails))
	for i, e := range emails {
		res := got[fmt.Sprintf("t%d", i)]
		if e == "stays@example.com" {
			if res.Status != bus.ResultFailed {
				t.Errorf("the subject still found: %s, want failed", res.Status)
			}
			continue
		}
		if res.Status != bus.ResultErased || res.Verification != "clean" || !strings.Contains(fmt.Sprint(res.Evidence), "none left") {
			t.Errorf("%s: %s, verification %q, evidence %v; want erased, clean, with the lookup's evidence", e, res.Status, res.Verification, res.Evidence)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !slices.Equal(slices.Sorted(slices.Values(v.batchLookups)), slices.Sorted(slices.Values(emails))) {
		t.Errorf("batch lookups %v, want all four once", v.batchLookups)
	}
	for _, e := range v.lookups {
		if e != "stays@example.com" {
			t.Errorf("%s looked up alone after the batch found it gone", e)
		}
	}
	if len(v.lookups) == 0 {
		t.Error("the subject still found was not looked up again alone")
	}
}

// httpBatcher is a batch eraser making one vendor request per subject (as
// a lookup per person does) through vendorhttp.
type httpBatcher struct {
	*vendor
	api      *vendorhttp.Client
	url      string
	erasures atomic.Int32
}

func (h *httpBatcher) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	h.erasures.Add(1)
	items := make([]connectors.Item, len(subjects))
	for i := range subjects {
		if _, err := h.api.Send(ctx, "GET", h.url, nil, nil, "lookup"); err != nil {
			return nil, err
		}
		items[i].Outcome = connectors.NotFound()
	}
	return items, nil
}

// TestBatchWaitsOutATooMany: a 429 in the middle of a batch's requests is
// waited out and the request sent again, instead of the whole batch, its
// requests already made, failing.
func TestBatchWaitsOutATooMany(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 3 {
			w.Header().Set("Retry-After", "0.05")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	h := &httpBatcher{vendor: newVendor(), api: &vendorhttp.Client{Vendor: "Acme", HTTP: srv.Client()}, url: srv.URL}
	b := startInstance(t, worker.Instance{Connector: h, Concurrency: 1, BatchWindow: 300 * time.Millisecond})
	b.publish(t, eraseTask(0, "a@example.com"), eraseTask(1, "b@example.com"), eraseTask(2, "c@example.com"), eraseTask(3, "d@example.com"))
	for id, res := range b.collect(t, 4) {
		if res.Status != bus.ResultNotFound {
			t.Errorf("%s: %s (%+v), want not_found", id, res.Status, res.Error)
		}
	}
	if e, calls := h.erasures.Load(), n.Load(); e != 1 || calls != 5 {
		t.Errorf("%d batch calls and %d requests; want 1 and 5 (the refused one sent again)", e, calls)
	}
}

// stuckVendor never finishes a batch: it waits for its context to end.
type stuckVendor struct {
	*vendor
	entered chan struct{}
}

func (s *stuckVendor) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestBatchInterrupted: a worker stopping in the middle of a batch call
// hands every task of the batch back; another worker erases them all, and
// each task is reported once.
func TestBatchInterrupted(t *testing.T) {
	emails := []string{"a@example.com", "b@example.com", "c@example.com"}
	stuck := &stuckVendor{vendor: newVendor(), entered: make(chan struct{}, 1)}
	b := startInstance(t, worker.Instance{Connector: stuck, Concurrency: 1, BatchWindow: 300 * time.Millisecond})
	b.start = func() {}
	for i, e := range emails {
		b.publish(t, eraseTask(i, e))
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := b.run(ctx, worker.Instance{Connector: stuck, Concurrency: 1, BatchWindow: 300 * time.Millisecond}, 100*time.Millisecond)
	select {
	case <-stuck.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first worker never called the vendor")
	}
	cancel()
	<-first
	v := newVendor(emails...)
	rctx, rcancel := context.WithCancel(context.Background())
	t.Cleanup(rcancel)
	b.run(rctx, worker.Instance{Connector: v, Concurrency: 1, BatchWindow: 300 * time.Millisecond}, 0)
	got := b.collect(t, len(emails))
	for id, res := range got {
		if res.Status != bus.ResultRunning {
			t.Errorf("%s: %s (%+v), want running: erased by the second worker", id, res.Status, res.Error)
		}
	}
	if erases, _, _ := v.calls(); sum(erases) != len(emails) {
		t.Errorf("the second worker erased %v, want all three", erases)
	}
	// Nothing more: no task reported twice.
	if batch, err := b.results.Fetch(10, jetstream.FetchMaxWait(500*time.Millisecond)); err == nil {
		for msg := range batch.Messages() {
			res, _ := bus.DecodeResult(msg.Data())
			t.Errorf("a second result for %s: %s", res.TaskID, res.Status)
		}
	}
}

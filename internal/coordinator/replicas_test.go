package coordinator_test

// Several `lethe serve` replicas share one PostgreSQL with no leader: each
// runs the scheduler, the retention sweep, the outbox relay and result
// application. These tests run the same job from two or three replicas at
// once (separate pools to one schema, as separate processes would have) and
// count, in the store, that every effect happened exactly once and that the
// replica that lost a race got no error.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/postgres"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/translog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

const logOrigin = "lethe.example/log"

// replica is one process: its own pool, coordinator and issuer.
type replica struct {
	c     *coordinator.Coordinator
	store store.Store
	log   *translog.Log
}

// cluster is a fresh schema and the replicas running against it, sharing a
// fake clock, a configuration and a signing key as a deployment would.
type cluster struct {
	// connectors, when set, replace the default db and crm.
	connectors []coordinator.Connector
	url        string
	clock      *clock
	signer     *certificate.Signer
	priv       ed25519.PrivateKey
	replicas   []replica
}

func newCluster(t *testing.T, n int, keys *seal.KeyRing, cns ...coordinator.Connector) *cluster {
	t.Helper()
	url := testenv.PostgresSchema(t)
	if _, err := postgres.Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	cl := &cluster{url: url, clock: testenv.NewClock(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)),
		signer: certificate.NewSigner(priv), priv: priv, connectors: cns}
	for range n {
		cl.replicas = append(cl.replicas, cl.open(t, keys))
	}
	return cl
}

// open starts one more process on the cluster's schema.
func (cl *cluster) open(t *testing.T, keys *seal.KeyRing) replica {
	t.Helper()
	st, err := postgres.Open(context.Background(), cl.url, postgres.Options{MaxConns: 6, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ls, err := translog.NewLogSigner(logOrigin, cl.priv)
	if err != nil {
		t.Fatal(err)
	}
	tlog := translog.NewLog(logOrigin, ls)
	issuer := &certificate.Issuer{Signer: cl.signer, Log: tlog, Options: certificate.Options{Issuer: "Example Ltd"}}
	h, _ := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	cns := cl.connectors
	if cns == nil {
		cns = []coordinator.Connector{{Name: "db", Type: "sql", MaxAttempts: 3}, {Name: "crm", Type: "hubspot"}}
	}
	c := coordinator.New(coordinator.Deps{Store: st, Hasher: h, Certifier: issuer, Clock: cl.clock.Now}, coordinator.Config{
		Connectors:   cns,
		RetryInitial: time.Second, RetryMax: time.Minute, PollInterval: time.Minute, RedispatchAfter: time.Hour,
		Retention: coordinator.Retention{ShredAfter: time.Hour, KeepRequests: 24 * time.Hour, UnverifiedAfter: time.Hour},
	})
	return replica{c: c, store: st, log: tlog}
}

func keyRing(t *testing.T, keys ...seal.KEK) *seal.KeyRing {
	t.Helper()
	r, err := seal.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// together runs job on n replicas at once, rounds times. Each round starts
// when every replica is ready, as when their tickers fire together; the
// replicas' results come back in a flat list. Any error fails the test: the
// replica that loses a race must not see one.
func together[T any](t *testing.T, n, rounds int, job func(ctx context.Context, replica int) (T, error)) []T {
	t.Helper()
	var mu sync.Mutex
	var out []T
	for round := range rounds {
		start := make(chan struct{})
		var ready, done sync.WaitGroup
		for i := range n {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				ready.Done()
				<-start
				v, err := job(context.Background(), i)
				if err != nil {
					t.Errorf("round %d, replica %d: %v", round, i, err)
				}
				mu.Lock()
				out = append(out, v)
				mu.Unlock()
			}()
		}
		ready.Wait()
		close(start)
		done.Wait()
	}
	return out
}

// each runs fn for 0…n-1 on a few goroutines; setup, not under test.
func each(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	next := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// fileMany files n requests for name0@example.com, name1@…, spread over rs;
// held requests come from the portal.
func fileMany(t *testing.T, rs []replica, name string, n int, hold erasure.RequestStatus) []erasure.Request {
	t.Helper()
	reqs := make([]erasure.Request, n)
	source := "api"
	if hold != "" {
		source = "portal"
	}
	each(t, n, func(i int) error {
		var err error
		reqs[i], _, err = rs[i%len(rs)].c.File(context.Background(), coordinator.FileInput{
			Subject: erasure.Subject{Email: fmt.Sprintf("%s%d@example.com", name, i)}, Jurisdiction: "gdpr",
			Source: source, Actor: "api:test", Hold: hold})
		return err
	})
	return reqs
}

// finalResults are the results that complete each request: db erased,
// crm found nothing.
func finalResults(t *testing.T, st store.Store, reqs []erasure.Request) []bus.Result {
	t.Helper()
	var out []bus.Result
	for _, req := range reqs {
		ts := tasks(t, bundle{store: st}, req.ID)
		out = append(out, result(ts["db"], bus.KindErase, bus.ResultErased), result(ts["crm"], bus.KindErase, bus.ResultNotFound))
	}
	return out
}

func ids(reqs []erasure.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.ID
	}
	return out
}

// events returns a request's events after checking their chain.
func events(t *testing.T, st store.Store, id string) []erasure.Event {
	t.Helper()
	evs, err := st.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := erasure.VerifyChain(evs); err != nil {
		t.Errorf("request %s: %v", id, err)
	}
	return evs
}

// count counts events of type typ about task (any task when empty) that
// carry every key and value of data.
func count(t *testing.T, evs []erasure.Event, typ, task string, data map[string]any) int {
	t.Helper()
	n := 0
	for _, e := range evs {
		if e.Type != typ || (task != "" && e.TaskID != task) {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(e.Data, &got); err != nil {
			t.Fatal(err)
		}
		match := true
		for k, v := range data {
			match = match && fmt.Sprint(got[k]) == fmt.Sprint(v)
		}
		if match {
			n++
		}
	}
	return n
}

// pending reads the unsent task messages, by task, as "kind attempt".
func pending(t *testing.T, st store.Store) (map[string][]string, int) {
	t.Helper()
	out := map[string][]string{}
	total := 0
	err := st.InTx(context.Background(), func(tx store.Tx) error {
		msgs, err := tx.ClaimOutbox(context.Background(), 100000)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			var task bus.Task
			if err := json.Unmarshal(m.Payload, &task); err != nil {
				return err
			}
			if task.Attempt != m.Attempt || task.TaskID != m.TaskID {
				t.Errorf("outbox row %d says task %s attempt %d, its payload %s attempt %d", m.ID, m.TaskID, m.Attempt, task.TaskID, task.Attempt)
			}
			out[m.TaskID] = append(out[m.TaskID], fmt.Sprintf("%s %d", task.Kind, task.Attempt))
		}
		total = len(msgs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, total
}

// drain empties the outbox, as if the relay had published everything.
func drain(t *testing.T, st store.Store) {
	t.Helper()
	err := st.InTx(context.Background(), func(tx store.Tx) error {
		msgs, err := tx.ClaimOutbox(context.Background(), 100000)
		if err != nil {
			return err
		}
		var ids []int64
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		return tx.DeleteOutbox(context.Background(), ids)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// applyEverywhere hands replica i the results deliveries[i], all replicas
// at once, each applying with four workers as RunResults does, and returns
// how many replicas applied each task's result as news.
func applyEverywhere(t *testing.T, cl *cluster, deliveries [][]bus.Result) map[string]int {
	t.Helper()
	var mu sync.Mutex
	applied := map[string]int{} // task id → replicas that applied its result
	together(t, len(deliveries), 1, func(ctx context.Context, i int) (struct{}, error) {
		next := make(chan bus.Result)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for res := range next {
					a, err := cl.replicas[i].c.ApplyResult(ctx, res)
					if err != nil {
						t.Errorf("replica %d: %v", i, err)
					}
					if a == coordinator.AppliedNew {
						mu.Lock()
						applied[res.TaskID]++
						mu.Unlock()
					}
				}
			})
		}
		for _, res := range deliveries[i] {
			next <- res
		}
		close(next)
		wg.Wait()
		return struct{}{}, nil
	})
	return applied
}

func sum(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

func TestReplicasScheduleEachRetryPollAndRedispatchOnce(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 2, testenv.KeyRing())
	ctx := context.Background()
	st, c := cl.replicas[0].store, cl.replicas[0].c
	// 240 requests: more due tasks (320) than one pass takes (200).
	reqs := fileMany(t, cl.replicas, "person", 240, "")
	drain(t, st)

	// A third of the requests have a failed task due for a retry, a third
	// a vendor job due for a poll, a third both tasks dispatched long ago
	// with no result. The other task of the first two stays queued.
	var retry, poll, redispatch, idle []erasure.Task
	for i, req := range reqs {
		ts := tasks(t, bundle{store: st}, req.ID)
		switch i % 3 {
		case 0:
			retry, idle = append(retry, ts["db"]), append(idle, ts["crm"])
		case 1:
			poll, idle = append(poll, ts["crm"]), append(idle, ts["db"])
		case 2:
			redispatch = append(redispatch, ts["db"], ts["crm"])
		}
	}
	fail := func(task erasure.Task) error {
		r := result(task, bus.KindErase, bus.ResultFailed)
		r.Error = &bus.ResultError{Message: "503 Service Unavailable"}
		_, err := c.ApplyResult(ctx, r)
		return err
	}
	each(t, len(retry), func(i int) error { return fail(retry[i]) })
	each(t, len(poll), func(i int) error {
		_, err := c.ApplyResult(ctx, result(poll[i], bus.KindErase, bus.ResultRunning))
		return err
	})
	testenv.Must(t, st.InTx(ctx, func(tx store.Tx) error {
		for _, k := range redispatch {
			k.Status, k.UpdatedAt = erasure.TaskDispatched, cl.clock.Now()
			if err := tx.UpdateTask(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}))
	eventsBefore := map[string]int{}
	for _, req := range reqs {
		eventsBefore[req.ID] = len(events(t, st, req.ID))
	}
	schedule := func(ctx context.Context, i int) (int, error) { return cl.replicas[i].c.ScheduleDue(ctx) }

	// Past every retry time, poll time and the redispatch limit.
	cl.clock.Advance(61 * time.Minute)
	now := cl.clock.Now()
	if got, want := sum(together(t, 2, 3, schedule)), len(retry)+len(poll)+len(redispatch); got != want {
		t.Errorf("the replicas report %d messages queued, want %d", got, want)
	}
	msgs, total := pending(t, st)
	if want := len(retry) + len(poll) + len(redispatch); total != want {
		t.Errorf("%d messages in the outbox, want %d", total, want)
	}
	for _, k := range retry {
		got := tasks(t, bundle{store: st}, k.RequestID)["db"]
		evs := events(t, st, k.RequestID)
		if got.Status != erasure.TaskQueued || got.Attempt != 2 {
			t.Errorf("retried task: %s attempt %d, want queued attempt 2", got.Status, got.Attempt)
		}
		if !slices.Equal(msgs[k.ID], []string{"erase 2"}) {
			t.Errorf("retried task: messages %v, want one for attempt 2", msgs[k.ID])
		}
		if n := count(t, evs, erasure.EventTaskRetry, k.ID, map[string]any{"attempt": 2}); n != 1 {
			t.Errorf("retried task: %d retry events for attempt 2", n)
		}
	}
	for _, k := range poll {
		got := tasks(t, bundle{store: st}, k.RequestID)["crm"]
		if got.Status != erasure.TaskRunning || !got.NextPollAt.Equal(now.Add(10*time.Minute)) {
			t.Errorf("polled task: %s, next poll %s, want running and one lease from now", got.Status, got.NextPollAt)
		}
		if !slices.Equal(msgs[k.ID], []string{"poll 1"}) {
			t.Errorf("polled task: messages %v, want one poll", msgs[k.ID])
		}
		if n := len(events(t, st, k.RequestID)); n != eventsBefore[k.RequestID] {
			t.Errorf("polls added %d events", n-eventsBefore[k.RequestID])
		}
	}
	for _, k := range redispatch {
		evs := events(t, st, k.RequestID)
		if !slices.Equal(msgs[k.ID], []string{"erase 1"}) {
			t.Errorf("redispatched task: messages %v, want one", msgs[k.ID])
		}
		if n := count(t, evs, erasure.EventTaskRedispatch, k.ID, nil); n != 1 {
			t.Errorf("redispatched task: %d redispatch events", n)
		}
	}
	for _, k := range idle {
		if len(msgs[k.ID]) != 0 {
			t.Errorf("a queued task that was due for nothing got messages %v", msgs[k.ID])
		}
	}

	// Attempt 2 fails too; the jobs still run. Once the retries and the
	// next polls are due, each is sent once more; the redispatched tasks
	// are not due again yet.
	drain(t, st)
	second := make([]erasure.Task, len(retry))
	for i, k := range retry {
		second[i] = tasks(t, bundle{store: st}, k.RequestID)["db"]
	}
	each(t, len(second), func(i int) error { return fail(second[i]) })
	cl.clock.Advance(11 * time.Minute)
	now = cl.clock.Now()
	if got, want := sum(together(t, 2, 3, schedule)), len(retry)+len(poll); got != want {
		t.Errorf("second pass: the replicas report %d messages queued, want %d", got, want)
	}
	msgs, total = pending(t, st)
	if want := len(retry) + len(poll); total != want {
		t.Errorf("second pass: %d messages in the outbox, want %d", total, want)
	}
	for _, k := range retry {
		got := tasks(t, bundle{store: st}, k.RequestID)["db"]
		evs := events(t, st, k.RequestID)
		if got.Status != erasure.TaskQueued || got.Attempt != 3 || !slices.Equal(msgs[k.ID], []string{"erase 3"}) {
			t.Errorf("second retry: %s attempt %d, messages %v", got.Status, got.Attempt, msgs[k.ID])
		}
		if a2, a3 := count(t, evs, erasure.EventTaskRetry, k.ID, map[string]any{"attempt": 2}),
			count(t, evs, erasure.EventTaskRetry, k.ID, map[string]any{"attempt": 3}); a2 != 1 || a3 != 1 {
			t.Errorf("second retry: %d retry events for attempt 2 and %d for attempt 3, want one each", a2, a3)
		}
	}
	for _, k := range poll {
		got := tasks(t, bundle{store: st}, k.RequestID)["crm"]
		if !got.NextPollAt.Equal(now.Add(10*time.Minute)) || !slices.Equal(msgs[k.ID], []string{"poll 1"}) {
			t.Errorf("second poll: next %s, messages %v", got.NextPollAt, msgs[k.ID])
		}
	}
	for _, k := range append(redispatch, idle...) {
		if len(msgs[k.ID]) != 0 {
			t.Errorf("second pass: a task that was due for nothing got messages %v", msgs[k.ID])
		}
	}
}

func TestReplicasHousekeepEachRequestOnce(t *testing.T) {
	t.Parallel()
	oldKEK := seal.KEK{ID: "2025", Key: bytes.Repeat([]byte{1}, 32)}
	newKEK := seal.KEK{ID: "2026", Key: bytes.Repeat([]byte{2}, 32)}
	cl := newCluster(t, 2, keyRing(t, newKEK, oldKEK))
	ctx := context.Background()
	st := cl.replicas[0].store
	// Requests filed before the key-encryption key was rotated, by a
	// process that had only the old key: completed ones, unverified portal
	// requests, and requests still in progress (their keys need re-wrapping).
	before := cl.open(t, keyRing(t, oldKEK))
	done := fileMany(t, []replica{before}, "done", 120, "")
	results := finalResults(t, st, done)
	each(t, len(results), func(i int) error {
		_, err := before.c.ApplyResult(ctx, results[i])
		return err
	})
	unverified := fileMany(t, []replica{before}, "maybe", 100, erasure.RequestUnverified)
	live := fileMany(t, []replica{before}, "live", 60, "")
	certs, err := st.Certificates(ctx, ids(done))
	if err != nil || len(certs) != len(done) {
		t.Fatalf("%d certificates for %d completed requests, %v", len(certs), len(done), err)
	}
	sweep := func(ctx context.Context, i int) (coordinator.Housekeeping, error) {
		return cl.replicas[i].c.Housekeep(ctx)
	}
	total := func(hs []coordinator.Housekeeping) coordinator.Housekeeping {
		var s coordinator.Housekeeping
		for _, h := range hs {
			s.Shredded, s.Expired, s.Purged, s.Rewrapped = s.Shredded+h.Shredded, s.Expired+h.Expired, s.Purged+h.Purged, s.Rewrapped+h.Rewrapped
		}
		return s
	}

	// Past the grace period and the verification deadline.
	cl.clock.Advance(2 * time.Hour)
	want := coordinator.Housekeeping{Shredded: len(done), Expired: len(unverified), Rewrapped: len(live)}
	if got := total(together(t, 2, 3, sweep)); got != want {
		t.Errorf("the replicas report %+v, want %+v", got, want)
	}
	for _, req := range done {
		r, err := st.Request(ctx, req.ID)
		evs := events(t, st, req.ID)
		if err != nil || r.ShreddedAt.IsZero() || r.Subject.Email != "" {
			t.Errorf("completed request: shredded at %s, %v", r.ShreddedAt, err)
		}
		if n := count(t, evs, erasure.EventShredded, "", nil); n != 1 {
			t.Errorf("completed request: %d shred events", n)
		}
	}
	for _, req := range unverified {
		r, err := st.Request(ctx, req.ID)
		evs := events(t, st, req.ID)
		if err != nil || r.Status != erasure.RequestCancelled || r.ShreddedAt.IsZero() {
			t.Errorf("unverified request: %s, shredded at %s, %v", r.Status, r.ShreddedAt, err)
		}
		cancels := count(t, evs, erasure.EventRequestStatus, "", map[string]any{"to": erasure.RequestCancelled})
		if shreds := count(t, evs, erasure.EventShredded, "", nil); cancels != 1 || shreds != 1 {
			t.Errorf("unverified request: %d cancel and %d shred events, want one each", cancels, shreds)
		}
	}
	// The old key can go: every live request opens with the new one alone.
	after := cl.open(t, keyRing(t, newKEK))
	for i, req := range live {
		r, err := after.store.Request(ctx, req.ID)
		if err != nil || r.Subject.Email != fmt.Sprintf("live%d@example.com", i) || r.Status != erasure.RequestInProgress {
			t.Errorf("live request under the new key alone: %q %s, %v", r.Subject.Email, r.Status, err)
		}
	}
	if n, remaining, err := st.RewrapDataKeys(ctx, 1000); n != 0 || remaining != 0 || err != nil {
		t.Errorf("after the sweeps %d keys re-wrapped, %d remaining, %v", n, remaining, err)
	}

	// Past the retention period of both (220 requests: two passes).
	cl.clock.Advance(25 * time.Hour)
	want = coordinator.Housekeeping{Purged: len(done) + len(unverified)}
	if got := total(together(t, 2, 3, sweep)); got != want {
		t.Errorf("the replicas report %+v, want %+v", got, want)
	}
	for _, req := range done {
		p, err := st.Purge(ctx, req.ID)
		if c := certs[req.ID]; err != nil || p.Status != erasure.RequestCompleted || p.CertificateID != c.ID || p.LogIndex != c.LogIndex {
			t.Errorf("purge record %+v, %v; certificate %s at %d", p, err, c.ID, c.LogIndex)
		}
		if _, err := st.Request(ctx, req.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a purged request: %v", err)
		}
	}
	for _, req := range unverified {
		if p, err := st.Purge(ctx, req.ID); err != nil || p.Status != erasure.RequestCancelled || p.LogIndex != -1 {
			t.Errorf("purge record %+v, %v", p, err)
		}
	}
	for _, req := range live {
		if r, err := st.Request(ctx, req.ID); err != nil || r.Status != erasure.RequestInProgress {
			t.Errorf("a live request after the purge: %s, %v", r.Status, err)
		}
	}
}

func TestReplicasIssueOneCertificatePerRequest(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 3, testenv.KeyRing())
	ctx := context.Background()
	st := cl.replicas[0].store
	// Every replica records the signing key as it starts.
	jwk := cl.signer.PublicJWK()
	active := translog.KeyEvent{Event: translog.KindKeyActivated, Kid: jwk.Kid, X: jwk.X}
	added := together(t, 3, 1, func(ctx context.Context, i int) (int, error) {
		return cl.replicas[i].log.RecordKeys(ctx, cl.replicas[i].store, active, nil, cl.clock.Now())
	})
	if sum(added) != 1 {
		t.Errorf("the replicas added %d key leaves, want 1", sum(added))
	}
	reqs := fileMany(t, cl.replicas, "person", 150, "")
	results := finalResults(t, st, reqs)
	// Every result reaches every replica: replicas 0 and 1 in the same
	// order (a redelivery racing the first delivery), replica 2 in another.
	// Each replica applies with four workers, as RunResults does.
	shuffled := slices.Clone(results)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	deliveries := [][]bus.Result{results, results, shuffled}
	applied := applyEverywhere(t, cl, deliveries)
	for _, res := range results {
		if applied[res.TaskID] != 1 {
			t.Errorf("the result for task %s was applied %d times", res.TaskID, applied[res.TaskID])
		}
	}

	certs, err := st.Certificates(ctx, ids(reqs))
	if err != nil {
		t.Fatal(err)
	}
	keys := certificate.JWKS{Keys: []certificate.JWK{jwk}}
	atIndex := map[int64]string{} // log index → certificate id
	for _, req := range reqs {
		r, err := st.Request(ctx, req.ID)
		evs := events(t, st, req.ID)
		if err != nil || r.Status != erasure.RequestCompleted {
			t.Errorf("request %s, %v", r.Status, err)
		}
		for _, k := range tasks(t, bundle{store: st}, req.ID) {
			if n := count(t, evs, erasure.EventTaskResult, k.ID, nil); n != 1 {
				t.Errorf("task %s: %d result events", k.Connector, n)
			}
		}
		issued := count(t, evs, erasure.EventCertificateIssue, "", nil)
		completed := count(t, evs, erasure.EventRequestStatus, "", map[string]any{"to": erasure.RequestCompleted})
		if issued != 1 || completed != 1 {
			t.Errorf("request %s: %d certificate events, %d completions", req.ID, issued, completed)
		}
		c, ok := certs[req.ID]
		if !ok {
			t.Errorf("request %s has no certificate", req.ID)
			continue
		}
		v, err := certificate.VerifyFor(c.Document, keys, logOrigin)
		if err != nil || v.Payload.RequestID != req.ID || v.Log.Index != c.LogIndex {
			t.Errorf("certificate of %s: %v (log index %d, stored %d)", req.ID, err, v.Log.Index, c.LogIndex)
		}
		if other, dup := atIndex[c.LogIndex]; dup {
			t.Errorf("certificates %s and %s share leaf %d", other, c.ID, c.LogIndex)
		}
		atIndex[c.LogIndex] = c.ID
	}

	// The log: the key, then one leaf per certificate, each where its
	// certificate says; the latest checkpoint covers it all.
	size, err := st.LogSize(ctx)
	if err != nil || size != int64(1+len(reqs)) {
		t.Fatalf("log size %d, want %d; %v", size, 1+len(reqs), err)
	}
	entries, err := st.LogEntries(ctx, 0, size)
	if err != nil || int64(len(entries)) != size {
		t.Fatalf("%d log entries, %v", len(entries), err)
	}
	for _, e := range entries {
		switch {
		case e.Kind == translog.KindKeyActivated && e.Ref == jwk.Kid && e.Index == 0:
		case e.Kind == translog.KindCertificate && atIndex[e.Index] == e.Ref:
		default:
			t.Errorf("log leaf %d: %s %s", e.Index, e.Kind, e.Ref)
		}
	}
	cp, err := st.LatestCheckpoint(ctx)
	root, rerr := translog.NewReader(st).Root(ctx, size)
	if err != nil || rerr != nil || cp.Size != size || !bytes.Equal(cp.Root, root[:]) {
		t.Errorf("latest checkpoint %d, root matches %v; %v %v", cp.Size, bytes.Equal(cp.Root, root[:]), err, rerr)
	}
}

// TestReplicasResolveEachRequestOnce: every resolver's answer reaches
// three replicas at once; each request still gains its identifiers once,
// ends resolution once and gets one erase task per system with one message
// each.
func TestReplicasResolveEachRequestOnce(t *testing.T) {
	t.Parallel()
	app := erasure.UserIDKind("app")
	cl := newCluster(t, 3, testenv.KeyRing(),
		coordinator.Connector{Name: "shop", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{{erasure.Email}},
			ResolveBy: []erasure.Kind{erasure.Email}, Gives: []erasure.Kind{app}}.Normalized()},
		coordinator.Connector{Name: "crm", Type: "hubspot", Plan: connectors.Plan{Keys: []connectors.Requirement{{erasure.Email}},
			ResolveBy: []erasure.Kind{erasure.Email}, Gives: []erasure.Kind{erasure.UserIDKind("crm")}}.Normalized()},
		coordinator.Connector{Name: "analytics", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{{app}}}.Normalized()})
	st := cl.replicas[0].store
	reqs := fileMany(t, cl.replicas, "found", 80, "")
	drain(t, st)
	var results []bus.Result
	for i, req := range reqs {
		ts := phaseTasks(t, bundle{store: st}, req.ID, erasure.PhaseResolve)
		results = append(results, resolved(ts["shop"], map[erasure.Kind][]string{app: {fmt.Sprintf("app-%03d", i)}}), resolved(ts["crm"], nil))
	}
	shuffled := slices.Clone(results)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	deliveries := [][]bus.Result{results, results, shuffled}
	applyEverywhere(t, cl, deliveries)
	msgs, total := pending(t, st)
	if total != 3*len(reqs) {
		t.Errorf("%d erase messages queued, want %d", total, 3*len(reqs))
	}
	for i, req := range reqs {
		evs := events(t, st, req.ID)
		if n := count(t, evs, erasure.EventErasing, "", nil); n != 1 {
			t.Errorf("request %d ended resolution %d times", i, n)
		}
		if n := count(t, evs, erasure.EventIdentifiersResolved, "", map[string]any{"from": "shop"}); n != 1 {
			t.Errorf("request %d: %d identifiers.resolved events", i, n)
		}
		erase := phaseTasks(t, bundle{store: st}, req.ID, erasure.PhaseErase)
		if len(erase) != 3 || erase["analytics"].Status != erasure.TaskQueued {
			t.Errorf("request %d: erase tasks %v", i, erase)
		}
		for _, k := range erase {
			if got := msgs[k.ID]; len(got) != 1 || got[0] != "erase 1" {
				t.Errorf("request %d, %s: messages %v", i, k.Connector, got)
			}
		}
		if r, _ := st.Request(context.Background(), req.ID); r.Subject.Get(app) != fmt.Sprintf("app-%03d", i) {
			t.Errorf("request %d: app id %q", i, r.Subject.Get(app))
		}
	}
}

func TestReplicasRelayEachMessageOnce(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 2, testenv.KeyRing())
	ctx := context.Background()
	st := cl.replicas[0].store
	ns := testenv.NATS(t)
	var relays []*bus.Relay
	var js jetstream.JetStream
	for _, r := range cl.replicas {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err = jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Must(t, bus.Topology{}.EnsureStreams(ctx, js))
		relays = append(relays, bus.NewRelay(bus.Relay{Store: r.store, JS: js, Log: zap.NewNop(), Clock: cl.clock.Now, Batch: 20}))
	}
	reqs := fileMany(t, cl.replicas, "person", 150, "")
	want := 2 * len(reqs)

	// Both relays flush until the outbox is empty. JetStream drops a
	// message published twice (same Nats-Msg-Id), so the stream alone
	// would hide a double claim: count what each relay published.
	published := together(t, 2, 1, func(ctx context.Context, i int) (int, error) {
		n := 0
		for {
			k, err := relays[i].Flush(ctx)
			if err != nil {
				return n, err
			}
			n += k
			if k > 0 {
				continue
			}
			stats, err := cl.replicas[i].store.Stats(ctx, cl.clock.Now())
			if err != nil || stats.OutboxPending == 0 {
				return n, err
			}
		}
	})
	if got := sum(published); got != want {
		t.Errorf("the relays published %d messages (%v), want %d", got, published, want)
	}
	s, err := js.Stream(ctx, bus.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs != uint64(want) {
		t.Errorf("%d task messages in the stream, want %d; %v", info.State.Msgs, want, err)
	}
	for _, req := range reqs {
		evs := events(t, st, req.ID)
		for _, k := range tasks(t, bundle{store: st}, req.ID) {
			if n := count(t, evs, erasure.EventTaskDispatched, k.ID, nil); k.Status != erasure.TaskDispatched || n != 1 {
				t.Errorf("task %s: %s with %d dispatch events", k.Connector, k.Status, n)
			}
		}
	}
}

// TestCancelWhileARelayHoldsItsMessages: a relay in another replica has
// claimed a request's task messages (it locks them before the request)
// when staff cancel the request. The cancel must not wait for the relay,
// which would be waiting for the request in turn, a deadlock; and the
// relay must then drop the messages rather than send a cancelled erasure.
func TestCancelWhileARelayHoldsItsMessages(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, 2, testenv.KeyRing())
	ctx := context.Background()
	req := fileMany(t, cl.replicas[:1], "cancel", 1, "")[0]

	claimed, cancelled := make(chan struct{}), make(chan struct{})
	relayed := make(chan error, 1)
	go func() {
		relayed <- cl.replicas[1].store.InTx(ctx, func(tx store.Tx) error {
			msgs, err := tx.ClaimOutbox(ctx, 10)
			if err != nil || len(msgs) != 2 {
				return fmt.Errorf("claimed %d messages: %v", len(msgs), err)
			}
			close(claimed)
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
			}
			got, err := tx.LockRequest(ctx, req.ID)
			if err == nil && got.Status != erasure.RequestCancelled {
				err = fmt.Errorf("the relay sees the request %s", got.Status)
			}
			return err
		})
	}()
	<-claimed
	start := time.Now()
	if _, err := cl.replicas[0].c.Cancel(ctx, req.ID, "api:ops", "filed twice"); err != nil {
		t.Fatal(err)
	}
	close(cancelled)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the cancel waited %s for the relay's claim", d)
	}
	if err := <-relayed; err != nil {
		t.Fatal(err)
	}

	// The messages the cancel could not delete are the relay's to drop.
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	testenv.Must(t, bus.Topology{}.EnsureStreams(ctx, js))
	relay := bus.NewRelay(bus.Relay{Store: cl.replicas[1].store, JS: js, Log: zap.NewNop(), Clock: cl.clock.Now})
	if n, err := relay.Flush(ctx); err != nil || n != 0 {
		t.Fatalf("the relay published %d task messages of a cancelled request (%v)", n, err)
	}
	if stats, _ := cl.replicas[0].store.Stats(ctx, cl.clock.Now()); stats.OutboxPending != 0 {
		t.Errorf("%d messages left in the outbox", stats.OutboxPending)
	}
}

package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/testenv"
)

type fakeCertifier struct{ issued int }

func (f *fakeCertifier) Issue(_ context.Context, _ store.Tx, req erasure.Request, tasks []erasure.Task, head string, at time.Time) (store.Certificate, error) {
	f.issued++
	return store.Certificate{RequestID: req.ID, ID: erasure.NewID(), KeyID: "k", Document: []byte(`{"head":"` + head + `"}`), IssuedAt: at}, nil
}

// clock is the tests' settable clock.
type clock = testenv.Clock

type bundle struct {
	c     *coordinator.Coordinator
	store store.Store
	cert  *fakeCertifier
	clock *clock
	cfg   coordinator.Config
}

func hasher(t *testing.T) *erasure.Hasher {
	t.Helper()
	h, err := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// setup returns a coordinator over a SQLite store with two connectors, "db"
// (3 attempts) and "crm" (default 8).
func setup(t *testing.T, opts ...func(*coordinator.Config)) bundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), testenv.KeyRing())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	clk := testenv.NewClock(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	cert := &fakeCertifier{}
	cfg := coordinator.Config{
		Connectors:   []coordinator.Connector{{Name: "db", Type: "sql", MaxAttempts: 3}, {Name: "crm", Type: "hubspot"}},
		RetryInitial: time.Second, RetryMax: time.Minute, PollInterval: time.Minute, RedispatchAfter: time.Hour,
		Retention: coordinator.Retention{ShredAfter: time.Hour, KeepRequests: 24 * time.Hour, UnverifiedAfter: time.Hour},
	}
	for _, o := range opts {
		o(&cfg)
	}
	c := coordinator.New(coordinator.Deps{Store: st, Hasher: hasher(t), Certifier: cert, Clock: clk.Now}, cfg)
	return bundle{c: c, store: st, cert: cert, clock: clk, cfg: cfg}
}

func file(t *testing.T, b bundle) (erasure.Request, map[string]erasure.Task) {
	t.Helper()
	req, created, err := b.c.File(context.Background(), coordinator.FileInput{
		Subject: erasure.Subject{Email: "Person@Example.com"}, Jurisdiction: "gdpr", Source: "api", Actor: "api:test"})
	if err != nil || !created {
		t.Fatalf("File: %v, created %v", err, created)
	}
	return req, tasks(t, b, req.ID)
}

func tasks(t *testing.T, b bundle, id string) map[string]erasure.Task {
	t.Helper()
	ts, err := b.store.Tasks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]erasure.Task{}
	for _, k := range ts {
		out[k.Connector] = k
	}
	return out
}

func result(task erasure.Task, kind, status string) bus.Result {
	r := bus.Result{V: 1, Kind: kind, TaskID: task.ID, RequestID: task.RequestID, Connector: task.Connector, Attempt: task.Attempt, Status: status}
	switch status {
	case bus.ResultErased:
		r.Records = 3
	case bus.ResultRunning:
		r.JobRef = "job-9"
	}
	return r
}

func apply(t *testing.T, b bundle, r bus.Result) coordinator.Applied {
	t.Helper()
	a, err := b.c.ApplyResult(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// outbox drains the outbox and returns the task messages in it.
func outbox(t *testing.T, b bundle) []bus.Task {
	t.Helper()
	var out []bus.Task
	err := b.store.InTx(context.Background(), func(tx store.Tx) error {
		msgs, err := tx.ClaimOutbox(context.Background(), 100)
		if err != nil {
			return err
		}
		var ids []int64
		for _, m := range msgs {
			var task bus.Task
			if err := json.Unmarshal(m.Payload, &task); err != nil {
				return err
			}
			out = append(out, task)
			ids = append(ids, m.ID)
		}
		return tx.DeleteOutbox(context.Background(), ids)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileQueuesOneTaskPerConnector(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	if req.Status != erasure.RequestInProgress || req.Subject.Email != "person@example.com" || len(ts) != 2 {
		t.Fatalf("filed %+v with %d tasks", req, len(ts))
	}
	if want := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC); !req.DueAt.Equal(want) {
		t.Errorf("due %s, want %s", req.DueAt, want)
	}
	msgs := outbox(t, b)
	// The outbox never holds identifiers: the relay adds them from the
	// request's encrypted envelope when it publishes.
	if len(msgs) != 2 || msgs[0].Subject.Email != "" || msgs[0].Attempt != 1 || msgs[0].Kind != bus.KindErase {
		t.Errorf("outbox = %+v", msgs)
	}
	_, _, err := b.c.File(context.Background(), coordinator.FileInput{Subject: erasure.Subject{Email: "x"}, Jurisdiction: "gdpr"})
	if erasure.ErrorField(err) != "subject.email" {
		t.Errorf("bad email: %v", err)
	}
}

func TestResultsCompleteAndIssueOneCertificate(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	if a := apply(t, b, result(ts["db"], bus.KindErase, bus.ResultErased)); a != coordinator.AppliedNew {
		t.Fatalf("first result: %s", a)
	}
	if a := apply(t, b, result(ts["db"], bus.KindErase, bus.ResultErased)); a != coordinator.AppliedStale {
		t.Errorf("duplicate result: %s, want stale", a)
	}
	if r, _ := b.store.Request(context.Background(), req.ID); r.Status != erasure.RequestInProgress {
		t.Errorf("request %s after one of two tasks", r.Status)
	}
	apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultNotFound))
	apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultNotFound))
	r, _ := b.store.Request(context.Background(), req.ID)
	if r.Status != erasure.RequestCompleted || r.CompletedAt.IsZero() || b.cert.issued != 1 {
		t.Errorf("request %s, certificates issued %d", r.Status, b.cert.issued)
	}
	events, _ := b.store.Events(context.Background(), req.ID)
	if err := erasure.VerifyChain(events); err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if last.Type != erasure.EventCertificateIssue {
		t.Errorf("last event %s", last.Type)
	}
	c, _ := b.store.Certificate(context.Background(), req.ID)
	if !bytes.Contains(c.Document, []byte(events[len(events)-2].Hash)) {
		t.Error("the certificate does not carry the head of the event chain")
	}
	if a := apply(t, b, bus.Result{V: 1, Kind: bus.KindErase, TaskID: erasure.NewID(), RequestID: erasure.NewID(), Attempt: 1, Status: bus.ResultErased}); a != coordinator.AppliedNoOp {
		t.Errorf("result for an unknown request: %s", a)
	}
}

func TestRetriesThenDead(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	outbox(t, b)
	fail := func(task erasure.Task, retryAfter int) {
		r := result(task, bus.KindErase, bus.ResultFailed)
		r.Error = &bus.ResultError{Message: "503 for person@example.com", RetryAfterSeconds: retryAfter}
		apply(t, b, r)
	}
	fail(ts["db"], 30)
	db := tasks(t, b, req.ID)["db"]
	if db.Status != erasure.TaskFailed || db.LastError != "503 for [redacted]" {
		t.Fatalf("after a failure: %+v", db)
	}
	if wait := db.NextAttemptAt.Sub(b.clock.Now()); wait < 30*time.Second {
		t.Errorf("retry in %s, must honour Retry-After 30s", wait)
	}
	// Not due yet: nothing is scheduled.
	if n, _ := b.c.ScheduleDue(context.Background()); n != 0 {
		t.Errorf("scheduled %d before the retry time", n)
	}
	for attempt := 2; attempt <= 3; attempt++ {
		b.clock.Advance(2 * time.Minute)
		if n, err := b.c.ScheduleDue(context.Background()); n != 1 || err != nil {
			t.Fatalf("attempt %d: scheduled %d, %v", attempt, n, err)
		}
		msgs := outbox(t, b)
		if len(msgs) != 1 || msgs[0].Attempt != attempt {
			t.Fatalf("attempt %d: outbox %+v", attempt, msgs)
		}
		// A late result for the previous attempt is ignored.
		old := result(tasks(t, b, req.ID)["db"], bus.KindErase, bus.ResultErased)
		old.Attempt--
		if a := apply(t, b, old); a != coordinator.AppliedStale {
			t.Errorf("result for attempt %d applied to attempt %d", old.Attempt, attempt)
		}
		fail(tasks(t, b, req.ID)["db"], 0)
	}
	db = tasks(t, b, req.ID)["db"]
	r, _ := b.store.Request(context.Background(), req.ID)
	if db.Status != erasure.TaskDead || db.Attempt != 3 || r.Status != erasure.RequestNeedsAttention {
		t.Errorf("after 3 failed attempts: task %s (attempt %d), request %s", db.Status, db.Attempt, r.Status)
	}

	// A person retries: the request is back in progress; then it succeeds.
	if _, err := b.c.RetryTask(context.Background(), req.ID, "db", "api:ops", "fixed the password"); err != nil {
		t.Fatal(err)
	}
	r, _ = b.store.Request(context.Background(), req.ID)
	db = tasks(t, b, req.ID)["db"]
	if r.Status != erasure.RequestInProgress || db.Attempt != 4 || db.Status != erasure.TaskQueued {
		t.Errorf("after a retry: request %s, task %+v", r.Status, db)
	}
	apply(t, b, result(db, bus.KindErase, bus.ResultErased))
	apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultErased))
	if r, _ := b.store.Request(context.Background(), req.ID); r.Status != erasure.RequestCompleted {
		t.Errorf("request %s", r.Status)
	}
}

func TestPermanentFailureIsDeadAtOnce(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	r := result(ts["crm"], bus.KindErase, bus.ResultFailed)
	r.Error = &bus.ResultError{Message: "401: check the token", Permanent: true}
	apply(t, b, r)
	if k := tasks(t, b, req.ID)["crm"]; k.Status != erasure.TaskDead || k.Attempt != 1 {
		t.Errorf("task %+v", k)
	}
}

func TestAsynchronousJobIsPolled(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	outbox(t, b)
	apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultRunning))
	crm := tasks(t, b, req.ID)["crm"]
	if crm.Status != erasure.TaskRunning || crm.JobRef != "job-9" {
		t.Fatalf("task %+v", crm)
	}
	eventsBefore, _ := b.store.Events(context.Background(), req.ID)
	for range 3 {
		b.clock.Advance(2 * time.Minute)
		if n, _ := b.c.ScheduleDue(context.Background()); n != 1 {
			t.Fatalf("no poll scheduled")
		}
		msgs := outbox(t, b)
		if len(msgs) != 1 || msgs[0].Kind != bus.KindPoll || msgs[0].JobRef != "job-9" {
			t.Fatalf("poll message %+v", msgs)
		}
		// Until the poll answers, no second poll is sent.
		if n, _ := b.c.ScheduleDue(context.Background()); n != 0 {
			t.Errorf("a second poll was sent while one is out")
		}
		apply(t, b, result(crm, bus.KindPoll, bus.ResultRunning))
	}
	if events, _ := b.store.Events(context.Background(), req.ID); len(events) != len(eventsBefore) {
		t.Errorf("polls that found the job still running added %d events", len(events)-len(eventsBefore))
	}
	apply(t, b, result(crm, bus.KindPoll, bus.ResultErased))
	if k := tasks(t, b, req.ID)["crm"]; k.Status != erasure.TaskErased || k.RecordsErased != 3 {
		t.Errorf("task %+v", k)
	}
}

func TestLostMessageIsRedispatched(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	outbox(t, b)
	// The relay marks the tasks dispatched; then the messages vanish.
	err := b.store.InTx(context.Background(), func(tx store.Tx) error {
		for _, k := range ts {
			k.Status = erasure.TaskDispatched
			if err := tx.UpdateTask(context.Background(), k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(30 * time.Minute)
	if n, _ := b.c.ScheduleDue(context.Background()); n != 0 {
		t.Errorf("redispatched %d tasks too early", n)
	}
	b.clock.Advance(31 * time.Minute)
	if n, _ := b.c.ScheduleDue(context.Background()); n != 2 {
		t.Errorf("redispatched %d tasks, want 2", n)
	}
	if msgs := outbox(t, b); len(msgs) != 2 || msgs[0].Attempt != 1 {
		t.Errorf("redispatched messages %+v", msgs)
	}
	apply(t, b, result(ts["db"], bus.KindErase, bus.ResultErased))
	if k := tasks(t, b, req.ID)["db"]; k.Status != erasure.TaskErased {
		t.Errorf("a result after redispatch: %+v", k)
	}
}

func TestCancel(t *testing.T) {
	b := setup(t)
	req, ts := file(t, b)
	if _, err := b.c.Cancel(context.Background(), req.ID, "api:ops", " "); erasure.ErrorField(err) != "reason" {
		t.Errorf("cancel without a reason: %v", err)
	}
	if _, err := b.c.Cancel(context.Background(), req.ID, "api:ops", "duplicate request"); err != nil {
		t.Fatal(err)
	}
	if msgs := outbox(t, b); len(msgs) != 0 {
		t.Errorf("%d unsent messages survived the cancel", len(msgs))
	}
	// What a connector still reports is recorded; the request stays cancelled.
	apply(t, b, result(ts["db"], bus.KindErase, bus.ResultErased))
	r, _ := b.store.Request(context.Background(), req.ID)
	if r.Status != erasure.RequestCancelled || tasks(t, b, req.ID)["db"].Status != erasure.TaskErased || b.cert.issued != 0 {
		t.Errorf("after a late result: request %s, certificates %d", r.Status, b.cert.issued)
	}
	if _, err := b.c.Cancel(context.Background(), req.ID, "api:ops", "again"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("second cancel: %v", err)
	}
}

func complete(t *testing.T, b bundle) erasure.Request {
	t.Helper()
	req, ts := file(t, b)
	apply(t, b, result(ts["db"], bus.KindErase, bus.ResultErased))
	apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultNotFound))
	r, _ := b.store.Request(context.Background(), req.ID)
	if r.Status != erasure.RequestCompleted {
		t.Fatalf("request %s", r.Status)
	}
	return r
}

func TestCompletionSuppressesAndShredNowDestroysIdentifiers(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	inProgress, _ := file(t, b)
	req := complete(t, b)
	var hashes []string
	for _, id := range req.SubjectRef.Identifiers {
		hashes = append(hashes, id.Hash)
	}
	if sup, _ := b.store.Suppressed(ctx, hashes); len(sup) == 0 {
		t.Error("a completed erasure is not on the suppression list")
	}
	if _, err := b.c.Shred(ctx, inProgress.ID, "api:ops", "test"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("shredding a request in progress: %v", err)
	}
	if _, err := b.c.Shred(ctx, req.ID, "api:ops", ""); erasure.ErrorField(err) != "reason" {
		t.Errorf("shred without a reason: %v", err)
	}
	if _, err := b.c.Shred(ctx, req.ID, "api:ops", "the person asked"); err != nil {
		t.Fatal(err)
	}
	r, _ := b.store.Request(ctx, req.ID)
	if r.Subject.Email != "" || r.CommitmentNonce != nil || r.ShreddedAt.IsZero() || r.SubjectRef.Commitment == "" {
		t.Errorf("after shredding: %+v", r)
	}
	events, _ := b.store.Events(ctx, req.ID)
	if err := erasure.VerifyChain(events); err != nil || events[len(events)-1].Type != erasure.EventShredded || events[len(events)-1].Actor != "api:ops" {
		t.Errorf("shred event: %v %+v", err, events[len(events)-1])
	}
	if _, err := b.c.Shred(ctx, req.ID, "api:ops", "again"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("second shred: %v", err)
	}
}

func TestHousekeeping(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	done := complete(t, b)
	// An unverified portal request (the portal files them).
	unverified := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestUnverified, Jurisdiction: erasure.GDPR,
		Subject: erasure.Subject{Email: "maybe@example.com"}, Source: "portal", CreatedBy: "portal",
		ReceivedAt: b.clock.Now(), DueAt: b.clock.Now().Add(30 * 24 * time.Hour), UpdatedAt: b.clock.Now()}
	if err := b.store.InTx(ctx, func(tx store.Tx) error { return tx.InsertRequest(ctx, unverified) }); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(30 * time.Minute)
	if h, err := b.c.Housekeep(ctx); err != nil || h != (coordinator.Housekeeping{}) {
		t.Fatalf("sweep inside every grace period did %+v, %v", h, err)
	}
	b.clock.Advance(time.Hour)
	h, err := b.c.Housekeep(ctx)
	if err != nil || h.Shredded != 1 || h.Expired != 1 || h.Purged != 0 {
		t.Fatalf("sweep after an hour and a half = %+v, %v", h, err)
	}
	r, _ := b.store.Request(ctx, done.ID)
	u, _ := b.store.Request(ctx, unverified.ID)
	if r.ShreddedAt.IsZero() || u.Status != erasure.RequestCancelled || u.ShreddedAt.IsZero() || u.Subject.Email != "" {
		t.Errorf("completed shredded %v; unverified %s, shredded %v", !r.ShreddedAt.IsZero(), u.Status, !u.ShreddedAt.IsZero())
	}
	if h, _ := b.c.Housekeep(ctx); h != (coordinator.Housekeeping{}) {
		t.Errorf("a second sweep did %+v", h)
	}
	b.clock.Advance(25 * time.Hour)
	if h, err := b.c.Housekeep(ctx); err != nil || h.Purged != 2 {
		t.Fatalf("sweep after the retention period = %+v, %v", h, err)
	}
	if _, err := b.store.Request(ctx, done.ID); err == nil {
		t.Error("a request past retention is still there")
	}
	p, err := b.store.Purge(ctx, done.ID)
	if err != nil || p.Status != erasure.RequestCompleted || p.CertificateID == "" || p.LogIndex != 0 {
		t.Errorf("purge record %+v, %v", p, err)
	}
	if sup, _ := b.store.Suppressed(ctx, []string{done.SubjectRef.Identifiers[0].Hash}); len(sup) != 1 {
		t.Error("the suppression entry went with the purge")
	}
}

func TestApprovalVerificationAndDenial(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	hold := func(status erasure.RequestStatus) erasure.Request {
		req, _, err := b.c.File(ctx, coordinator.FileInput{Subject: erasure.Subject{Email: "held@example.com"}, Jurisdiction: "gdpr",
			Source: "portal", Actor: "portal", Hold: status})
		if err != nil || req.Status != status {
			t.Fatalf("file held as %s: %v %s", status, err, req.Status)
		}
		if ts, _ := b.store.Tasks(ctx, req.ID); len(ts) != 0 {
			t.Fatalf("a held request has %d tasks", len(ts))
		}
		return req
	}
	// Unverified → verified → pending approval → approved: tasks start.
	u := hold(erasure.RequestUnverified)
	if _, err := b.c.Approve(ctx, u.ID, "api:ops", "ok"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("approving an unverified request: %v", err)
	}
	if r, _, err := b.c.Verified(ctx, u.ID, true, nil); err != nil || r.Status != erasure.RequestPendingApproval {
		t.Fatalf("verified = %s, %v", r.Status, err)
	}
	if r, _, _ := b.c.Verified(ctx, u.ID, true, nil); r.Status != erasure.RequestPendingApproval {
		t.Error("a second verification changed the request")
	}
	if _, err := b.c.Approve(ctx, u.ID, "api:ops", ""); erasure.ErrorField(err) != "reason" {
		t.Errorf("approve without a reason: %v", err)
	}
	r, err := b.c.Approve(ctx, u.ID, "api:ops", "identity checked")
	if err != nil || r.Status != erasure.RequestInProgress {
		t.Fatalf("approve = %s, %v", r.Status, err)
	}
	if ts := tasks(t, b, u.ID); len(ts) != 2 || ts["db"].Status != erasure.TaskQueued {
		t.Errorf("approved request tasks = %+v", ts)
	}
	if msgs := outbox(t, b); len(msgs) != 2 {
		t.Errorf("approval queued %d messages, want 2", len(msgs))
	}
	// Verified without approval policy: straight to work.
	v := hold(erasure.RequestUnverified)
	if r, _, err := b.c.Verified(ctx, v.ID, false, nil); err != nil || r.Status != erasure.RequestInProgress {
		t.Errorf("verified without approval = %s, %v", r.Status, err)
	}
	// Deny before work starts; not after.
	d := hold(erasure.RequestPendingApproval)
	if r, err := b.c.Deny(ctx, d.ID, "api:ops", "we hold no account for this address and could not verify the requester"); err != nil || r.Status != erasure.RequestDenied {
		t.Errorf("deny = %s, %v", r.Status, err)
	}
	if _, err := b.c.Deny(ctx, u.ID, "api:ops", "too late"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("denying a request in progress: %v", err)
	}
}

func TestExtendOnceWithinTheLaw(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	req, _ := file(t, b)
	due := req.DueAt
	if _, err := b.c.Extend(ctx, req.ID, "api:ops", "complex request", "", due.AddDate(0, 2, 0)); erasure.ErrorField(err) != "category" {
		t.Errorf("an extension without the kind of reason: %v", err)
	}
	if _, err := b.c.Extend(ctx, req.ID, "api:ops", "complex request", "reasonably_necessary", due.AddDate(0, 2, 0)); erasure.ErrorField(err) != "category" {
		t.Errorf("an extension with a CCPA reason under the GDPR: %v", err)
	}
	if _, err := b.c.Extend(ctx, req.ID, "api:ops", "complex request", "complexity", due.AddDate(0, 3, 0)); erasure.ErrorField(err) != "due_at" {
		t.Errorf("extending by three months: %v", err)
	}
	if _, err := b.c.Extend(ctx, req.ID, "api:ops", "complex request", "complexity", due.Add(-time.Hour)); erasure.ErrorField(err) != "due_at" {
		t.Errorf("an extension that shortens: %v", err)
	}
	r, err := b.c.Extend(ctx, req.ID, "api:ops", "many systems hold data", "complexity", due.AddDate(0, 2, 0))
	if err != nil || !r.DueAt.Equal(due.AddDate(0, 2, 0)) || r.ExtendedAt.IsZero() {
		t.Fatalf("extend = %+v, %v", r, err)
	}
	if got, _ := b.store.Request(ctx, req.ID); !got.FirstDueAt().Equal(due) || got.ExtensionCategory != "complexity" || !got.DueAt.Equal(due.AddDate(0, 2, 0)) {
		t.Errorf("stored: first due %s, category %q, due %s", got.FirstDueAt(), got.ExtensionCategory, got.DueAt)
	}
	if _, err := b.c.Extend(ctx, req.ID, "api:ops", "again", "complexity", r.DueAt.Add(time.Hour)); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("a second extension: %v", err)
	}
	late, _ := file(t, b)
	b.clock.Advance(31 * 24 * time.Hour)
	if _, err := b.c.Extend(ctx, late.ID, "api:ops", "late", "complexity", late.DueAt.AddDate(0, 1, 0)); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("extending after the deadline: %v", err)
	}
	events, _ := b.store.Events(ctx, req.ID)
	if events[len(events)-1].Type != erasure.EventExtended || events[len(events)-1].Reason != "many systems hold data" {
		t.Errorf("extension event %+v", events[len(events)-1])
	}
}

func TestExemptionCompletesWithExemptions(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	req, ts := file(t, b)
	if _, err := b.c.Exempt(ctx, req.ID, "crm", "because", "api:ops", "legal hold"); erasure.ErrorField(err) != "basis" {
		t.Errorf("an unknown basis: %v", err)
	}
	if _, err := b.c.Exempt(ctx, req.ID, "crm", "1798.105-d-8", "api:ops", "legal hold"); erasure.ErrorField(err) != "basis" {
		t.Errorf("a CCPA basis on a GDPR request: %v", err)
	}
	if _, err := b.c.Exempt(ctx, req.ID, "crm", "art17-3-e", "api:ops", "litigation pending"); err != nil {
		t.Fatal(err)
	}
	if k := tasks(t, b, req.ID)["crm"]; k.Status != erasure.TaskExempted || k.ExemptionBasis != "art17-3-e" {
		t.Errorf("exempted task %+v", k)
	}
	// A late result for the exempted task is ignored.
	if a := apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultErased)); a != coordinator.AppliedStale {
		t.Errorf("result for an exempted task: %s", a)
	}
	apply(t, b, result(ts["db"], bus.KindErase, bus.ResultErased))
	r, _ := b.store.Request(ctx, req.ID)
	if r.Status != erasure.RequestCompletedWithExemptions || b.cert.issued != 1 {
		t.Errorf("request %s, certificates %d", r.Status, b.cert.issued)
	}
	if _, err := b.c.Exempt(ctx, req.ID, "db", "art17-3-e", "api:ops", "x"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("exempting in a final request: %v", err)
	}
}

// TestCallbackForAnEarlierAttempt: a callback about the job of a task's
// earlier attempt (an old confirmation link, a processor's late answer)
// finds the task and is stale, changing nothing; one about the current
// job is applied; one about a job no task has recorded stays "send it
// again".
func TestCallbackForAnEarlierAttempt(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	req, ts := file(t, b)
	outbox(t, b)
	apply(t, b, result(ts["crm"], bus.KindErase, bus.ResultRunning)) // job-9
	crm := tasks(t, b, req.ID)["crm"]
	failed := result(crm, bus.KindPoll, bus.ResultFailed)
	failed.Error = &bus.ResultError{Message: "the job failed at the vendor"}
	apply(t, b, failed)
	b.clock.Advance(2 * time.Minute)
	if n, err := b.c.ScheduleDue(ctx); n != 1 || err != nil {
		t.Fatalf("retry scheduled %d, %v", n, err)
	}
	outbox(t, b)
	// The retry is dispatched but its start not yet applied: the task
	// still names job-9, so a callback read now is not yet superseded...
	early, err := b.c.CallbackTask(ctx, "crm", "job-9")
	if err != nil || coordinator.Superseded(early, "job-9") {
		t.Fatalf("callback task before the retry's start = %+v, %v", early, err)
	}
	second := result(tasks(t, b, req.ID)["crm"], bus.KindErase, bus.ResultRunning)
	second.JobRef = "job-10"
	apply(t, b, second)
	// ...and once the retry's job-10 is recorded it must still not be
	// applied to attempt 2.
	if a, err := b.c.ApplyCallback(ctx, early, "job-9", bus.ResultErased, 2, false, nil); a != coordinator.AppliedStale || err != nil {
		t.Errorf("the earlier job's callback, read before the retry started = %q, %v; want stale", a, err)
	}

	old, err := b.c.CallbackTask(ctx, "crm", "job-9")
	if err != nil || old.ID != crm.ID || !coordinator.Superseded(old, "job-9") {
		t.Fatalf("callback task for the earlier job = %+v, %v; want the task, superseded", old, err)
	}
	if a, err := b.c.ApplyCallback(ctx, old, "job-9", bus.ResultErased, 2, false, nil); a != coordinator.AppliedStale || err != nil {
		t.Errorf("the earlier job's callback = %q, %v; want stale", a, err)
	}
	if k := tasks(t, b, req.ID)["crm"]; k.Status != erasure.TaskRunning || k.Attempt != 2 || k.RecordsErased != 0 {
		t.Errorf("after the earlier job's callback the task is %s (attempt %d, %d records); want the second attempt running", k.Status, k.Attempt, k.RecordsErased)
	}
	if _, err := b.c.CallbackTask(ctx, "crm", "job-11"); erasure.ErrorCode(err) != erasure.EUnavailable {
		t.Errorf("a job no task recorded: %v, want unavailable (send it again)", err)
	}
	cur, err := b.c.CallbackTask(ctx, "crm", "job-10")
	if err != nil || coordinator.Superseded(cur, "job-10") {
		t.Fatalf("callback task for the current job = %+v, %v", cur, err)
	}
	if a, err := b.c.ApplyCallback(ctx, cur, "job-10", bus.ResultErased, 2, false, nil); a != coordinator.AppliedNew || err != nil {
		t.Errorf("the current job's callback = %q, %v; want applied", a, err)
	}
	if k := tasks(t, b, req.ID)["crm"]; k.Status != erasure.TaskErased || k.RecordsErased != 2 {
		t.Errorf("after the current job's callback: %s, %d records", k.Status, k.RecordsErased)
	}
}

// Package storetest is the conformance suite every store.Store
// implementation passes. An implementation's test calls Run with a function
// that returns a fresh, migrated, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
)

// Run runs the suite. newStore must return an empty migrated store; the
// suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RequestRoundTrip", requestRoundTrip},
		{"IdempotencyKey", idempotencyKey},
		{"NotFound", notFound},
		{"RollbackLeavesNothing", rollback},
		{"TasksRoundTrip", tasksRoundTrip},
		{"SubjectUpdate", subjectUpdate},
		{"EventChain", eventChain},
		{"ConcurrentLockSerialises", concurrentLock},
		{"Outbox", outbox},
		{"ConcurrentOutboxClaims", concurrentClaims},
		{"Certificate", certificate},
		{"DueTasks", dueTasks},
		{"FollowUpsAndFlags", followUpsAndFlags},
		{"ListRequests", listRequests},
		{"WaitingForPersonAndProgress", waitingAndProgress},
		{"Batches", batches},
		{"Stats", stats},
		{"SubjectHashesAndCertificateLookups", subjectLookups},
		{"LogAppendAndRead", logAppend},
		{"ConcurrentLogAppendsSerialise", concurrentLog},
		{"ShredDestroysIdentifiers", shred},
		{"Suppressions", suppressions},
		{"PurgeDeletesEverythingButItsRecord", purge},
		{"PortalRequests", portal},
		{"Sessions", sessions},
		{"Throttles", throttles},
		{"ConcurrentThrottleFailuresAllCount", concurrentThrottle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(s.Close)
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 3, 31, 9, 30, 15, 123456000, time.UTC)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func newRequest(i int) erasure.Request {
	return erasure.Request{
		ID:              erasure.NewID(),
		Status:          erasure.RequestInProgress,
		Jurisdiction:    erasure.GDPR,
		Subject:         erasure.Subject{Email: fmt.Sprintf("person%d@example.com", i), UserIDs: map[string]string{"shop": fmt.Sprint(i)}},
		SubjectRef:      erasure.SubjectRef{KeyID: "k1", Identifiers: []erasure.IdentifierHash{{Kind: "email", Hash: fmt.Sprintf("h%d", i)}}, Commitment: "sha256:c"},
		CommitmentNonce: []byte{1, 2, 3, byte(i)},
		Sources:         erasure.Sources{erasure.Email: erasure.SourceRequest, "user_ids.shop": erasure.SourceRequest},
		Source:          "api",
		CreatedBy:       "api:test",
		ReceivedAt:      t0,
		DueAt:           erasure.GDPR.DueDate(t0),
		UpdatedAt:       t0,
	}
}

func newTask(r erasure.Request, connector string) erasure.Task {
	return erasure.Task{
		ID: erasure.NewID(), RequestID: r.ID, Connector: connector, ConnectorType: "sql", Phase: erasure.PhaseErase,
		Status: erasure.TaskQueued, Attempt: 1, CreatedAt: t0, UpdatedAt: t0,
	}
}

func mustTx(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.InTx(ctx(t), fn); err != nil {
		t.Fatalf("transaction: %v", err)
	}
}

func insert(t *testing.T, s store.Store, r erasure.Request, tasks ...erasure.Task) {
	t.Helper()
	mustTx(t, s, func(tx store.Tx) error {
		if err := tx.InsertRequest(ctx(t), r); err != nil {
			return err
		}
		for _, k := range tasks {
			if err := tx.InsertTask(ctx(t), k); err != nil {
				return err
			}
		}
		return nil
	})
}

func requestRoundTrip(t *testing.T, s store.Store) {
	r := newRequest(1)
	insert(t, s, r)
	got, err := s.Request(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, r)
	}
	r.Status = erasure.RequestCompleted
	r.CompletedAt = t0.Add(time.Hour)
	r.UpdatedAt = r.CompletedAt
	r.OriginalDueAt = r.DueAt
	r.DueAt = r.DueAt.Add(24 * time.Hour)
	r.ExtendedAt = t0.Add(30 * time.Minute)
	r.ExtensionCategory = "complexity"
	r.Sources["user_ids.app"] = "shop-db"
	mustTx(t, s, func(tx store.Tx) error {
		locked, err := tx.LockRequest(ctx(t), r.ID)
		if err != nil {
			return err
		}
		if locked.ID != r.ID {
			return fmt.Errorf("locked %s", locked.ID)
		}
		return tx.UpdateRequest(ctx(t), r)
	})
	got, err = s.Request(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("after update\n%+v\nwant\n%+v", got, r)
	}
}

func idempotencyKey(t *testing.T, s store.Store) {
	a, b := newRequest(1), newRequest(2)
	a.IdempotencyKey, b.IdempotencyKey = "key-1", "key-1"
	insert(t, s, a)
	err := s.InTx(ctx(t), func(tx store.Tx) error { return tx.InsertRequest(ctx(t), b) })
	if erasure.ErrorCode(err) != erasure.EConflict {
		t.Fatalf("second request with the same key: %v, want a conflict", err)
	}
	got, err := s.RequestByIdempotencyKey(ctx(t), "key-1")
	if err != nil || got.ID != a.ID {
		t.Fatalf("by key = %v, %v; want %s", got.ID, err, a.ID)
	}
	// Requests without a key never conflict with each other.
	insert(t, s, newRequest(3))
	insert(t, s, newRequest(4))
}

func notFound(t *testing.T, s store.Store) {
	_, err := s.Request(ctx(t), erasure.NewID())
	if !errors.Is(err, store.ErrNotFound) || erasure.ErrorCode(err) != erasure.ENotFound {
		t.Errorf("missing request: %v", err)
	}
	_, err = s.Certificate(ctx(t), erasure.NewID())
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing certificate: %v", err)
	}
	_, err = s.RequestByIdempotencyKey(ctx(t), "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing key: %v", err)
	}
	err = s.InTx(ctx(t), func(tx store.Tx) error {
		_, err := tx.LockRequest(ctx(t), erasure.NewID())
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lock missing request: %v", err)
	}
	err = s.InTx(ctx(t), func(tx store.Tx) error {
		_, err := tx.Task(ctx(t), erasure.NewID())
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing task: %v", err)
	}
}

func rollback(t *testing.T, s store.Store) {
	r := newRequest(1)
	boom := errors.New("boom")
	err := s.InTx(ctx(t), func(tx store.Tx) error {
		if err := tx.InsertRequest(ctx(t), r); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx(t), erasure.NewEvent(r.ID, "", erasure.EventRequestReceived, "test", "", nil, t0)); err != nil {
			return err
		}
		if err := tx.Enqueue(ctx(t), store.OutboxMessage{MsgID: "m1", Subject: "x", Payload: []byte("{}"), RequestID: r.ID}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want the callback's error", err)
	}
	if _, err := s.Request(ctx(t), r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("request survived a rolled-back transaction: %v", err)
	}
	if ev, _ := s.Events(ctx(t), r.ID); len(ev) != 0 {
		t.Errorf("%d events survived a rolled-back transaction", len(ev))
	}
	mustTx(t, s, func(tx store.Tx) error {
		msgs, err := tx.ClaimOutbox(ctx(t), 10)
		if len(msgs) != 0 {
			t.Errorf("%d outbox messages survived a rolled-back transaction", len(msgs))
		}
		return err
	})
}

func tasksRoundTrip(t *testing.T, s store.Store) {
	r := newRequest(1)
	a, b := newTask(r, "b-files"), newTask(r, "a-db")
	insert(t, s, r, a, b)
	got, err := s.Tasks(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Connector != "a-db" || got[1].Connector != "b-files" {
		t.Fatalf("tasks = %+v, want a-db then b-files", got)
	}
	if len(got[0].Evidence) != 0 {
		t.Errorf("fresh task has evidence %v", got[0].Evidence)
	}
	if _, err := s.TaskByJobRef(ctx(t), b.Connector, "job-7"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("task by an unknown job ref: %v", err)
	}
	b.Status = erasure.TaskErased
	b.Attempt = 3
	b.RecordsErased = 42
	b.JobRef = "job-7"
	b.NextAttemptAt = t0.Add(time.Minute)
	b.NextPollAt = t0.Add(2 * time.Minute)
	b.LastError = "timeout"
	b.Evidence = []erasure.Evidence{{Kind: "statement", Value: "customers: 1 row"}}
	b.Verified = "clean"
	b.ExemptionBasis = "art17-3-e"
	b.SearchedBy = []erasure.Kind{erasure.Email, "user_ids.app"}
	b.Found = []erasure.Kind{"user_ids.customer"}
	b.RecordsUnknown = true
	b.Reason = "not a customer"
	b.UpdatedAt = t0.Add(time.Hour)
	b.CompletedAt = t0.Add(time.Hour)
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(ctx(t), b) })
	if got, err := s.TaskByJobRef(ctx(t), b.Connector, "job-7"); err != nil || got.ID != b.ID {
		t.Errorf("task by job ref = %v, %v", got.ID, err)
	}
	if _, err := s.TaskByJobRef(ctx(t), a.Connector, "job-7"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("job refs belong to one connector: %v", err)
	}
	// A newer attempt's job: the earlier job still finds the task, which
	// names the newer one; the same update twice records nothing new.
	b.JobRef = "job-8"
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(ctx(t), b) })
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateTask(ctx(t), b) })
	for _, ref := range []string{"job-7", "job-8"} {
		if got, err := s.TaskByJobRef(ctx(t), b.Connector, ref); err != nil || got.ID != b.ID || got.JobRef != "job-8" {
			t.Errorf("task by job ref %s = %q (job %q), %v; want the task, naming job-8", ref, got.ID, got.JobRef, err)
		}
	}
	if _, err := s.TaskByJobRef(ctx(t), a.Connector, "job-8"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("earlier job refs belong to one connector too: %v", err)
	}
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.Task(ctx(t), b.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("task read back\n%+v\nwant\n%+v", got, b)
		}
		return nil
	})
	err = s.InTx(ctx(t), func(tx store.Tx) error { return tx.InsertTask(ctx(t), newTask(r, "a-db")) })
	if erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("second task for one connector: %v, want a conflict", err)
	}
	// A connector may both resolve and erase: one task per phase.
	res := newTask(r, "a-db")
	res.Phase, res.Status, res.Found = erasure.PhaseResolve, erasure.TaskResolved, []erasure.Kind{"user_ids.app"}
	res.Evidence = []erasure.Evidence{}
	mustTx(t, s, func(tx store.Tx) error { return tx.InsertTask(ctx(t), res) })
	res2 := newTask(r, "a-db")
	res2.Phase = erasure.PhaseResolve
	if err := s.InTx(ctx(t), func(tx store.Tx) error { return tx.InsertTask(ctx(t), res2) }); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("second resolve task for one connector: %v, want a conflict", err)
	}
	got, err = s.Tasks(ctx(t), r.ID)
	if err != nil || len(got) != 3 || got[0].Phase != erasure.PhaseResolve || got[1].Phase != erasure.PhaseErase {
		t.Fatalf("tasks with phases = %+v, %v: want the resolver first", got, err)
	}
	if !reflect.DeepEqual(got[0], res) {
		t.Errorf("resolve task read back\n%+v\nwant\n%+v", got[0], res)
	}
}

// subjectUpdate: identifiers found after filing are stored encrypted under
// the request's own data key (shredding still destroys them), and make the
// request findable by their hashes.
func subjectUpdate(t *testing.T, s store.Store) {
	r := newRequest(1)
	insert(t, s, r)
	r.Subject = r.Subject.With("user_ids.app", "app-77").With(erasure.Phone, "+447700900077")
	r.Sources["user_ids.app"], r.Sources[erasure.Phone] = "shop-db", "staff:ada"
	mustTx(t, s, func(tx store.Tx) error {
		if _, err := tx.LockRequest(ctx(t), r.ID); err != nil {
			return err
		}
		if err := tx.UpdateSubject(ctx(t), r); err != nil {
			return err
		}
		if err := tx.UpdateRequest(ctx(t), r); err != nil {
			return err
		}
		return tx.AddSubjectHashes(ctx(t), r.ID, []erasure.IdentifierHash{{Kind: "user_ids.app", Hash: "happ"}, {Kind: "email", Hash: "h1"}})
	})
	got, err := s.Request(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("after UpdateSubject\n%+v\nwant\n%+v", got, r)
	}
	if found, _ := s.RequestsBySubjectHash(ctx(t), []string{"happ"}); len(found) != 1 || found[0].ID != r.ID {
		t.Errorf("by the hash of a resolved identifier: %d requests", len(found))
	}
	mustTx(t, s, func(tx store.Tx) error { return tx.ShredRequest(ctx(t), r.ID, t0) })
	if got, _ := s.Request(ctx(t), r.ID); got.Subject.Get("user_ids.app") != "" || got.Subject.Phone != "" {
		t.Error("shredding left a resolved identifier readable")
	}
	err = s.InTx(ctx(t), func(tx store.Tx) error { return tx.UpdateSubject(ctx(t), r) })
	if erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("UpdateSubject of a shredded request: %v, want a conflict", err)
	}
	err = s.InTx(ctx(t), func(tx store.Tx) error { return tx.UpdateSubject(ctx(t), newRequest(9)) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateSubject of a missing request: %v", err)
	}
}

func eventChain(t *testing.T, s store.Store) {
	r, other := newRequest(1), newRequest(2)
	insert(t, s, r)
	insert(t, s, other)
	for i := range 5 {
		mustTx(t, s, func(tx store.Tx) error {
			if _, err := tx.LockRequest(ctx(t), r.ID); err != nil {
				return err
			}
			e := erasure.NewEvent(r.ID, "", "test.step", "tester", fmt.Sprintf("step %d", i),
				map[string]any{"n": i, "z": "last", "a": []int{1, 2}}, t0.Add(time.Duration(i)*time.Nanosecond*1500))
			got, err := tx.AppendEvent(ctx(t), e)
			if err != nil {
				return err
			}
			if got.Seq != int64(i+1) || got.Hash == "" {
				t.Errorf("append %d returned seq %d hash %q", i, got.Seq, got.Hash)
			}
			_, err = tx.AppendEvent(ctx(t), erasure.NewEvent(other.ID, "", "test.other", "tester", "", nil, t0))
			return err
		})
	}
	events, err := s.Events(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 5 {
		t.Fatalf("%d events, want 5", len(events))
	}
	if err := erasure.VerifyChain(events); err != nil {
		t.Fatalf("chain read back does not verify: %v", err)
	}
	events[2].Reason = "edited"
	if erasure.VerifyChain(events) == nil {
		t.Fatal("an edited event still verifies")
	}

	// Many events in one transaction, for two requests interleaved, read
	// back whole and chained; a transaction rolled back leaves none.
	mustTx(t, s, func(tx store.Tx) error {
		for i := range 250 {
			id := r.ID
			if i%3 == 0 {
				id = other.ID
			}
			if _, err := tx.AppendEvent(ctx(t), erasure.NewEvent(id, "", "test.many", "tester", fmt.Sprint(i), nil, t0)); err != nil {
				return err
			}
		}
		return nil
	})
	_ = s.InTx(ctx(t), func(tx store.Tx) error {
		if _, err := tx.AppendEvent(ctx(t), erasure.NewEvent(r.ID, "", "test.lost", "tester", "", nil, t0)); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	for id, want := range map[string]int{r.ID: 5 + 166, other.ID: 5 + 84} {
		events, err := s.Events(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != want {
			t.Errorf("%d events, want %d", len(events), want)
		}
		if err := erasure.VerifyChain(events); err != nil {
			t.Errorf("a chain of many events in one transaction does not verify: %v", err)
		}
	}
}

func concurrentLock(t *testing.T, s store.Store) {
	r := newRequest(1)
	insert(t, s, r)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.InTx(ctx(t), func(tx store.Tx) error {
				if _, err := tx.LockRequest(ctx(t), r.ID); err != nil {
					return err
				}
				_, err := tx.AppendEvent(ctx(t), erasure.NewEvent(r.ID, "", "test.concurrent", "tester", fmt.Sprint(i), nil, t0))
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent append: %v", err)
		}
	}
	events, err := s.Events(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != n {
		t.Errorf("%d events, want %d", len(events), n)
	}
	if err := erasure.VerifyChain(events); err != nil {
		t.Errorf("chain broken by concurrent appends: %v", err)
	}
}

func outbox(t *testing.T, s store.Store) {
	r := newRequest(1)
	insert(t, s, r)
	mustTx(t, s, func(tx store.Tx) error {
		for i := range 3 {
			if err := tx.Enqueue(ctx(t), store.OutboxMessage{MsgID: fmt.Sprintf("m%d", i), Subject: "lethe.task.x",
				Payload: []byte{0, 1, byte(i)}, RequestID: r.ID, TaskID: "t", Attempt: i + 1, CreatedAt: t0}); err != nil {
				return err
			}
		}
		return tx.Enqueue(ctx(t), store.OutboxMessage{MsgID: "other", Subject: "lethe.task.y", Payload: []byte("{}"), CreatedAt: t0})
	})
	err := s.InTx(ctx(t), func(tx store.Tx) error { return tx.Enqueue(ctx(t), store.OutboxMessage{Subject: "x"}) })
	if err == nil {
		t.Error("a message without a MsgID was accepted")
	}
	var first []store.OutboxMessage
	mustTx(t, s, func(tx store.Tx) error {
		var err error
		first, err = tx.ClaimOutbox(ctx(t), 2)
		if err != nil {
			return err
		}
		ids := make([]int64, len(first))
		for i, m := range first {
			ids[i] = m.ID
		}
		return tx.DeleteOutbox(ctx(t), ids)
	})
	if len(first) != 2 || first[0].MsgID != "m0" || first[1].MsgID != "m1" {
		t.Fatalf("claimed %+v, want m0, m1 in order", first)
	}
	if first[1].Attempt != 2 || first[1].TaskID != "t" || string(first[1].Payload) != string([]byte{0, 1, 1}) || !first[1].CreatedAt.Equal(t0) {
		t.Errorf("message read back as %+v", first[1])
	}
	mustTx(t, s, func(tx store.Tx) error {
		n, err := tx.DeleteRequestOutbox(ctx(t), r.ID)
		if n != 1 {
			t.Errorf("deleted %d of the request's messages, want 1", n)
		}
		return err
	})
	mustTx(t, s, func(tx store.Tx) error {
		rest, err := tx.ClaimOutbox(ctx(t), 10)
		if len(rest) != 1 || rest[0].MsgID != "other" {
			t.Errorf("left in outbox: %+v, want only 'other'", rest)
		}
		return err
	})
	st, err := s.Stats(ctx(t), t0)
	if err != nil || st.OutboxPending != 1 {
		t.Errorf("stats outbox = %d, %v; want 1", st.OutboxPending, err)
	}
}

func concurrentClaims(t *testing.T, s store.Store) {
	const total = 40
	mustTx(t, s, func(tx store.Tx) error {
		for i := range total {
			if err := tx.Enqueue(ctx(t), store.OutboxMessage{MsgID: fmt.Sprint(i), Subject: "s", Payload: []byte("x"), CreatedAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var got []store.OutboxMessage
				err := s.InTx(ctx(t), func(tx store.Tx) error {
					msgs, err := tx.ClaimOutbox(ctx(t), 3)
					if err != nil {
						return err
					}
					time.Sleep(2 * time.Millisecond) // hold the claim while others try
					ids := make([]int64, len(msgs))
					for i, m := range msgs {
						ids[i] = m.ID
					}
					got = msgs
					return tx.DeleteOutbox(ctx(t), ids)
				})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.MsgID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != total {
		t.Errorf("claimed %d distinct messages, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("message %s claimed %d times", id, n)
		}
	}
}

func certificate(t *testing.T, s store.Store) {
	r := newRequest(1)
	insert(t, s, r)
	c := store.Certificate{RequestID: r.ID, ID: erasure.NewID(), KeyID: "kid", Document: []byte(`{"a":1}`), IssuedAt: t0}
	mustTx(t, s, func(tx store.Tx) error { return tx.InsertCertificate(ctx(t), c) })
	got, err := s.Certificate(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("certificate read back %+v, want %+v", got, c)
	}
	c2 := c
	c2.ID = erasure.NewID()
	err = s.InTx(ctx(t), func(tx store.Tx) error { return tx.InsertCertificate(ctx(t), c2) })
	if erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("second certificate for a request: %v, want a conflict", err)
	}
}

func dueTasks(t *testing.T, s store.Store) {
	r := newRequest(1)
	retryDue, retryLater, pollDue, queued := newTask(r, "a"), newTask(r, "b"), newTask(r, "c"), newTask(r, "d")
	stale, fresh := newTask(r, "e"), newTask(r, "f")
	stale.Status, stale.UpdatedAt = erasure.TaskDispatched, t0.Add(-2*time.Hour)
	fresh.Status, fresh.UpdatedAt = erasure.TaskDispatched, t0.Add(-time.Minute)
	retryDue.Status, retryDue.NextAttemptAt = erasure.TaskFailed, t0.Add(-time.Second)
	retryLater.Status, retryLater.NextAttemptAt = erasure.TaskFailed, t0.Add(time.Hour)
	pollDue.Status, pollDue.NextPollAt = erasure.TaskRunning, t0.Add(-time.Minute)
	queued.NextAttemptAt = t0.Add(-time.Hour) // queued tasks are never due
	insert(t, s, r, retryDue, retryLater, pollDue, queued, stale, fresh)
	// A request cancelled while a task was out: its result will never
	// come, and the task must not be listed again on every pass.
	gone := newRequest(2)
	gone.Status = erasure.RequestCancelled
	orphan := newTask(gone, "a")
	orphan.Status, orphan.UpdatedAt = erasure.TaskDispatched, t0.Add(-3*time.Hour)
	insert(t, s, gone, orphan)
	due, err := s.DueTasks(ctx(t), t0, t0.Add(-time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DueTask{
		{TaskID: stale.ID, RequestID: r.ID, Status: erasure.TaskDispatched},
		{TaskID: pollDue.ID, RequestID: r.ID, Status: erasure.TaskRunning},
		{TaskID: retryDue.ID, RequestID: r.ID, Status: erasure.TaskFailed},
	}
	if !reflect.DeepEqual(due, want) {
		t.Errorf("due = %+v, want %+v", due, want)
	}
	if due, _ := s.DueTasks(ctx(t), t0, t0.Add(-time.Hour), 1); len(due) != 1 {
		t.Errorf("limit 1 returned %d", len(due))
	}
}

// followUpsAndFlags: re-checks and re-erasures of a completed request
// are tasks apart from its own, due when scheduled; a flag round-trips and
// filters.
func followUpsAndFlags(t *testing.T, s store.Store) {
	r := newRequest(1)
	r.Status, r.CompletedAt = erasure.RequestCompleted, t0.Add(-time.Hour)
	erase := newTask(r, "a")
	erase.Status = erasure.TaskErased
	due, later, again := newTask(r, "a"), newTask(r, "a"), newTask(r, "a")
	due.Phase, due.Status, due.NextAttemptAt = erasure.RecheckPhase(72*time.Hour), erasure.TaskScheduled, t0.Add(-time.Second)
	later.Phase, later.Status, later.NextAttemptAt = erasure.RecheckPhase(720*time.Hour), erasure.TaskScheduled, t0.Add(time.Hour)
	again.Phase, again.Status, again.UpdatedAt = erasure.ReerasePhase(72*time.Hour), erasure.TaskDispatched, t0.Add(-2*time.Hour)
	insert(t, s, r, erase, due, later, again)
	if ts, err := s.Tasks(ctx(t), r.ID); err != nil || len(ts) != 1 || ts[0].ID != erase.ID {
		t.Errorf("a request's own tasks = %+v, %v", ts, err)
	}
	fs, err := s.FollowUps(ctx(t), r.ID)
	if err != nil || len(fs) != 3 {
		t.Fatalf("follow-ups = %+v, %v", fs, err)
	}
	byID := map[string]erasure.Task{}
	for _, f := range fs {
		byID[f.ID] = f
	}
	if got := byID[due.ID]; got.Phase != "recheck:72h" || got.Status != erasure.TaskScheduled || !got.NextAttemptAt.Equal(due.NextAttemptAt) {
		t.Errorf("scheduled re-check read back as %+v", got)
	}
	mustTx(t, s, func(tx store.Tx) error {
		if fs, err := tx.FollowUps(ctx(t), r.ID); err != nil || len(fs) != 3 {
			t.Errorf("follow-ups in tx = %d, %v", len(fs), err)
		}
		return nil
	})
	// The due re-check, and the stale re-erasure of a completed request.
	got, err := s.DueTasks(ctx(t), t0, t0.Add(-time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DueTask{
		{TaskID: again.ID, RequestID: r.ID, Status: erasure.TaskDispatched},
		{TaskID: due.ID, RequestID: r.ID, Status: erasure.TaskScheduled},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("due = %+v, want %+v", got, want)
	}

	other := newRequest(2)
	insert(t, s, other)
	mustTx(t, s, func(tx store.Tx) error {
		q, err := tx.LockRequest(ctx(t), r.ID)
		if err != nil {
			return err
		}
		q.Flag, q.FlaggedAt = "a held the person again", t0
		return tx.UpdateRequest(ctx(t), q)
	})
	back, err := s.Request(ctx(t), r.ID)
	if err != nil || back.Flag != "a held the person again" || !back.FlaggedAt.Equal(t0) {
		t.Errorf("flag read back as %q at %v, %v", back.Flag, back.FlaggedAt, err)
	}
	flagged, err := s.Requests(ctx(t), store.RequestFilter{Flagged: true})
	if err != nil || len(flagged) != 1 || flagged[0].ID != r.ID {
		t.Errorf("flagged = %d requests, %v", len(flagged), err)
	}
}

func listRequests(t *testing.T, s store.Store) {
	var ids []string
	for i := range 5 {
		r := newRequest(i)
		if i%2 == 1 {
			r.Status = erasure.RequestCompleted
		}
		r.DueAt = t0.Add(time.Duration(i) * 24 * time.Hour)
		insert(t, s, r)
		ids = append(ids, r.ID)
	}
	all, err := s.Requests(ctx(t), store.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].ID != ids[4] || all[4].ID != ids[0] {
		t.Fatalf("list is not newest first: %d requests", len(all))
	}
	page, _ := s.Requests(ctx(t), store.RequestFilter{Limit: 2})
	next, _ := s.Requests(ctx(t), store.RequestFilter{Limit: 2, Before: page[1].ID})
	if len(page) != 2 || len(next) != 2 || next[0].ID != ids[2] {
		t.Errorf("pagination: page %d, next %d", len(page), len(next))
	}
	done, _ := s.Requests(ctx(t), store.RequestFilter{Statuses: []erasure.RequestStatus{erasure.RequestCompleted}})
	if len(done) != 2 {
		t.Errorf("%d completed requests, want 2", len(done))
	}
	soon, _ := s.Requests(ctx(t), store.RequestFilter{DueBefore: t0.Add(36 * time.Hour)})
	if len(soon) != 2 {
		t.Errorf("%d requests due within 36h, want 2", len(soon))
	}
}

// waitingAndProgress: the list can keep requests only a person can move
// on, order by deadline with offset paging, and count each request's
// systems done.
func waitingAndProgress(t *testing.T, s store.Store) {
	task := func(r erasure.Request, connector, typ, phase string, st erasure.TaskStatus) erasure.Task {
		k := newTask(r, connector)
		k.ConnectorType, k.Phase, k.Status = typ, phase, st
		return k
	}
	// manual: a manual system waits for staff; ident: a system needs an
	// identifier; busy: a vendor job runs (no person needed); none: no tasks.
	manual, ident, busy, none := newRequest(1), newRequest(2), newRequest(3), newRequest(4)
	manual.DueAt, ident.DueAt, busy.DueAt, none.DueAt = t0.Add(72*time.Hour), t0.Add(24*time.Hour), t0.Add(48*time.Hour), t0.Add(96*time.Hour)
	insert(t, s, manual, task(manual, "paper", "manual", erasure.PhaseErase, erasure.TaskRunning),
		task(manual, "db", "sql", erasure.PhaseErase, erasure.TaskErased),
		task(manual, "crm", "hubspot", erasure.PhaseErase, erasure.TaskNotFound))
	insert(t, s, ident, task(ident, "legacy", "sql", erasure.PhaseErase, erasure.TaskNeedsIdentifier),
		task(ident, "crm", "hubspot", erasure.PhaseResolve, erasure.TaskResolved))
	insert(t, s, busy, task(busy, "mixpanel", "mixpanel", erasure.PhaseErase, erasure.TaskRunning),
		task(busy, "db", "sql", erasure.PhaseErase, erasure.TaskExempted))
	insert(t, s, none)

	got, err := s.Requests(ctx(t), store.RequestFilter{WaitingForPerson: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	want := []string{manual.ID, ident.ID}
	slices.Sort(want)
	slices.Reverse(want) // newest (greatest id) first
	if !slices.Equal(ids, want) {
		t.Errorf("waiting for a person: %v, want %v", ids, want)
	}

	byDue, err := s.Requests(ctx(t), store.RequestFilter{ByDue: true, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.Requests(ctx(t), store.RequestFilter{ByDue: true, Limit: 2, Offset: 2})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range append(byDue, next...) {
		order = append(order, r.ID)
	}
	if w := []string{ident.ID, busy.ID, manual.ID, none.ID}; !slices.Equal(order, w) {
		t.Errorf("by deadline: %v, want %v", order, w)
	}

	p, err := s.Progress(ctx(t), []string{manual.ID, ident.ID, busy.ID, none.ID})
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range map[string]store.Progress{
		manual.ID: {Systems: 3, Done: 2, WaitingForPerson: 1},
		ident.ID:  {Systems: 1, Done: 0, WaitingForPerson: 1}, // the look-up is not a system erased
		busy.ID:   {Systems: 2, Done: 1},
	} {
		if p[id] != w {
			t.Errorf("progress of %s = %+v, want %+v", id, p[id], w)
		}
	}
	if _, ok := p[none.ID]; ok || len(p) != 3 {
		t.Errorf("progress lists %d requests, want 3 (none for a request without tasks)", len(p))
	}
	if empty, err := s.Progress(ctx(t), nil); err != nil || len(empty) != 0 {
		t.Errorf("progress of no requests: %v, %v", empty, err)
	}
}

func stats(t *testing.T, s store.Store) {
	late, done := newRequest(1), newRequest(2)
	late.DueAt = t0.Add(-time.Hour)
	done.DueAt, done.Status = t0.Add(-time.Hour), erasure.RequestCompleted
	insert(t, s, late)
	insert(t, s, done)
	st, err := s.Stats(ctx(t), t0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests[erasure.RequestInProgress] != 1 || st.Requests[erasure.RequestCompleted] != 1 || st.Overdue != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func subjectLookups(t *testing.T, s store.Store) {
	a, b, c := newRequest(1), newRequest(2), newRequest(3)
	b.SubjectRef.Identifiers = append(b.SubjectRef.Identifiers, erasure.IdentifierHash{Kind: "phone", Hash: "shared"})
	c.SubjectRef.Identifiers = []erasure.IdentifierHash{{Kind: "email", Hash: "shared"}, {Kind: "phone", Hash: "shared"}}
	c.ReceivedAt = t0.Add(48 * time.Hour)
	for _, r := range []erasure.Request{a, b, c} {
		insert(t, s, r)
	}
	got, err := s.RequestsBySubjectHash(ctx(t), []string{"shared", "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != c.ID {
		t.Errorf("by subject hash: %d requests, want 3 newest first", len(got))
	}
	if got, _ := s.RequestsBySubjectHash(ctx(t), []string{"nobody"}); len(got) != 0 {
		t.Errorf("unknown hash found %d requests", len(got))
	}
	in, _ := s.Requests(ctx(t), store.RequestFilter{ReceivedFrom: t0.Add(time.Hour), ReceivedTo: t0.Add(72 * time.Hour)})
	if len(in) != 1 || in[0].ID != c.ID {
		t.Errorf("received range found %d requests", len(in))
	}
	cert := store.Certificate{RequestID: b.ID, ID: erasure.NewID(), KeyID: "k", Document: []byte("{}"), IssuedAt: t0, LogIndex: 7}
	mustTx(t, s, func(tx store.Tx) error { return tx.InsertCertificate(ctx(t), cert) })
	byID, err := s.CertificateByID(ctx(t), cert.ID)
	if err != nil || byID.RequestID != b.ID || byID.LogIndex != 7 {
		t.Errorf("certificate by id = %+v, %v", byID, err)
	}
	m, err := s.Certificates(ctx(t), []string{a.ID, b.ID, c.ID})
	if err != nil || len(m) != 1 || m[b.ID].ID != cert.ID {
		t.Errorf("certificates of requests = %v, %v", m, err)
	}
}

func appendLeaf(t *testing.T, tx store.Tx, kind, ref string) int64 {
	t.Helper()
	n, err := tx.LockLog(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	e := store.LogEntry{Index: n, Kind: kind, Ref: ref, Data: []byte(ref), CreatedAt: t0}
	if err := tx.AppendLog(ctx(t), e, n*10, [][]byte{[]byte(ref + "-h0"), []byte(ref + "-h1")}); err != nil {
		t.Fatal(err)
	}
	return n
}

func logAppend(t *testing.T, s store.Store) {
	if n, err := s.LogSize(ctx(t)); err != nil || n != 0 {
		t.Fatalf("new log size = %d, %v", n, err)
	}
	if _, err := s.LatestCheckpoint(ctx(t)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("checkpoint of an empty log: %v", err)
	}
	mustTx(t, s, func(tx store.Tx) error {
		appendLeaf(t, tx, "certificate", "c0")
		appendLeaf(t, tx, "key_activated", "k0")
		if err := tx.InsertCheckpoint(ctx(t), store.Checkpoint{Size: 2, Root: []byte("root2"), Note: []byte("note2"), CreatedAt: t0}); err != nil {
			return err
		}
		if e, err := tx.LogEntryByRef(ctx(t), "key_activated", "k0"); err != nil || e.Index != 1 {
			t.Errorf("entry by ref in tx = %+v, %v", e, err)
		}
		// An append not at the end is refused.
		err := tx.AppendLog(ctx(t), store.LogEntry{Index: 0, Kind: "certificate", Ref: "x", Data: []byte("x"), CreatedAt: t0}, 99, nil)
		if err == nil {
			t.Error("an append over an existing leaf was accepted")
		}
		return nil
	})
	if n, _ := s.LogSize(ctx(t)); n != 2 {
		t.Errorf("log size %d, want 2", n)
	}
	hs, err := s.LogHashes(ctx(t), []int64{11, 0, 10})
	if err != nil || string(hs[0]) != "k0-h1" || string(hs[1]) != "c0-h0" || string(hs[2]) != "k0-h0" {
		t.Errorf("hashes = %q, %v", hs, err)
	}
	if _, err := s.LogHashes(ctx(t), []int64{5}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing hash: %v", err)
	}
	es, err := s.LogEntries(ctx(t), 0, 10)
	if err != nil || len(es) != 2 || es[1].Ref != "k0" || string(es[0].Data) != "c0" || !es[0].CreatedAt.Equal(t0) {
		t.Errorf("entries = %+v, %v", es, err)
	}
	if _, err := s.LogEntryByRef(ctx(t), "certificate", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing entry: %v", err)
	}
	mustTx(t, s, func(tx store.Tx) error {
		appendLeaf(t, tx, "recheck", "c0")
		appendLeaf(t, tx, "recheck", "c9")
		appendLeaf(t, tx, "recheck", "c0")
		return nil
	})
	rs, err := s.LogEntriesByRef(ctx(t), "recheck", "c0")
	if err != nil || len(rs) != 2 || rs[0].Index != 2 || rs[1].Index != 4 || rs[0].Kind != "recheck" {
		t.Errorf("re-checks of c0 = %+v, %v", rs, err)
	}
	if rs, err := s.LogEntriesByRef(ctx(t), "recheck", "nope"); err != nil || len(rs) != 0 {
		t.Errorf("re-checks of nothing = %+v, %v", rs, err)
	}
	cp, err := s.LatestCheckpoint(ctx(t))
	if err != nil || cp.Size != 2 || string(cp.Note) != "note2" {
		t.Errorf("checkpoint = %+v, %v", cp, err)
	}
}

func concurrentLog(t *testing.T, s store.Store) {
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.InTx(ctx(t), func(tx store.Tx) error {
				size, err := tx.LockLog(ctx(t))
				if err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
				return tx.AppendLog(ctx(t), store.LogEntry{Index: size, Kind: "certificate", Ref: fmt.Sprint(i), Data: []byte("d"), CreatedAt: t0}, size*10, [][]byte{[]byte("h")})
			})
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	es, err := s.LogEntries(ctx(t), 0, 100)
	if err != nil || len(es) != n {
		t.Fatalf("%d entries, %v; want %d", len(es), err, n)
	}
	for i, e := range es {
		if e.Index != int64(i) {
			t.Errorf("entry %d has index %d", i, e.Index)
		}
	}
}

func shred(t *testing.T, s store.Store) {
	r, other := newRequest(1), newRequest(2)
	insert(t, s, r)
	insert(t, s, other)
	at := t0.Add(time.Hour)
	mustTx(t, s, func(tx store.Tx) error { return tx.ShredRequest(ctx(t), r.ID, at) })
	got, err := s.Request(ctx(t), r.ID)
	if err != nil {
		t.Fatalf("a shredded request cannot be read: %v", err)
	}
	if got.Subject.Email != "" || len(got.Subject.UserIDs) != 0 || got.CommitmentNonce != nil || !got.ShreddedAt.Equal(at) {
		t.Errorf("after shredding: subject %+v, nonce %v, shredded at %v", got.Subject, got.CommitmentNonce, got.ShreddedAt)
	}
	if len(got.SubjectRef.Identifiers) == 0 {
		t.Error("shredding removed the keyed hashes; they must stay")
	}
	if o, _ := s.Request(ctx(t), other.ID); o.Subject.Email != other.Subject.Email {
		t.Error("shredding touched another request")
	}
	unshredded, _ := s.Requests(ctx(t), store.RequestFilter{Unshredded: true})
	if len(unshredded) != 1 || unshredded[0].ID != other.ID {
		t.Errorf("unshredded filter found %d requests", len(unshredded))
	}
	err = s.InTx(ctx(t), func(tx store.Tx) error { return tx.ShredRequest(ctx(t), erasure.NewID(), at) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("shred of a missing request: %v", err)
	}
}

func suppressions(t *testing.T, s store.Store) {
	a, b := newRequest(1), newRequest(2)
	insert(t, s, a)
	insert(t, s, b)
	mustTx(t, s, func(tx store.Tx) error {
		if err := tx.AddSuppressions(ctx(t), a.ID, a.SubjectRef.Identifiers, t0); err != nil {
			return err
		}
		// Twice is harmless.
		if err := tx.AddSuppressions(ctx(t), a.ID, a.SubjectRef.Identifiers, t0); err != nil {
			return err
		}
		return tx.AddSuppressions(ctx(t), b.ID, b.SubjectRef.Identifiers, t0.Add(48*time.Hour))
	})
	got, err := s.Suppressed(ctx(t), []string{"h1", "nope"})
	if err != nil || len(got) != 1 || got[0].RequestID != a.ID || got[0].Kind != "email" || !got[0].CreatedAt.Equal(t0) {
		t.Errorf("suppressed = %+v, %v", got, err)
	}
	since, err := s.SuppressionsSince(ctx(t), t0.Add(time.Hour))
	if err != nil || len(since) != 1 || since[0].RequestID != b.ID {
		t.Errorf("since = %+v, %v", since, err)
	}
}

func purge(t *testing.T, s store.Store) {
	r, keep := newRequest(1), newRequest(2)
	task := newTask(r, "db")
	insert(t, s, r, task)
	insert(t, s, keep, newTask(keep, "db"))
	mustTx(t, s, func(tx store.Tx) error {
		task.JobRef = "job-purged"
		if err := tx.UpdateTask(ctx(t), task); err != nil {
			return err
		}
		for _, id := range []string{r.ID, keep.ID} {
			if _, err := tx.AppendEvent(ctx(t), erasure.NewEvent(id, "", "x", "t", "", nil, t0)); err != nil {
				return err
			}
			if err := tx.InsertCertificate(ctx(t), store.Certificate{RequestID: id, ID: erasure.NewID(), KeyID: "k", Document: []byte("{}"), IssuedAt: t0, LogIndex: 3}); err != nil {
				return err
			}
		}
		return tx.AddSuppressions(ctx(t), r.ID, r.SubjectRef.Identifiers, t0)
	})
	p := store.Purge{RequestID: r.ID, Status: erasure.RequestCompleted, Jurisdiction: erasure.GDPR, ReceivedAt: t0, DueAt: t0.Add(time.Hour),
		CompletedAt: t0.Add(time.Minute), CertificateID: "c1", LogIndex: 3, PurgedAt: t0.Add(1000 * time.Hour)}
	mustTx(t, s, func(tx store.Tx) error { return tx.PurgeRequest(ctx(t), p) })
	if _, err := s.Request(ctx(t), r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("purged request still there: %v", err)
	}
	if ev, _ := s.Events(ctx(t), r.ID); len(ev) != 0 {
		t.Errorf("%d events of a purged request remain", len(ev))
	}
	if _, err := s.Certificate(ctx(t), r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("certificate of a purged request: %v", err)
	}
	if _, err := s.TaskByJobRef(ctx(t), "db", "job-purged"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a purged task's job ref still finds it: %v", err)
	}
	got, err := s.Purge(ctx(t), r.ID)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("purge record = %+v, %v; want %+v", got, err, p)
	}
	if sup, _ := s.Suppressed(ctx(t), []string{"h1"}); len(sup) != 1 {
		t.Error("purging dropped the suppression entry; it must stay")
	}
	// Other requests are untouched, and outside a purge events stay
	// append-only.
	if ev, _ := s.Events(ctx(t), keep.ID); len(ev) != 1 {
		t.Errorf("%d events of another request remain, want 1", len(ev))
	}
	if ts, _ := s.Tasks(ctx(t), keep.ID); len(ts) != 1 {
		t.Error("purge removed another request's task")
	}
}

func portal(t *testing.T, s store.Store) {
	r := newRequest(1)
	insert(t, s, r)
	p := store.PortalRequest{RequestID: r.ID, Lang: "he", CodeHash: "c", CodeExpiresAt: t0.Add(time.Hour), CodeSentAt: t0}
	mustTx(t, s, func(tx store.Tx) error { return tx.InsertPortalRequest(ctx(t), p) })
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.LockPortal(ctx(t), r.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("portal request read back %+v, want %+v", got, p)
		}
		got.CodeAttempts, got.VerifiedAt, got.CodeSentAt = 2, t0.Add(time.Minute), t0.Add(time.Second)
		return tx.UpdatePortalRequest(ctx(t), got)
	})
	got, err := s.PortalRequest(ctx(t), r.ID)
	if err != nil || got.CodeAttempts != 2 || !got.VerifiedAt.Equal(t0.Add(time.Minute)) || got.Lang != "he" ||
		!got.CodeSentAt.Equal(t0.Add(time.Second)) {
		t.Errorf("portal request = %+v, %v", got, err)
	}
	if _, err := s.PortalRequest(ctx(t), erasure.NewID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown portal request: %v", err)
	}
	err = s.InTx(ctx(t), func(tx store.Tx) error { _, err := tx.LockPortal(ctx(t), erasure.NewID()); return err })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lock an unknown portal request: %v", err)
	}
	// Purging the request takes its portal row with it.
	mustTx(t, s, func(tx store.Tx) error {
		return tx.PurgeRequest(ctx(t), store.Purge{RequestID: r.ID, Status: erasure.RequestCancelled, Jurisdiction: erasure.GDPR,
			ReceivedAt: t0, DueAt: t0, LogIndex: -1, PurgedAt: t0})
	})
	if _, err := s.PortalRequest(ctx(t), r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("portal row outlived its request: %v", err)
	}
}

func sessions(t *testing.T, s store.Store) {
	x := store.Session{IDHash: "sid", User: "ann", Role: "agent", CSRF: "tok", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateSession(ctx(t), x); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx(t), "sid", t0.Add(time.Minute))
	if err != nil || !reflect.DeepEqual(got, x) {
		t.Errorf("session = %+v, %v", got, err)
	}
	if _, err := s.Session(ctx(t), "sid", t0.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired session: %v", err)
	}
	if n, err := s.DeleteExpiredSessions(ctx(t), t0.Add(2*time.Hour)); err != nil || n != 1 {
		t.Errorf("deleted %d expired sessions, %v", n, err)
	}
	_ = s.CreateSession(ctx(t), x)
	if err := s.DeleteSession(ctx(t), "sid"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx(t), "sid", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted session: %v", err)
	}
}

func throttles(t *testing.T, s store.Store) {
	got, err := s.Throttle(ctx(t), "k1")
	if err != nil || got != (store.Throttle{Key: "k1"}) {
		t.Errorf("a key never counted = %+v, %v", got, err)
	}
	want := store.Throttle{Key: "k1", Failures: 3, LastAt: t0, Ref: "r1", UpdatedAt: t0.Add(time.Second)}
	mustTx(t, s, func(tx store.Tx) error {
		got, err := tx.LockThrottle(ctx(t), "k1")
		if err != nil {
			return err
		}
		if got != (store.Throttle{Key: "k1"}) {
			t.Errorf("locked a new key: %+v", got)
		}
		return tx.UpdateThrottle(ctx(t), want)
	})
	if got, err := s.Throttle(ctx(t), "k1"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("throttle = %+v, %v; want %+v", got, err, want)
	}
	// UpdateThrottle without a lock creates the row too.
	other := store.Throttle{Key: "k2", Failures: 1, LastAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}
	mustTx(t, s, func(tx store.Tx) error { return tx.UpdateThrottle(ctx(t), other) })
	if n, err := s.DeleteThrottles(ctx(t), t0.Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("deleted %d idle throttles, %v; want 1", n, err)
	}
	if got, _ := s.Throttle(ctx(t), "k1"); got.Failures != 0 {
		t.Errorf("an idle key was kept: %+v", got)
	}
	if got, _ := s.Throttle(ctx(t), "k2"); !reflect.DeepEqual(got, other) {
		t.Errorf("a recent key was forgotten: %+v", got)
	}
}

// concurrentThrottle counts failures of one key from many transactions at
// once, the first of them on a key with no row yet: none may be lost, or
// replicas together would allow more tries than one.
func concurrentThrottle(t *testing.T, s store.Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.InTx(ctx(t), func(tx store.Tx) error {
				th, err := tx.LockThrottle(ctx(t), "shared")
				if err != nil {
					return err
				}
				th.Failures++
				th.LastAt, th.UpdatedAt = t0, t0
				return tx.UpdateThrottle(ctx(t), th)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent failure: %v", err)
		}
	}
	if got, err := s.Throttle(ctx(t), "shared"); err != nil || got.Failures != n {
		t.Errorf("failures = %d, %v; want %d", got.Failures, err, n)
	}
}

// batches: requests filed in a batch keep its name, list by it, and sum
// up per batch (requests by status, overdue, systems done), newest batch
// first; a request filed alone is in no batch.
func batches(t *testing.T, s store.Store) {
	task := func(r erasure.Request, connector string, phase string, st erasure.TaskStatus) erasure.Task {
		k := newTask(r, connector)
		k.Phase, k.Status = phase, st
		return k
	}
	now := t0.Add(40 * 24 * time.Hour) // past every deadline below
	var older, newer []erasure.Request
	for i := range 3 {
		r := newRequest(i)
		r.Batch = "shutdown-2026"
		r.ReceivedAt = t0.Add(time.Duration(i) * time.Minute)
		older = append(older, r)
	}
	older[0].Status, older[0].CompletedAt = erasure.RequestCompleted, t0.Add(time.Hour)
	older[1].Status = erasure.RequestNeedsAttention
	insert(t, s, older[0], task(older[0], "db", erasure.PhaseErase, erasure.TaskErased),
		task(older[0], "crm", erasure.PhaseErase, erasure.TaskNotFound))
	insert(t, s, older[1], task(older[1], "db", erasure.PhaseErase, erasure.TaskErased),
		task(older[1], "legacy", erasure.PhaseErase, erasure.TaskNeedsIdentifier),
		task(older[1], "crm", erasure.PhaseResolve, erasure.TaskResolved))
	insert(t, s, older[2], task(older[2], "db", erasure.PhaseErase, erasure.TaskQueued))
	alone := newRequest(10)
	insert(t, s, alone, task(alone, "db", erasure.PhaseErase, erasure.TaskQueued))
	for i := range 2 {
		r := newRequest(20 + i)
		r.Batch = "import-0a1b2c3d4e5f"
		r.DueAt = now.Add(24 * time.Hour)
		newer = append(newer, r)
		insert(t, s, r)
	}

	got, err := s.Requests(ctx(t), store.RequestFilter{Batch: "shutdown-2026"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Batch != "shutdown-2026" {
		t.Fatalf("requests of the batch: %d (first in %q), want 3", len(got), got[0].Batch)
	}
	imported, err := s.Requests(ctx(t), store.RequestFilter{Batch: "import-0a1b2c3d4e5f"})
	if err != nil || len(imported) != 2 || imported[0].ID != newer[1].ID || imported[1].ID != newer[0].ID {
		t.Errorf("requests of the import: %d (%v), want its 2, newest first", len(imported), err)
	}
	if r, err := s.Request(ctx(t), alone.ID); err != nil || r.Batch != "" {
		t.Errorf("a request filed alone reads back in batch %q (%v)", r.Batch, err)
	}

	b, err := s.Batch(ctx(t), "shutdown-2026", now)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Batch{Name: "shutdown-2026", Requests: 3, Overdue: 2,
		ByStatus:      map[erasure.RequestStatus]int{erasure.RequestCompleted: 1, erasure.RequestNeedsAttention: 1, erasure.RequestInProgress: 1},
		Tasks:         store.Progress{Systems: 5, Done: 3, WaitingForPerson: 1},
		FirstReceived: t0, LastReceived: t0.Add(2 * time.Minute)}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("batch = %+v\nwant    %+v", b, want)
	}
	if b.Final() != 1 {
		t.Errorf("final = %d, want 1", b.Final())
	}
	if _, err := s.Batch(ctx(t), "never-filed", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown batch: %v, want ErrNotFound", err)
	}

	list, err := s.Batches(ctx(t), 10, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "import-0a1b2c3d4e5f" || list[1].Name != "shutdown-2026" {
		t.Fatalf("batches = %+v, want the import then shutdown-2026", list)
	}
	if list[0].Requests != 2 || list[0].Overdue != 0 || list[0].Tasks.Systems != 0 {
		t.Errorf("the import's batch = %+v, want 2 requests, none overdue, no systems yet", list[0])
	}
	if one, err := s.Batches(ctx(t), 1, now); err != nil || len(one) != 1 || one[0].Name != "import-0a1b2c3d4e5f" {
		t.Errorf("Batches(limit 1) = %+v (%v), want the newest only", one, err)
	}
}

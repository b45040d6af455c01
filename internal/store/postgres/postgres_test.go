package postgres_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/postgres"
	"github.com/lethe-dev/lethe/internal/store/storetest"
	"github.com/lethe-dev/lethe/internal/testenv"
)

func open(t *testing.T) (store.Store, string) {
	t.Helper()
	url := testenv.PostgresSchema(t)
	ctx := context.Background()
	if _, err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 8, Keys: testenv.KeyRing()})
	if err != nil {
		t.Fatal(err)
	}
	return s, url
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := open(t)
		return s
	})
}

func TestKeyRotation(t *testing.T) {
	url := testenv.PostgresSchema(t)
	if _, err := postgres.Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	storetest.KeyRotation(t, func(t *testing.T, keys seal.Wrapper) store.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	url := testenv.PostgresSchema(t)
	ctx := context.Background()
	results := make(chan int, 3)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			n, err := postgres.Migrate(ctx, url)
			results <- n
			errs <- err
		}()
	}
	total := 0
	for range 3 {
		total += <-results
		if err := <-errs; err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	files, _ := os.ReadDir("migrations")
	if total != len(files) {
		t.Errorf("%d migrations applied in all, want each of the %d once", total, len(files))
	}
	if n, err := postgres.Migrate(ctx, url); err != nil || n != 0 {
		t.Errorf("re-run applied %d, err %v", n, err)
	}
}

func TestEventsAreAppendOnly(t *testing.T) {
	s, url := open(t)
	defer s.Close()
	ctx := context.Background()
	r := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestInProgress, Jurisdiction: erasure.GDPR,
		Subject: erasure.Subject{Email: "a@example.com"}, Source: "api", CreatedBy: "t",
		ReceivedAt: erasure.SystemClock(), DueAt: erasure.SystemClock(), UpdatedAt: erasure.SystemClock()}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, "", "x", "t", "", nil, r.ReceivedAt))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"UPDATE events SET reason = 'forged'", "DELETE FROM events"} {
		_, err := conn.Exec(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
}

func TestBadURL(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:hunter2@[bad", postgres.Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad URL error %v must exist and not echo the password", err)
	}
}

// TestDatabaseOutageIsUnavailable takes the database away from a store (a
// proxy in between is cut) and brings it back: while it is away reads and
// transactions fail as store.ErrUnavailable, never as an internal error or
// "not found", and afterwards the same store works again.
func TestDatabaseOutageIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.PostgresSchema(t)
	if _, err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	db, proxied := testenv.PostgresOutage(t, url)
	s, err := postgres.Open(ctx, proxied, postgres.Options{MaxConns: 4, Keys: testenv.KeyRing()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := erasure.SystemClock()
	r := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestInProgress, Jurisdiction: erasure.GDPR,
		Subject: erasure.Subject{Email: "a@example.com"}, Source: "api", CreatedBy: "t",
		ReceivedAt: now, DueAt: now, UpdatedAt: now}
	insert := func() error {
		return s.InTx(ctx, func(tx store.Tx) error { return tx.InsertRequest(ctx, r) })
	}
	if err := insert(); err != nil {
		t.Fatal(err)
	}

	db.Down()
	for name, call := range map[string]func() error{
		"Request": func() error { _, err := s.Request(ctx, r.ID); return err },
		"Tasks":   func() error { _, err := s.Tasks(ctx, r.ID); return err },
		"InTx":    insert,
		"Ping":    func() error { return s.Ping(ctx) },
	} {
		err := call()
		if !errors.Is(err, store.ErrUnavailable) || erasure.ErrorCode(err) != erasure.EUnavailable {
			t.Errorf("%s while the database is away: %v (code %q), want unavailable", name, err, erasure.ErrorCode(err))
		}
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: an outage must not look like a missing row: %v", name, err)
		}
	}

	db.Up()
	got, err := s.Request(ctx, r.ID)
	if err != nil || got.ID != r.ID {
		t.Fatalf("after the database is back: %v, %v", got.ID, err)
	}
	// A real SQL error is still what it was: a duplicate is not an outage.
	if err := insert(); err == nil || erasure.ErrorCode(err) == erasure.EUnavailable {
		t.Errorf("inserting the request twice: %v (code %q), want a non-outage error", err, erasure.ErrorCode(err))
	}
}

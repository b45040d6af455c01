package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/store/storetest"
	"github.com/lethe-dev/lethe/internal/testenv"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), testenv.KeyRing())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestKeyRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lethe.db")
	storetest.KeyRotation(t, func(t *testing.T, keys seal.Wrapper) store.Store {
		s, err := sqlite.Open(context.Background(), path, keys)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsDataAndEventsAreAppendOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lethe.db")
	s, err := sqlite.Open(ctx, path, testenv.KeyRing())
	if err != nil {
		t.Fatal(err)
	}
	now := erasure.SystemClock()
	r := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestInProgress, Jurisdiction: erasure.GDPR,
		Subject: erasure.Subject{Email: "a@example.com"}, Source: "api", CreatedBy: "t",
		ReceivedAt: now, DueAt: now, UpdatedAt: now}
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, erasure.NewEvent(r.ID, "", "x", "t", "", nil, now))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = sqlite.Open(ctx, path, testenv.KeyRing()) // migrations must not run twice
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Request(ctx, r.ID); err != nil || got.Subject.Email != "a@example.com" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"UPDATE events SET reason = 'forged'", "DELETE FROM events"} {
		_, err := db.Exec(q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
}

func TestRejectsURIPaths(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), "x.db?mode=ro", nil); err == nil {
		t.Error("a path with a query string was accepted")
	}
}

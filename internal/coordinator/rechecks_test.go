package coordinator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/translog"
)

// recordingCertifier is fakeCertifier that also records re-check leaves.
type recordingCertifier struct {
	fakeCertifier
	leaves []translog.RecheckEvent
}

func (r *recordingCertifier) LogRecheck(_ context.Context, _ store.Tx, e translog.RecheckEvent, _ time.Time) (int64, error) {
	if _, err := translog.RecheckLeaf(e); err != nil {
		return -1, err
	}
	r.leaves = append(r.leaves, e)
	return int64(100 + len(r.leaves)), nil
}

// setupRechecks is setup with "db" re-checked at 72h and 720h, a
// certifier that records the leaves, and shredding after 1,000 hours.
func setupRechecks(t *testing.T) (bundle, *recordingCertifier) {
	t.Helper()
	rec := &recordingCertifier{}
	b := setup(t, func(cfg *coordinator.Config) {
		cfg.Connectors[0].RecheckAfter = []time.Duration{72 * time.Hour, 720 * time.Hour}
		cfg.Retention.ShredAfter = 1000 * time.Hour
		cfg.Retention.KeepRequests = 20000 * time.Hour
	})
	b.c = coordinator.New(coordinator.Deps{Store: b.store, Hasher: hasher(t), Certifier: rec, Clock: b.clock.Now}, b.cfg)
	b.cert = &rec.fakeCertifier
	return b, rec
}

func followUps(t *testing.T, b bundle, id string) map[string]erasure.Task {
	t.Helper()
	fs, err := b.store.FollowUps(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]erasure.Task{}
	for _, f := range fs {
		out[f.Connector+" "+f.Phase] = f
	}
	return out
}

func schedule(t *testing.T, b bundle) int {
	t.Helper()
	n, err := b.c.ScheduleDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func eventTypes(t *testing.T, b bundle, id string) []string {
	t.Helper()
	evs, err := b.store.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := erasure.VerifyChain(evs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func TestRechecksCatchAPersonFoundAgain(t *testing.T) {
	b, rec := setupRechecks(t)
	ctx := context.Background()
	req := complete(t, b)
	outbox(t, b)

	fs := followUps(t, b, req.ID)
	if len(fs) != 2 {
		t.Fatalf("follow-ups after completion: %v (want db at 72h and 720h, none for crm)", fs)
	}
	early, late := fs["db recheck:72h"], fs["db recheck:720h"]
	if early.Status != erasure.TaskScheduled || !early.NextAttemptAt.Equal(req.CompletedAt.Add(72*time.Hour)) ||
		late.Status != erasure.TaskScheduled || !late.NextAttemptAt.Equal(req.CompletedAt.Add(720*time.Hour)) {
		t.Fatalf("scheduled re-checks: %+v / %+v", early, late)
	}
	if main := tasks(t, b, req.ID); len(main) != 2 {
		t.Errorf("the request's own tasks now include follow-ups: %v", main)
	}

	b.clock.Advance(71 * time.Hour)
	if n := schedule(t, b); n != 0 {
		t.Fatalf("scheduled %d messages before the first re-check is due", n)
	}
	b.clock.Advance(2 * time.Hour)
	if n := schedule(t, b); n != 1 {
		t.Fatalf("scheduled %d messages when the first re-check is due", n)
	}
	msgs := outbox(t, b)
	if len(msgs) != 1 || msgs[0].Kind != bus.KindRecheck || !msgs[0].FollowUp || msgs[0].TaskID != early.ID {
		t.Fatalf("re-check message: %+v", msgs)
	}
	early = followUps(t, b, req.ID)["db recheck:72h"]
	clean := result(early, bus.KindRecheck, bus.ResultNotFound)
	clean.Verification = "clean"
	if a := apply(t, b, clean); a != coordinator.AppliedNew {
		t.Fatalf("clean re-check applied %s", a)
	}
	if a := apply(t, b, clean); a != coordinator.AppliedStale {
		t.Errorf("duplicate re-check result applied %s", a)
	}
	if len(rec.leaves) != 1 || rec.leaves[0].Outcome != translog.RecheckClean || rec.leaves[0].After != "72h" ||
		rec.leaves[0].Connector != "db" || rec.leaves[0].CertificateID == "" {
		t.Fatalf("leaves after a clean re-check: %+v", rec.leaves)
	}
	if got := followUps(t, b, req.ID)["db recheck:72h"]; got.Status != erasure.TaskNotFound || got.Verified != "clean" {
		t.Errorf("clean re-check task: %s verified %q", got.Status, got.Verified)
	}

	// The person comes back (an import, a restored backup) before day 30.
	b.clock.Advance(720*time.Hour - 72*time.Hour)
	if n := schedule(t, b); n != 1 {
		t.Fatalf("scheduled %d at day 30", n)
	}
	outbox(t, b)
	late = followUps(t, b, req.ID)["db recheck:720h"]
	bad := result(late, bus.KindRecheck, bus.ResultFound)
	bad.Records = 2
	if a := apply(t, b, bad); a != coordinator.AppliedNew {
		t.Fatalf("found applied %s", a)
	}
	fs = followUps(t, b, req.ID)
	if got := fs["db recheck:720h"]; got.Status != erasure.TaskFoundAgain {
		t.Errorf("re-check that found the person: %s", got.Status)
	}
	again, ok := fs["db reerase:720h"]
	if !ok || again.Status != erasure.TaskQueued {
		t.Fatalf("no re-erasure queued: %v", fs)
	}
	msgs = outbox(t, b)
	if len(msgs) != 1 || msgs[0].Kind != bus.KindErase || msgs[0].TaskID != again.ID || !msgs[0].FollowUp {
		t.Fatalf("re-erasure message: %+v", msgs)
	}
	r, _ := b.store.Request(ctx, req.ID)
	if r.Flag == "" || r.FlaggedAt.IsZero() || r.Status != erasure.RequestCompleted || b.cert.issued != 1 {
		t.Errorf("after a resurrection: flag %q at %v, status %s, %d certificates", r.Flag, r.FlaggedAt, r.Status, b.cert.issued)
	}
	if flagged, _ := b.store.Requests(ctx, store.RequestFilter{Flagged: true}); len(flagged) != 1 || flagged[0].ID != req.ID {
		t.Errorf("flagged filter: %d requests", len(flagged))
	}
	if !slices.Contains(eventTypes(t, b, req.ID), erasure.EventRequestFlagged) {
		t.Error("no request.flagged event")
	}
	if len(rec.leaves) != 2 || rec.leaves[1].Outcome != translog.RecheckFound || rec.leaves[1].Records != 2 {
		t.Fatalf("leaves after a resurrection: %+v", rec.leaves)
	}

	// The re-erasure fails once, is retried on a final request, then done.
	failed := result(again, bus.KindErase, bus.ResultFailed)
	failed.Error = &bus.ResultError{Message: "503"}
	apply(t, b, failed)
	b.clock.Advance(time.Minute)
	if n := schedule(t, b); n != 1 {
		t.Fatalf("the failed re-erasure was not retried: %d", n)
	}
	outbox(t, b)
	again = followUps(t, b, req.ID)["db reerase:720h"]
	if again.Attempt != 2 {
		t.Fatalf("re-erasure attempt %d", again.Attempt)
	}
	apply(t, b, result(again, bus.KindErase, bus.ResultErased))
	if len(rec.leaves) != 3 || rec.leaves[2].Outcome != translog.RecheckReerased || rec.leaves[2].Records != 3 {
		t.Fatalf("leaves after the re-erasure: %+v", rec.leaves)
	}

	if _, err := b.c.ClearFlag(ctx, req.ID, "api:ops", ""); erasure.ErrorField(err) != "reason" {
		t.Errorf("clear without a reason: %v", err)
	}
	if _, err := b.c.ClearFlag(ctx, req.ID, "api:ops", "the CRM import re-created them; import fixed"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.ClearFlag(ctx, req.ID, "api:ops", "again"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("clearing a flag twice: %v", err)
	}
	if r, _ := b.store.Request(ctx, req.ID); r.Flag != "" || !r.FlaggedAt.IsZero() {
		t.Errorf("flag after clearing: %q", r.Flag)
	}
	if types := eventTypes(t, b, req.ID); types[len(types)-1] != erasure.EventFlagCleared {
		t.Errorf("last event %s", types[len(types)-1])
	}
}

func TestRecheckThatCannotRunSaysSo(t *testing.T) {
	b, rec := setupRechecks(t)
	ctx := context.Background()
	req := complete(t, b)
	outbox(t, b)

	// The look-up keeps failing: after three attempts the re-check is
	// "not checked", and staff are told.
	b.clock.Advance(72 * time.Hour)
	for i := 0; i < 3; i++ {
		if n := schedule(t, b); n != 1 {
			t.Fatalf("attempt %d not scheduled", i+1)
		}
		outbox(t, b)
		task := followUps(t, b, req.ID)["db recheck:72h"]
		failed := result(task, bus.KindRecheck, bus.ResultFailed)
		failed.Error = &bus.ResultError{Message: "timeout"}
		apply(t, b, failed)
		b.clock.Advance(time.Minute)
	}
	if got := followUps(t, b, req.ID)["db recheck:72h"]; got.Status != erasure.TaskDead {
		t.Fatalf("re-check after 3 failures: %s", got.Status)
	}
	if len(rec.leaves) != 1 || rec.leaves[0].Outcome != translog.RecheckNotChecked || rec.leaves[0].Note == "" {
		t.Fatalf("leaves: %+v", rec.leaves)
	}
	if r, _ := b.store.Request(ctx, req.ID); r.Flag == "" {
		t.Error("a re-check that could not run did not flag the request")
	}
	// Staff fix the database and retry it: the same follow-up runs again.
	if _, err := b.c.RetryTask(ctx, req.ID, "crm", "api:ops", "fixed"); erasure.ErrorCode(err) != erasure.EConflict {
		t.Errorf("retrying a system with no dead follow-up: %v", err)
	}
	retried, err := b.c.RetryTask(ctx, req.ID, "db", "api:ops", "the replica is back")
	if err != nil || retried.Status != erasure.TaskQueued || retried.Attempt != 4 || !retried.IsRecheck() {
		t.Fatalf("retry of the dead re-check: %+v, %v", retried, err)
	}
	if msgs := outbox(t, b); len(msgs) != 1 || msgs[0].Kind != bus.KindRecheck || msgs[0].Attempt != 4 {
		t.Fatalf("retried re-check message: %+v", msgs)
	}
	clean := result(retried, bus.KindRecheck, bus.ResultNotFound)
	apply(t, b, clean)
	if len(rec.leaves) != 2 || rec.leaves[1].Outcome != translog.RecheckClean {
		t.Fatalf("leaves after the retry: %+v", rec.leaves)
	}

	// Retention waits for the day-30 re-check rather than shred under it.
	b.clock.Advance(2000 * time.Hour)
	if _, err := b.c.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.store.Request(ctx, req.ID); !r.ShreddedAt.IsZero() {
		t.Fatal("retention shredded identifiers a scheduled re-check needs")
	}
	// Staff shred by hand: the re-check can no longer run and says so.
	if _, err := b.c.Shred(ctx, req.ID, "api:ops", "the person asked"); err != nil {
		t.Fatal(err)
	}
	if n := schedule(t, b); n != 0 {
		t.Errorf("a re-check of shredded identifiers was sent (%d)", n)
	}
	if got := followUps(t, b, req.ID)["db recheck:720h"]; got.Status != erasure.TaskNotApplicable {
		t.Errorf("re-check after shredding: %s", got.Status)
	}
	if len(rec.leaves) != 3 || rec.leaves[2].Outcome != translog.RecheckNotChecked || rec.leaves[2].After != "720h" {
		t.Fatalf("leaves after shredding: %+v", rec.leaves)
	}
	if h, err := b.c.Housekeep(ctx); err != nil || h.Shredded != 0 {
		t.Errorf("housekeeping after the follow-ups ended: %+v, %v", h, err)
	}
}

func TestNoRechecksForWhatWasNotErased(t *testing.T) {
	b, _ := setupRechecks(t)
	ctx := context.Background()
	req, _ := file(t, b)
	if _, err := b.c.Exempt(ctx, req.ID, "db", "art17-3-b", "api:ops", "tax records"); err != nil {
		t.Fatal(err)
	}
	apply(t, b, result(tasks(t, b, req.ID)["crm"], bus.KindErase, bus.ResultErased))
	if r, _ := b.store.Request(ctx, req.ID); !r.Status.Final() {
		t.Fatalf("request %s", r.Status)
	}
	if fs := followUps(t, b, req.ID); len(fs) != 0 {
		t.Errorf("an exempted system is re-checked: %v", fs)
	}
}

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/translog"
	"go.uber.org/zap"
)

// Re-checks over time. When a request completes, every system erased (or
// searched and found clean) whose instance has recheck_after gets one
// follow-up task per age, scheduled for the completion time plus that age.
// When one is due the scheduler sends it; the worker looks the person up
// again (the connector's Verify), and the outcome is recorded as the
// task's event and as a transparency-log leaf naming the certificate.
// A system that holds the person again counts as a resurrection, gets a
// re-erasure task at once, and flags the request for staff with the
// evidence. The request's status and certificate never change.

// Recorder appends re-check outcomes to the transparency log within tx and
// returns the leaf's index. The certificate issuer is one.
type Recorder interface {
	LogRecheck(ctx context.Context, tx store.Tx, e translog.RecheckEvent, at time.Time) (int64, error)
}

// scheduleRechecks makes the re-checks of a request that has just
// completed: the systems that were erased or searched clean, at each age
// their instance's RecheckAfter names.
func (c *Coordinator) scheduleRechecks(ctx context.Context, tx store.Tx, req erasure.Request, tasks []erasure.Task, now time.Time) error {
	for _, t := range tasks {
		if t.Phase == erasure.PhaseResolve || (t.Status != erasure.TaskErased && t.Status != erasure.TaskNotFound) {
			continue // exempted or not applicable: nothing was to go
		}
		for _, after := range c.byName[t.Connector].RecheckAfter {
			rt := erasure.Task{ID: erasure.NewID(), RequestID: req.ID, Connector: t.Connector, ConnectorType: t.ConnectorType,
				Phase: erasure.RecheckPhase(after), Status: erasure.TaskScheduled, SearchedBy: t.SearchedBy,
				NextAttemptAt: req.CompletedAt.Add(after), CreatedAt: now, UpdatedAt: now}
			if err := c.createTask(ctx, tx, req, rt, erasure.ActorCoordinator, now); err != nil {
				return fmt.Errorf("schedule re-check: %w", err)
			}
		}
	}
	return nil
}

// applyRecheck sets a re-check's state from its result: clean, found
// again, or a failure retried like any other.
func (c *Coordinator) applyRecheck(t *erasure.Task, req erasure.Request, res bus.Result, now time.Time) {
	switch res.Status {
	case bus.ResultNotFound:
		c.applyToTask(t, req, res, now)
		t.Verified = "clean"
	case bus.ResultFound:
		c.applyToTask(t, req, bus.Result{Status: bus.ResultNotFound, Evidence: res.Evidence}, now)
		// RecordsErased of a re-check that found the person counts what
		// the system held (nothing was erased by the look-up).
		t.Status, t.Verified, t.RecordsErased = erasure.TaskFoundAgain, "", res.Records
		t.Evidence = append(t.Evidence, erasure.Evidence{Kind: "found_again", Value: plural(res.Records, "record")})
	default:
		c.applyToTask(t, req, res, now)
	}
}

// followUpDone records what a re-check or re-erasure that has just
// changed state means: a log leaf for an outcome, and for a person found
// again a re-erasure and a flag. It returns what the task's event should
// add (the leaf's index).
func (c *Coordinator) followUpDone(ctx context.Context, tx store.Tx, req *erasure.Request, t erasure.Task, res bus.Result, now time.Time) (map[string]any, error) {
	kind, after, _ := t.FollowUp()
	leaf := translog.RecheckEvent{Connector: t.Connector, After: erasure.FormatAge(after), At: now.UTC().Format(time.RFC3339)}
	switch {
	case kind == "recheck" && t.Status == erasure.TaskNotFound:
		leaf.Outcome = translog.RecheckClean
	case kind == "recheck" && t.Status == erasure.TaskFoundAgain:
		leaf.Outcome, leaf.Records = translog.RecheckFound, res.Records
	case kind == "recheck" && t.Status == erasure.TaskDead:
		leaf.Outcome, leaf.Note = translog.RecheckNotChecked, fmt.Sprintf("the look-up failed %d times", t.Attempt)
	case kind == "reerase" && t.Status.Done():
		leaf.Outcome, leaf.Records = translog.RecheckReerased, t.RecordsErased
		if t.RecordsUnknown {
			leaf.Records = -1
		}
	case kind == "reerase" && t.Status == erasure.TaskDead:
		return nil, c.flag(ctx, tx, req, t, fmt.Sprintf("the re-erasure of %s after the %s re-check gave up after %s: retry it once the system is fixed, or erase the person there by hand",
			t.Connector, erasure.AgeDay(after), tries(t.Attempt)), now)
	default:
		return nil, nil // failed and to be retried, or a job still running
	}
	idx, err := c.logRecheck(ctx, tx, *req, leaf, now)
	if err != nil {
		return nil, err
	}
	c.metrics.Recheck(t.Connector, metricOutcome(leaf.Outcome))
	extra := map[string]any{"after": leaf.After, "outcome": leaf.Outcome, "log_index": idx}
	switch leaf.Outcome {
	case translog.RecheckFound:
		c.log.Warn("re-check found an erased person again; erasing again", zap.String("request_id", req.ID),
			zap.String("connector", t.Connector), zap.String("after", leaf.After), zap.Int64("records", res.Records))
		re := erasure.Task{ID: erasure.NewID(), RequestID: req.ID, Connector: t.Connector, ConnectorType: t.ConnectorType,
			Phase: erasure.ReerasePhase(after), Status: erasure.TaskQueued, Attempt: 1, SearchedBy: t.SearchedBy, CreatedAt: now, UpdatedAt: now}
		if err := c.createTask(ctx, tx, *req, re, erasure.ActorCoordinator, now); err != nil {
			return nil, fmt.Errorf("re-erase: %w", err)
		}
		extra["reerase_task"] = re.ID
		return extra, c.flag(ctx, tx, req, t, fmt.Sprintf("%s held the person again at the %s re-check (%s): it is being erased again; find out how they came back",
			t.Connector, erasure.AgeDay(after), plural(res.Records, "record")), now)
	case translog.RecheckNotChecked:
		return extra, c.flag(ctx, tx, req, t, fmt.Sprintf("%s could not be re-checked at %s: %s; retry it once the system is fixed", t.Connector, erasure.AgeDay(after), leaf.Note), now)
	}
	return extra, nil
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func tries(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

func metricOutcome(leafOutcome string) string {
	if leafOutcome == translog.RecheckReerased {
		return "re_erased"
	}
	return leafOutcome
}

// logRecheck appends a re-check leaf naming req's certificate.
func (c *Coordinator) logRecheck(ctx context.Context, tx store.Tx, req erasure.Request, e translog.RecheckEvent, now time.Time) (int64, error) {
	rec, ok := c.certifier.(Recorder)
	if !ok {
		return -1, errors.New("re-checks need a certifier that records them in the transparency log")
	}
	cert, err := c.store.Certificate(ctx, req.ID)
	if err != nil {
		return -1, fmt.Errorf("re-check of request %s: its certificate: %w", req.ID, err)
	}
	e.CertificateID = cert.ID
	return rec.LogRecheck(ctx, tx, e, now)
}

// flag asks staff to look at req, with why (no personal data), and
// records the evidence the follow-up task gathered.
func (c *Coordinator) flag(ctx context.Context, tx store.Tx, req *erasure.Request, t erasure.Task, why string, now time.Time) error {
	req.Flag, req.FlaggedAt, req.UpdatedAt = why, now, now
	if err := tx.UpdateRequest(ctx, *req); err != nil {
		return err
	}
	_, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, t.ID, erasure.EventRequestFlagged, erasure.ActorCoordinator, why,
		map[string]any{"connector": t.Connector, "phase": t.Phase, "flag": why, "evidence": t.Evidence}, now))
	return err
}

// notChecked ends a follow-up that can no longer run because the
// request's identifiers were shredded first (by staff: retention waits
// for scheduled follow-ups).
func (c *Coordinator) notChecked(ctx context.Context, tx store.Tx, req *erasure.Request, t *erasure.Task, now time.Time) error {
	const why = "the identifiers were shredded before this follow-up could run"
	if err := c.finishNotApplicable(ctx, tx, *req, t, erasure.ActorScheduler, why, now); err != nil {
		return err
	}
	kind, after, _ := t.FollowUp()
	if kind != "recheck" {
		return c.flag(ctx, tx, req, *t, fmt.Sprintf("the re-erasure of %s could not run: %s", t.Connector, why), now)
	}
	leaf := translog.RecheckEvent{Connector: t.Connector, After: erasure.FormatAge(after), Outcome: translog.RecheckNotChecked,
		Note: why, At: now.UTC().Format(time.RFC3339)}
	if _, err := c.logRecheck(ctx, tx, *req, leaf, now); err != nil {
		return err
	}
	c.metrics.Recheck(t.Connector, translog.RecheckNotChecked)
	return nil
}

// ClearFlag takes a request off the staff's list once someone has looked
// into what a re-check found; reason says what they did.
func (c *Coordinator) ClearFlag(ctx context.Context, id, actor, reason string) (erasure.Request, error) {
	return c.lockedAction(ctx, id, actor, reason, "flag cleared", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		if req.Flag == "" {
			return erasure.Errorf(erasure.EConflict, "the request is not flagged")
		}
		was := req.Flag
		req.Flag, req.FlaggedAt, req.UpdatedAt = "", time.Time{}, now
		if err := tx.UpdateRequest(ctx, *req); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventFlagCleared, actor, reason, map[string]any{"flag": was}, now))
		return err
	})
}

// followUpsPending reports whether a request has follow-ups that have not
// run yet: shredding its identifiers would leave them unable to.
func followUpsPending(ctx context.Context, tx store.Tx, id string) (bool, error) {
	fs, err := tx.FollowUps(ctx, id)
	if err != nil {
		return false, err
	}
	for _, f := range fs {
		if f.Status == erasure.TaskScheduled || f.Status.Active() {
			return true, nil
		}
	}
	return false, nil
}

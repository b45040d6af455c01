package coordinator

import (
	"context"
	"slices"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

// lockedAction runs act on a request under its lock, with the reason
// checked, and logs it.
func (c *Coordinator) lockedAction(ctx context.Context, id, actor, reason, what string, act func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error) (erasure.Request, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return erasure.Request{}, err
	}
	var req erasure.Request
	err = c.store.InTx(ctx, func(tx store.Tx) error {
		req, err = tx.LockRequest(ctx, id)
		if err != nil {
			return err
		}
		return act(tx, &req, reason, c.clock())
	})
	if err != nil {
		return erasure.Request{}, err
	}
	c.log.Info(what, zap.String("request_id", id), zap.String("actor", actor))
	c.nudge()
	return req, nil
}

// Approve starts a request that waits for staff approval.
func (c *Coordinator) Approve(ctx context.Context, id, actor, reason string) (erasure.Request, error) {
	return c.lockedAction(ctx, id, actor, reason, "request approved", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		if req.Status != erasure.RequestPendingApproval {
			return erasure.Errorf(erasure.EConflict, "only a request pending approval can be approved; this one is %s", req.Status)
		}
		return c.start(ctx, tx, req, actor, reason, now)
	})
}

// Deny refuses a request before erasure starts (GDPR Art. 12(4): the
// person is told why, within a month). The reason is the one they are told.
func (c *Coordinator) Deny(ctx context.Context, id, actor, reason string) (erasure.Request, error) {
	return c.lockedAction(ctx, id, actor, reason, "request denied", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		switch req.Status {
		case erasure.RequestReceived, erasure.RequestPendingApproval:
		default:
			return erasure.Errorf(erasure.EConflict, "a %s request cannot be denied; cancel it instead (an unverified one expires by itself)", req.Status)
		}
		if _, err := tx.DeleteRequestOutbox(ctx, req.ID); err != nil {
			return err
		}
		if _, err := setStatus(ctx, tx, req, erasure.RequestDenied, actor, reason, now); err != nil {
			return err
		}
		return c.notice(ctx, tx, *req, bus.NoticeDenied, now)
	})
}

// Verified moves a portal request whose email was proven on: to
// pending_approval when staff must approve, else straight to in_progress.
// prove, when not nil, runs first under the request's lock (the portal
// checks the emailed code and counts the attempt there); when it reports
// false, what it wrote is committed and the request stays as it was.
// proven reports whether the request is verified now (or was before).
func (c *Coordinator) Verified(ctx context.Context, id string, needsApproval bool, prove func(ctx context.Context, tx store.Tx, req erasure.Request) (bool, error)) (req erasure.Request, proven bool, err error) {
	const actor = "portal"
	err = c.store.InTx(ctx, func(tx store.Tx) error {
		var err error
		proven = false
		req, err = tx.LockRequest(ctx, id)
		if err != nil {
			return err
		}
		if prove != nil {
			ok, err := prove(ctx, tx, req)
			if err != nil || !ok {
				return err
			}
		}
		proven = true
		if req.Status != erasure.RequestUnverified {
			return nil // verified before: nothing to do
		}
		now := c.clock()
		if needsApproval {
			_, err = setStatus(ctx, tx, &req, erasure.RequestPendingApproval, actor, "the email address was verified", now)
		} else {
			err = c.start(ctx, tx, &req, actor, "the email address was verified", now)
		}
		if err != nil {
			return err
		}
		return c.notice(ctx, tx, req, bus.NoticeReceived, now)
	})
	if err != nil {
		return erasure.Request{}, false, err
	}
	c.nudge()
	return req, proven, nil
}

// Extend pushes the deadline out once, as the law allows (GDPR: up to two
// further months, decided and told to the person within the first month;
// CCPA: up to 45 more days). The reason is the one the person is told.
func (c *Coordinator) Extend(ctx context.Context, id, actor, reason string, newDue time.Time) (erasure.Request, error) {
	return c.lockedAction(ctx, id, actor, reason, "deadline extended", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		if req.Status.Final() {
			return erasure.Errorf(erasure.EConflict, "the request is already %s", req.Status)
		}
		if !req.ExtendedAt.IsZero() {
			return erasure.Errorf(erasure.EConflict, "the deadline was already extended once; the law allows one extension")
		}
		if now.After(req.DueAt) {
			return erasure.Errorf(erasure.EConflict, "the deadline has passed: an extension must be decided before it")
		}
		newDue = erasure.Timestamp(newDue)
		limit := req.Jurisdiction.MaxExtension(req.DueAt)
		if !newDue.After(req.DueAt) || newDue.After(limit) {
			return erasure.Invalid("due_at", "must be after the current deadline (%s) and no later than %s",
				req.DueAt.Format(time.DateOnly), limit.Format(time.DateOnly))
		}
		from := req.DueAt
		req.DueAt, req.ExtendedAt, req.UpdatedAt = newDue, now, now
		if err := tx.UpdateRequest(ctx, *req); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventExtended, actor, reason,
			map[string]any{"from": from, "to": newDue}, now)); err != nil {
			return err
		}
		return c.notice(ctx, tx, *req, bus.NoticeExtended, now)
	})
}

// Exempt keeps one system's data on a legal basis (GDPR Art. 17(3), CCPA
// § 1798.105(d)): its task ends exempted, and the certificate says so.
func (c *Coordinator) Exempt(ctx context.Context, id, connector, basis, actor, reason string) (erasure.Request, error) {
	certified := false
	req, err := c.lockedAction(ctx, id, actor, reason, "task exempted", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		if req.Status.Final() {
			return erasure.Errorf(erasure.EConflict, "the request is already %s", req.Status)
		}
		if _, ok := req.Jurisdiction.ExemptionBasis(basis); !ok {
			return erasure.Invalid("basis", "not an exemption under %s; one of %v", req.Jurisdiction, req.Jurisdiction.ExemptionCodes())
		}
		tasks, err := tx.Tasks(ctx, req.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(tasks, func(t erasure.Task) bool { return t.Connector == connector })
		if i < 0 {
			return erasure.Errorf(erasure.ENotFound, "the request has no task for connector %q", connector)
		}
		t := tasks[i]
		if t.Status.Done() {
			return erasure.Errorf(erasure.EConflict, "the task is already %s", t.Status)
		}
		t.Status, t.ExemptionBasis, t.UpdatedAt, t.CompletedAt = erasure.TaskExempted, basis, now, now
		t.NextAttemptAt, t.NextPollAt, t.LastError = time.Time{}, time.Time{}, ""
		if err := tx.UpdateTask(ctx, t); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, t.ID, erasure.EventTaskExempted, actor, reason,
			map[string]any{"connector": connector, "basis": basis}, now)); err != nil {
			return err
		}
		certified, err = c.advanceRequest(ctx, tx, req, now)
		return err
	})
	if certified {
		c.metrics.CertificateIssued()
	}
	return req, err
}

package coordinator

import (
	"context"
	"strings"
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
		if err := c.start(ctx, tx, req, actor, reason, now); err != nil {
			return err
		}
		return c.notice(ctx, tx, *req, bus.NoticeApproved, now)
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
		kind := bus.NoticeReceived
		if needsApproval {
			kind = bus.NoticeAwaitingApproval
		}
		return c.notice(ctx, tx, req, kind, now)
	})
	if err != nil {
		return erasure.Request{}, false, err
	}
	c.nudge()
	return req, proven, nil
}

// Extend pushes the deadline out once, as the law allows (GDPR: up to two
// further months, decided and told to the person within the first month;
// CCPA: up to 45 more days). The reason is the one the person is told;
// category is the kind of reason (erasure.ExtensionCategories), which the
// certificate records beside both deadlines.
func (c *Coordinator) Extend(ctx context.Context, id, actor, reason, category string, newDue time.Time) (erasure.Request, error) {
	return c.lockedAction(ctx, id, actor, reason, "deadline extended", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		if _, ok := req.Jurisdiction.ExtensionCategory(category); !ok {
			return erasure.Invalid("category", "the kind of reason for the extension under %s: one of %v", strings.ToUpper(string(req.Jurisdiction)), req.Jurisdiction.ExtensionCodes())
		}
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
		req.OriginalDueAt, req.ExtensionCategory = from, category
		req.DueAt, req.ExtendedAt, req.UpdatedAt = newDue, now, now
		if err := tx.UpdateRequest(ctx, *req); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventExtended, actor, reason,
			map[string]any{"from": from, "to": newDue, "category": category}, now)); err != nil {
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
		i := pick(tasks, connector)
		if i < 0 {
			return erasure.Errorf(erasure.ENotFound, "the request has no task for connector %q", connector)
		}
		t := tasks[i]
		if t.Status.Done() {
			return erasure.Errorf(erasure.EConflict, "the task is already %s", t.Status)
		}
		if t.Phase == erasure.PhaseResolve {
			return erasure.Errorf(erasure.EConflict, "the person is still being looked up; exempt the system once its erasure task exists")
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

// maxAdded bounds one AddIdentifiers call.
const maxAdded = 8

// AddIdentifiers adds identifiers staff found for the person (a customer
// number from a ticket, an app user id from the app's admin page), each
// of a kind the request does not have yet. They are encrypted with the
// rest of the subject and recorded as from "staff:<actor>"; resolvers that
// look up by them are asked again, and tasks that needed them are sent.
func (c *Coordinator) AddIdentifiers(ctx context.Context, id, actor, reason string, ids map[erasure.Kind]string) (erasure.Request, error) {
	if len(ids) == 0 || len(ids) > maxAdded {
		return erasure.Request{}, erasure.Invalid("identifiers", "between 1 and %d identifiers, by kind: {\"user_ids.app\": \"…\"}", maxAdded)
	}
	clean := map[erasure.Kind]string{}
	for k, v := range ids {
		kind, err := erasure.ParseKind(string(k))
		if err != nil {
			return erasure.Request{}, erasure.Invalid("identifiers", "%s", erasure.ErrorMessage(err))
		}
		n, err := erasure.NormalizeValue(kind, v)
		if err != nil {
			return erasure.Request{}, erasure.Invalid("identifiers."+string(kind), "%s", erasure.ErrorMessage(err))
		}
		clean[kind] = n
	}
	certified := false
	req, err := c.lockedAction(ctx, id, actor, reason, "identifiers added", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		switch {
		case req.Status.Final():
			return erasure.Errorf(erasure.EConflict, "the request is already %s", req.Status)
		case !req.ShreddedAt.IsZero():
			return erasure.Errorf(erasure.EConflict, "the request's identifiers were shredded")
		case req.Status == erasure.RequestUnverified || req.Status == erasure.RequestPendingApproval:
			return erasure.Errorf(erasure.EConflict, "a %s request has not started; add identifiers once it is in progress", req.Status)
		}
		var added []erasure.Kind
		for k, v := range clean {
			if req.Subject.Has(k) {
				return erasure.Errorf(erasure.EConflict, "the request already has %s (from %s); Lethe holds one identifier of each kind", k, req.Sources[k])
			}
			req.Subject = req.Subject.With(k, v)
			if req.Sources == nil {
				req.Sources = erasure.Sources{}
			}
			req.Sources[k] = "staff:" + actor
			added = append(added, k)
		}
		erasure.SortKinds(added)
		req.UpdatedAt = now
		if err := c.storeIdentifiers(ctx, tx, *req, added, erasure.EventIdentifiersAdded, actor, reason, "staff:"+actor, now); err != nil {
			return err
		}
		var err error
		certified, err = c.advanceRequest(ctx, tx, req, now)
		return err
	})
	if certified {
		c.metrics.CertificateIssued()
	}
	return req, err
}

// NotApplicable declares that a system holds nothing of this person and
// need not be searched (a shop database for someone who never bought
// anything, a look-up that found two records): its task ends
// not_applicable, and the certificate prints the reason. It is for tasks
// that wait for a person — needing an identifier, dead — or that wait to
// run; a finished task stays as it is.
func (c *Coordinator) NotApplicable(ctx context.Context, id, connector, actor, reason string) (erasure.Request, error) {
	certified := false
	req, err := c.lockedAction(ctx, id, actor, reason, "task not applicable", func(tx store.Tx, req *erasure.Request, reason string, now time.Time) error {
		if req.Status.Final() {
			return erasure.Errorf(erasure.EConflict, "the request is already %s", req.Status)
		}
		tasks, err := tx.Tasks(ctx, req.ID)
		if err != nil {
			return err
		}
		i := pick(tasks, connector)
		if i < 0 {
			return erasure.Errorf(erasure.ENotFound, "the request has no task for connector %q", connector)
		}
		t := tasks[i]
		switch t.Status {
		case erasure.TaskNeedsIdentifier, erasure.TaskDead, erasure.TaskFailed, erasure.TaskWaiting:
		default:
			return erasure.Errorf(erasure.EConflict, "a %s task cannot be declared not applicable: only one that waits for an identifier, failed or gave up", t.Status)
		}
		if err := c.finishNotApplicable(ctx, tx, *req, &t, actor, reason, now); err != nil {
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

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

const maxReason = 2000

func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", erasure.Invalid("reason", "is required: say why, for the audit trail")
	case len(reason) > maxReason:
		return "", erasure.Invalid("reason", "at most %d characters", maxReason)
	}
	return reason, nil
}

// Cancel stops a request that is not final. Messages not yet published are
// dropped; a connector already at work may still finish, and what it
// reports is recorded.
func (c *Coordinator) Cancel(ctx context.Context, id, actor, reason string) (erasure.Request, error) {
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
		if req.Status.Final() {
			return erasure.Errorf(erasure.EConflict, "the request is already %s", req.Status)
		}
		if _, err := tx.DeleteRequestOutbox(ctx, id); err != nil {
			return err
		}
		_, err = setStatus(ctx, tx, &req, erasure.RequestCancelled, actor, reason, c.clock())
		return err
	})
	if err != nil {
		return erasure.Request{}, err
	}
	c.log.Info("request cancelled", zap.String("request_id", id), zap.String("actor", actor))
	return req, nil
}

// RetryTask gives a dead task a new attempt, after a person has fixed what
// made it fail. On a completed request it retries the system's dead
// follow-up (a re-check or re-erasure that gave up).
func (c *Coordinator) RetryTask(ctx context.Context, requestID, connector, actor, reason string) (erasure.Task, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return erasure.Task{}, err
	}
	var task erasure.Task
	err = c.store.InTx(ctx, func(tx store.Tx) error {
		req, err := tx.LockRequest(ctx, requestID)
		if err != nil {
			return err
		}
		if req.Status.Final() {
			task, err = c.retryFollowUp(ctx, tx, req, connector, actor, reason)
			return err
		}
		tasks, err := tx.Tasks(ctx, requestID)
		if err != nil {
			return err
		}
		i := pick(tasks, connector)
		if i < 0 {
			return erasure.Errorf(erasure.ENotFound, "the request has no task for connector %q", connector)
		}
		t := &tasks[i]
		if t.Status != erasure.TaskDead {
			return erasure.Errorf(erasure.EConflict, "only a task that gave up can be retried; this one is %s", t.Status)
		}
		now := c.clock()
		t.Attempt++
		t.Status, t.UpdatedAt, t.LastError = erasure.TaskQueued, now, ""
		if err := send(ctx, tx, req, *t, kindFor(*t), erasure.EventTaskRetry, actor, reason, now); err != nil {
			return err
		}
		if next := erasure.Aggregate(tasks); next != req.Status {
			if _, err := setStatus(ctx, tx, &req, next, actor, reason, now); err != nil {
				return err
			}
		}
		task = *t
		return nil
	})
	if err != nil {
		return erasure.Task{}, err
	}
	c.nudge()
	return task, nil
}

// retryFollowUp is RetryTask on a final request: the connector's dead
// follow-up, while the identifiers to run it by are still there.
func (c *Coordinator) retryFollowUp(ctx context.Context, tx store.Tx, req erasure.Request, connector, actor, reason string) (erasure.Task, error) {
	fs, err := tx.FollowUps(ctx, req.ID)
	if err != nil {
		return erasure.Task{}, err
	}
	var dead *erasure.Task
	for i := range fs {
		if fs[i].Connector == connector && fs[i].Status == erasure.TaskDead {
			dead = &fs[i]
		}
	}
	switch {
	case dead == nil:
		return erasure.Task{}, erasure.Errorf(erasure.EConflict, "the request is already %s, and %q has no re-check or re-erasure that gave up", req.Status, connector)
	case !req.ShreddedAt.IsZero():
		return erasure.Task{}, erasure.Errorf(erasure.EConflict, "the request's identifiers are shredded: %s cannot be searched again by Lethe", connector)
	}
	now := c.clock()
	dead.Attempt++
	dead.Status, dead.UpdatedAt, dead.LastError = erasure.TaskQueued, now, ""
	if err := send(ctx, tx, req, *dead, kindFor(*dead), erasure.EventTaskRetry, actor, reason, now); err != nil {
		return erasure.Task{}, err
	}
	return *dead, nil
}

// Completion is a person's report that they finished a task by hand.
type Completion struct {
	// Outcome is erased or not_found.
	Outcome  string
	Records  int64
	Evidence []erasure.Evidence
	// Reason says what was done; it goes into the event log.
	Reason string
}

const maxEvidence = 20

// CompleteTask records that a person finished a task by hand (a manual
// connector's task, or any task that cannot finish on its own), with their
// evidence. The person is the actor of the event; the request moves on and
// may complete.
func (c *Coordinator) CompleteTask(ctx context.Context, requestID, connector, actor string, in Completion) (erasure.Task, error) {
	reason, err := checkReason(in.Reason)
	if err != nil {
		return erasure.Task{}, err
	}
	if in.Outcome != bus.ResultErased && in.Outcome != bus.ResultNotFound {
		return erasure.Task{}, erasure.Invalid("outcome", "must be erased or not_found")
	}
	if in.Records < 0 || (in.Outcome == bus.ResultErased && in.Records == 0) {
		return erasure.Task{}, erasure.Invalid("records", "must be positive when records were erased")
	}
	if len(in.Evidence) > maxEvidence {
		return erasure.Task{}, erasure.Invalid("evidence", "at most %d items", maxEvidence)
	}
	for i, ev := range in.Evidence {
		if strings.TrimSpace(ev.Kind) == "" || len(ev.Kind) > 100 || len(ev.Value) > 1000 {
			return erasure.Task{}, erasure.Invalid(fmt.Sprintf("evidence[%d]", i), "needs a kind (at most 100 characters) and a value (at most 1000)")
		}
	}
	var task erasure.Task
	var certified bool
	err = c.store.InTx(ctx, func(tx store.Tx) error {
		req, err := tx.LockRequest(ctx, requestID)
		if err != nil {
			return err
		}
		if req.Status.Final() {
			task, err = c.retryFollowUp(ctx, tx, req, connector, actor, reason)
			return err
		}
		tasks, err := tx.Tasks(ctx, requestID)
		if err != nil {
			return err
		}
		i := pick(tasks, connector)
		if i < 0 {
			return erasure.Errorf(erasure.ENotFound, "the request has no task for connector %q", connector)
		}
		task = tasks[i]
		if task.Status.Done() {
			return erasure.Errorf(erasure.EConflict, "the task is already %s", task.Status)
		}
		if task.Phase == erasure.PhaseResolve {
			return erasure.Errorf(erasure.EConflict, "the system is still looking the person up; complete its erasure once that task exists")
		}
		now := c.clock()
		evidence := []erasure.Evidence{{Kind: "completed_by", Value: actor}}
		for _, ev := range in.Evidence {
			// Staff may paste what a system showed them: keep identifiers out.
			evidence = append(evidence, erasure.Evidence{Kind: req.Subject.Redact(ev.Kind), Value: req.Subject.Redact(ev.Value)})
		}
		c.applyToTask(&task, req, bus.Result{Status: in.Outcome, Records: in.Records, Evidence: evidence}, now)
		task.LastError = ""
		if err := tx.UpdateTask(ctx, task); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, task.ID, erasure.EventTaskResult, actor, reason,
			map[string]any{"connector": task.Connector, "kind": "manual", "status": task.Status, "records": in.Records, "evidence": evidence}, now)); err != nil {
			return err
		}
		certified, err = c.advanceRequest(ctx, tx, &req, now)
		return err
	})
	if err != nil {
		return erasure.Task{}, err
	}
	if certified {
		c.metrics.CertificateIssued()
	}
	c.log.Info("task completed by hand", zap.String("request_id", requestID), zap.String("connector", connector), zap.String("actor", actor))
	return task, nil
}

// CallbackTask finds the task a callback about job jobRef of connector is
// for: the task waiting on it, or the one whose earlier attempt it was
// (its JobRef names a newer job: Superseded). No task having recorded the
// job is EUnavailable, to be sent again:
// the vendor (or a processor clicking its link) can come back before the
// worker's report that the job started is applied, and a callback taken
// then as "nothing waits for this" would be lost, the task waiting for it
// for ever.
func (c *Coordinator) CallbackTask(ctx context.Context, connector, jobRef string) (erasure.Task, error) {
	t, err := c.store.TaskByJobRef(ctx, connector, jobRef)
	if errors.Is(err, store.ErrNotFound) {
		return t, erasure.Errorf(erasure.EUnavailable, "no task has recorded this job yet (its start may still be on its way): send the callback again shortly")
	}
	return t, err
}

// Superseded reports whether a callback about job jobRef is for an
// earlier attempt of task t (from CallbackTask) than the one waiting now:
// what it says is not recorded.
func Superseded(t erasure.Task, jobRef string) bool { return t.JobRef != jobRef }

// ApplyCallback records what a vendor reported by calling back about job
// jobRef of task t (see CallbackTask; its signature already checked by
// the connector). A callback about an earlier attempt's job is stale:
// applyResult compares the job with the task in its transaction.
func (c *Coordinator) ApplyCallback(ctx context.Context, t erasure.Task, jobRef, status string, records int64, recordsUnknown bool, evidence []erasure.Evidence) (Applied, error) {
	connector := t.Connector
	return c.applyResult(ctx, bus.Result{V: bus.Version, Kind: bus.KindPoll, TaskID: t.ID, RequestID: t.RequestID, Connector: connector,
		Attempt: t.Attempt, Status: status, Records: records, RecordsUnknown: recordsUnknown, JobRef: jobRef, Evidence: evidence}, jobRef)
}

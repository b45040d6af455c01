package coordinator

import (
	"context"
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
// made it fail.
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
			return erasure.Errorf(erasure.EConflict, "the request is already %s", req.Status)
		}
		tasks, err := tx.Tasks(ctx, requestID)
		if err != nil {
			return err
		}
		i := -1
		for j, t := range tasks {
			if t.Connector == connector {
				i = j
			}
		}
		if i < 0 {
			return erasure.Errorf(erasure.ENotFound, "the request has no task for connector %q", connector)
		}
		t := &tasks[i]
		if t.Status != erasure.TaskDead {
			return erasure.Errorf(erasure.EConflict, "only a dead task can be retried; this one is %s", t.Status)
		}
		now := c.clock()
		t.Attempt++
		t.Status, t.UpdatedAt, t.LastError = erasure.TaskQueued, now, ""
		if err := send(ctx, tx, req, *t, bus.KindErase, erasure.EventTaskRetry, actor, reason, now); err != nil {
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

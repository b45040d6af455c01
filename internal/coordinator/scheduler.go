package coordinator

import (
	"context"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

// RunScheduler sends due retries and polls until ctx ends.
func (c *Coordinator) RunScheduler(ctx context.Context) error {
	t := time.NewTicker(c.cfg.SchedulerInterval)
	defer t.Stop()
	for {
		if _, err := c.ScheduleDue(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("scheduler: failed; will retry", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ScheduleDue queues every failed task whose retry time has come as a new
// attempt, and a poll for every running job whose poll time has come. It
// returns how many messages it queued. Replicas may run it at once: each
// task is re-checked under its request's lock.
func (c *Coordinator) ScheduleDue(ctx context.Context) (int, error) {
	now := c.clock()
	due, err := c.store.DueTasks(ctx, now, now.Add(-c.cfg.RedispatchAfter), 200)
	if err != nil {
		return 0, err
	}
	queued := 0
	for _, d := range due {
		ok, err := c.scheduleOne(ctx, d)
		if err != nil {
			return queued, err
		}
		if ok {
			queued++
		}
	}
	if queued > 0 {
		c.nudge()
	}
	return queued, nil
}

func (c *Coordinator) scheduleOne(ctx context.Context, d store.DueTask) (bool, error) {
	queued := false
	err := c.store.InTx(ctx, func(tx store.Tx) error {
		queued = false
		req, err := tx.LockRequest(ctx, d.RequestID)
		if err != nil {
			return err
		}
		t, err := tx.Task(ctx, d.TaskID)
		if err != nil {
			return err
		}
		now := c.clock()
		_, _, followUp := t.FollowUp()
		if req.Status.Final() && !followUp {
			// Cancelled: stop retrying and polling, keep the task as it is.
			t.NextAttemptAt, t.NextPollAt = time.Time{}, time.Time{}
			return tx.UpdateTask(ctx, t)
		}
		if followUp && !req.ShreddedAt.IsZero() && (t.Status == erasure.TaskScheduled || t.Status.Active()) {
			return c.notChecked(ctx, tx, &req, &t, now)
		}
		switch {
		case t.Status == erasure.TaskScheduled && !t.NextAttemptAt.After(now):
			t.Attempt++
			t.Status, t.NextAttemptAt, t.UpdatedAt = erasure.TaskQueued, time.Time{}, now
			queued = true
			_, after, _ := t.FollowUp()
			return send(ctx, tx, req, t, kindFor(t), erasure.EventTaskReleased, erasure.ActorScheduler,
				"the re-check at "+erasure.AgeDay(after)+" is due", now)
		case t.Status == erasure.TaskFailed && !t.NextAttemptAt.After(now):
			t.Attempt++
			t.Status, t.NextAttemptAt, t.UpdatedAt = erasure.TaskQueued, time.Time{}, now
			queued = true
			return send(ctx, tx, req, t, kindFor(t), erasure.EventTaskRetry, erasure.ActorScheduler, "", now)
		case t.Status == erasure.TaskRunning && !t.NextPollAt.After(now):
			// Polls are not events: a job may be polled for days. The
			// poll's result is recorded when it says something new.
			t.NextPollAt = now.Add(c.cfg.PollLease)
			queued = true
			return send(ctx, tx, req, t, bus.KindPoll, "", "", "", now)
		case t.Status == erasure.TaskDispatched && !t.UpdatedAt.After(now.Add(-c.cfg.RedispatchAfter)):
			// No result for a long time: the message may be lost (a NATS
			// store wiped or restored). Sending it again is safe.
			t.UpdatedAt = now
			queued = true
			return send(ctx, tx, req, t, kindFor(t), erasure.EventTaskRedispatch, erasure.ActorScheduler,
				"no result within "+c.cfg.RedispatchAfter.String(), now)
		}
		return nil // another replica got there first
	})
	return queued, err
}

// send stores t, records an event of type eventType (none when empty) and
// queues a message of kind for the task's connector.
func send(ctx context.Context, tx store.Tx, req erasure.Request, t erasure.Task, kind, eventType, actor, reason string, now time.Time) error {
	if err := tx.UpdateTask(ctx, t); err != nil {
		return err
	}
	if eventType != "" {
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, t.ID, eventType, actor, reason,
			map[string]any{"connector": t.Connector, "attempt": t.Attempt}, now)); err != nil {
			return err
		}
	}
	m, err := taskMessage(req, t, kind, now)
	if err != nil {
		return err
	}
	return tx.Enqueue(ctx, m)
}

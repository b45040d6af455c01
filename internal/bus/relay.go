package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/failpoint"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Relay publishes committed outbox messages to JetStream. Each message goes
// out with Nats-Msg-Id set to its MsgID, and is deleted from the outbox in
// the same transaction that claimed it, after JetStream acknowledged it: a
// crash at any point either leaves the message to publish again (JetStream
// drops the duplicate) or has published and recorded it.
type Relay struct {
	Store store.Store
	JS    jetstream.JetStream
	Log   *zap.Logger
	Clock erasure.Clock
	Crash *failpoint.Set
	// Batch is how many messages one transaction publishes (default 100).
	Batch int
	// Interval is how often the outbox is checked when nobody nudges
	// (default 500ms).
	Interval time.Duration
	// Published, if set, is called with the number of messages published.
	Published func(n int)

	nudge chan struct{}
}

// NewRelay returns a relay with defaults filled in.
func NewRelay(r Relay) *Relay {
	if r.Batch <= 0 {
		r.Batch = 100
	}
	if r.Interval <= 0 {
		r.Interval = 500 * time.Millisecond
	}
	if r.Clock == nil {
		r.Clock = erasure.SystemClock
	}
	r.nudge = make(chan struct{}, 1)
	return &r
}

// Nudge wakes the relay after a commit so messages go out at once.
func (r *Relay) Nudge() {
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		n, err := r.Flush(ctx)
		if err != nil && ctx.Err() == nil {
			r.Log.Warn("outbox relay: publish failed; will retry", zap.Error(err))
		}
		if err == nil && n == r.Batch {
			continue // more waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.nudge:
		case <-t.C:
		}
	}
}

// Flush publishes one batch and returns how many messages went out.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	published := 0
	err := r.Store.InTx(ctx, func(tx store.Tx) error {
		published = 0
		msgs, err := tx.ClaimOutbox(ctx, r.Batch)
		if err != nil || len(msgs) == 0 {
			return err
		}
		reqs, err := lockRequests(ctx, tx, msgs)
		if err != nil {
			return err
		}
		out := r.hydrate(msgs, reqs)
		r.Crash.Hit("relay.before_publish")
		if err := r.publish(ctx, out); err != nil {
			return err
		}
		r.Crash.Hit("relay.after_publish")
		ids := make([]int64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if err := tx.DeleteOutbox(ctx, ids); err != nil {
			return err
		}
		if err := r.markDispatched(ctx, tx, out); err != nil {
			return err
		}
		published = len(out)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox relay: %w", err)
	}
	if published > 0 && r.Published != nil {
		r.Published(published)
	}
	return published, nil
}

// lockRequests locks, in id order (so two relays never wait on each other
// in a cycle), the requests whose tasks the messages carry.
func lockRequests(ctx context.Context, tx store.Tx, msgs []store.OutboxMessage) (map[string]erasure.Request, error) {
	var ids []string
	for _, m := range msgs {
		if m.TaskID != "" && !slices.Contains(ids, m.RequestID) {
			ids = append(ids, m.RequestID)
		}
	}
	slices.Sort(ids)
	reqs := make(map[string]erasure.Request, len(ids))
	for _, id := range ids {
		req, err := tx.LockRequest(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // purged: its messages go nowhere
		}
		if err != nil {
			return nil, err
		}
		reqs[id] = req
	}
	return reqs, nil
}

// hydrate puts the subject's identifiers into task messages. The outbox
// holds task messages without them, so the database never holds
// identifiers outside the request's encrypted envelope. Task messages
// whose request is gone, shredded or already final (cancelled while the
// message waited) are dropped, except follow-ups (re-checks and
// re-erasures), which are for completed requests.
func (r *Relay) hydrate(msgs []store.OutboxMessage, reqs map[string]erasure.Request) []store.OutboxMessage {
	out := make([]store.OutboxMessage, 0, len(msgs))
	for _, m := range msgs {
		if m.TaskID == "" {
			out = append(out, m)
			continue
		}
		req, ok := reqs[m.RequestID]
		var t Task
		if !ok || !req.ShreddedAt.IsZero() || json.Unmarshal(m.Payload, &t) != nil || (req.Status.Final() && !t.FollowUp) {
			r.Log.Warn("outbox relay: dropped a task message whose request is gone, final, shredded or unreadable",
				zap.String("request_id", m.RequestID), zap.String("task_id", m.TaskID))
			continue
		}
		t.Subject = req.Subject
		payload, err := json.Marshal(t)
		if err != nil {
			continue
		}
		m.Payload = payload
		out = append(out, m)
	}
	return out
}

func (r *Relay) publish(ctx context.Context, msgs []store.OutboxMessage) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := r.JS.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Payload}, jetstream.WithMsgID(m.MsgID))
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		futures = append(futures, f)
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-timeout.C:
			return fmt.Errorf("publish: no acknowledgement from JetStream within 10s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// markDispatched moves the tasks whose messages went out from queued to
// dispatched. The requests are already locked (lockRequests).
func (r *Relay) markDispatched(ctx context.Context, tx store.Tx, msgs []store.OutboxMessage) error {
	byRequest := map[string]map[string]int{} // request → task → attempt
	for _, m := range msgs {
		if m.TaskID == "" {
			continue
		}
		if byRequest[m.RequestID] == nil {
			byRequest[m.RequestID] = map[string]int{}
		}
		byRequest[m.RequestID][m.TaskID] = m.Attempt
	}
	reqs := make([]string, 0, len(byRequest))
	for id := range byRequest {
		reqs = append(reqs, id)
	}
	slices.Sort(reqs)
	now := r.Clock()
	for _, reqID := range reqs {
		tasks, err := tx.Tasks(ctx, reqID)
		if err != nil {
			return err
		}
		if len(byRequest[reqID]) > countIn(tasks, byRequest[reqID]) {
			// A follow-up of a completed request (asked for only then:
			// the relay is on every task's path).
			more, err := tx.FollowUps(ctx, reqID)
			if err != nil {
				return err
			}
			tasks = append(tasks, more...)
		}
		for _, t := range tasks {
			attempt, ok := byRequest[reqID][t.ID]
			if !ok || t.Status != erasure.TaskQueued || t.Attempt != attempt {
				continue // already reported on, or a poll message
			}
			t.Status, t.UpdatedAt = erasure.TaskDispatched, now
			if err := tx.UpdateTask(ctx, t); err != nil {
				return err
			}
			ev := erasure.NewEvent(reqID, t.ID, erasure.EventTaskDispatched, erasure.ActorRelay, "",
				map[string]any{"connector": t.Connector, "attempt": t.Attempt}, now)
			if _, err := tx.AppendEvent(ctx, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// countIn counts the tasks whose ids are in ids.
func countIn(tasks []erasure.Task, ids map[string]int) int {
	n := 0
	for _, t := range tasks {
		if _, ok := ids[t.ID]; ok {
			n++
		}
	}
	return n
}

package bus

import (
	"context"
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
		r.Crash.Hit("relay.before_publish")
		if err := r.publish(ctx, msgs); err != nil {
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
		if err := r.markDispatched(ctx, tx, msgs); err != nil {
			return err
		}
		published = len(msgs)
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
// dispatched, request by request in id order so that two relays never lock
// the same requests in opposite orders.
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
		if _, err := tx.LockRequest(ctx, reqID); err != nil {
			return err
		}
		tasks, err := tx.Tasks(ctx, reqID)
		if err != nil {
			return err
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

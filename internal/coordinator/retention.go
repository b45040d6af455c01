package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

var finalStatuses = []erasure.RequestStatus{
	erasure.RequestCompleted, erasure.RequestCompletedWithExemptions, erasure.RequestDenied, erasure.RequestCancelled,
}

// Shred destroys a final request's data key at once ("shred now"): its
// identifiers become unrecoverable; the request, its events and its
// certificate stay.
func (c *Coordinator) Shred(ctx context.Context, id, actor, reason string) (erasure.Request, error) {
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
		if !req.Status.Final() {
			return erasure.Errorf(erasure.EConflict, "a %s request cannot be shredded: its identifiers are still needed", req.Status)
		}
		if !req.ShreddedAt.IsZero() {
			return erasure.Errorf(erasure.EConflict, "the request was already shredded")
		}
		return c.shred(ctx, tx, &req, actor, reason)
	})
	if err != nil {
		return erasure.Request{}, err
	}
	c.log.Info("request shredded", zap.String("request_id", id), zap.String("actor", actor))
	return req, nil
}

func (c *Coordinator) shred(ctx context.Context, tx store.Tx, req *erasure.Request, actor, reason string) error {
	now := c.clock()
	if err := tx.ShredRequest(ctx, req.ID, now); err != nil {
		return err
	}
	if _, err := tx.DeleteRequestOutbox(ctx, req.ID); err != nil {
		return err
	}
	req.Subject, req.CommitmentNonce, req.ShreddedAt = erasure.Subject{}, nil, now
	_, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventShredded, actor, reason, nil, now))
	return err
}

// Housekeeping is what one sweep did.
type Housekeeping struct {
	Shredded, Expired, Purged, Rewrapped int
	// Throttles is how many idle failure counters were forgotten.
	Throttles int64
}

// Housekeep runs one retention sweep: shred the identifiers of requests
// final for longer than the grace period, expire unverified requests,
// purge requests past the retention period, re-wrap data keys still under
// an older key-encryption key, and forget failure counters idle for
// store.ThrottleIdle. Replicas may run it at once: each request is
// re-checked under its lock.
func (c *Coordinator) Housekeep(ctx context.Context) (Housekeeping, error) {
	var h Housekeeping
	now := c.clock()
	r := c.cfg.Retention
	due, err := c.store.Requests(ctx, store.RequestFilter{Statuses: finalStatuses, CompletedBefore: now.Add(-r.ShredAfter), Unshredded: true, Limit: 200})
	if err != nil {
		return h, err
	}
	for _, q := range due {
		ok, err := c.sweepOne(ctx, q.ID, func(tx store.Tx, req *erasure.Request) (bool, error) {
			if !req.Status.Final() || !req.ShreddedAt.IsZero() || req.CompletedAt.After(now.Add(-r.ShredAfter)) {
				return false, nil
			}
			if pending, err := followUpsPending(ctx, tx, req.ID); err != nil || pending {
				return false, err // a re-check or re-erasure still needs the identifiers
			}
			return true, c.shred(ctx, tx, req, erasure.ActorRetention, "grace period of "+r.ShredAfter.String()+" after the request ended")
		})
		if err != nil {
			return h, err
		}
		if ok {
			h.Shredded++
		}
	}
	unverified, err := c.store.Requests(ctx, store.RequestFilter{Statuses: []erasure.RequestStatus{erasure.RequestUnverified}, ReceivedTo: now.Add(-r.UnverifiedAfter), Limit: 200})
	if err != nil {
		return h, err
	}
	for _, q := range unverified {
		ok, err := c.sweepOne(ctx, q.ID, func(tx store.Tx, req *erasure.Request) (bool, error) {
			if req.Status != erasure.RequestUnverified {
				return false, nil
			}
			if _, err := setStatus(ctx, tx, req, erasure.RequestCancelled, erasure.ActorRetention, "the email address was not verified within "+r.UnverifiedAfter.String(), now); err != nil {
				return false, err
			}
			return true, c.shred(ctx, tx, req, erasure.ActorRetention, "expired unverified request")
		})
		if err != nil {
			return h, err
		}
		if ok {
			h.Expired++
		}
	}
	old, err := c.store.Requests(ctx, store.RequestFilter{Statuses: finalStatuses, CompletedBefore: now.Add(-r.KeepRequests), Limit: 200})
	if err != nil {
		return h, err
	}
	for _, q := range old {
		ok, err := c.sweepOne(ctx, q.ID, func(tx store.Tx, req *erasure.Request) (bool, error) {
			if !req.Status.Final() || req.CompletedAt.After(now.Add(-r.KeepRequests)) {
				return false, nil
			}
			p := store.Purge{RequestID: req.ID, Status: req.Status, Jurisdiction: req.Jurisdiction, ReceivedAt: req.ReceivedAt,
				DueAt: req.DueAt, CompletedAt: req.CompletedAt, LogIndex: -1, PurgedAt: now}
			if cert, err := c.store.Certificate(ctx, req.ID); err == nil {
				p.CertificateID, p.LogIndex = cert.ID, cert.LogIndex
			} else if !errors.Is(err, store.ErrNotFound) {
				return false, err
			}
			return true, tx.PurgeRequest(ctx, p)
		})
		if err != nil {
			return h, err
		}
		if ok {
			h.Purged++
		}
	}
	if h.Rewrapped, _, err = c.store.RewrapDataKeys(ctx, 200); err != nil {
		return h, fmt.Errorf("rewrap: %w", err)
	}
	if h.Throttles, err = c.store.DeleteThrottles(ctx, now.Add(-store.ThrottleIdle)); err != nil {
		return h, fmt.Errorf("throttles: %w", err)
	}
	if h != (Housekeeping{}) {
		c.log.Info("retention sweep", zap.Int("shredded", h.Shredded), zap.Int("expired", h.Expired),
			zap.Int("purged", h.Purged), zap.Int("rewrapped", h.Rewrapped), zap.Int64("throttles", h.Throttles))
	}
	return h, nil
}

// sweepOne locks a request and lets act decide and do; act reports whether
// it did anything. A request gone meanwhile is skipped.
func (c *Coordinator) sweepOne(ctx context.Context, id string, act func(store.Tx, *erasure.Request) (bool, error)) (bool, error) {
	did := false
	err := c.store.InTx(ctx, func(tx store.Tx) error {
		did = false
		req, err := tx.LockRequest(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		did, err = act(tx, &req)
		return err
	})
	return did, err
}

// RunHousekeeping sweeps at the configured interval until ctx ends.
func (c *Coordinator) RunHousekeeping(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Retention.SweepInterval)
	defer t.Stop()
	for {
		if _, err := c.Housekeep(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("retention sweep failed; will retry", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

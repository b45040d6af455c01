// Package coordinator drives erasure requests to completion: it files a
// request with one task per connector instance, applies the results
// connectors report, schedules retries and polls of asynchronous vendor
// jobs, moves requests through their states, and issues the certificate in
// the same transaction that completes a request.
//
// Every change is one store transaction holding the request lock, the
// event that records it and any message that announces it, so replicas and
// restarts never disagree about what happened.
package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/failpoint"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"go.uber.org/zap"
)

// Connector is what the coordinator knows of a connector instance.
type Connector struct {
	Name        string
	Type        string
	MaxAttempts int // 0: Config.MaxAttempts
	// Plan: what the instance erases by and, a resolver, looks up by and
	// gives. The zero plan needs no identifier.
	Plan connectors.Plan
	// Optional, a reason: when the request lacks the plan's keys the task
	// is not applicable (with this reason) instead of needing an identifier.
	Optional string
	// EraseAfter names instances whose erasure must be done first.
	EraseAfter []string
	// AuthorityFor names kinds this resolver issues: when it finds none,
	// systems keyed only on them are not applicable to the person.
	AuthorityFor []erasure.Kind
	// RecheckAfter lists the ages of a completed request at which the
	// instance looks the person up again (see scheduleRechecks); each
	// must come before Retention.ShredAfter, and the connector must
	// implement connectors.Verifier.
	RecheckAfter []time.Duration
}

// Certifier signs the certificate of a completed request, within tx (it
// appends to the transparency log there). req.Status is already final;
// eventHead is the hash of the request's last event.
type Certifier interface {
	Issue(ctx context.Context, tx store.Tx, req erasure.Request, tasks []erasure.Task, eventHead string, issuedAt time.Time) (store.Certificate, error)
}

// Config tunes retries and polls.
type Config struct {
	Connectors   []Connector
	MaxAttempts  int           // default 8
	RetryInitial time.Duration // default 10s
	RetryMax     time.Duration // default 1h
	PollInterval time.Duration // default 1m: between polls of a vendor job
	// PollLease is how long a poll message is given before the scheduler
	// sends another (default 10m).
	PollLease time.Duration
	// SchedulerInterval is how often due retries and polls are sought.
	SchedulerInterval time.Duration // default 1s
	// RedispatchAfter: a dispatched task with no result for this long is
	// sent again: its message expired or was lost (default 25h).
	RedispatchAfter time.Duration
	Retention       Retention
	// Notify queues a notice (an email to the person) when a portal
	// request is verified, completed, extended or denied. Set it when a
	// notifier runs.
	Notify bool
}

// Retention says when identifiers are shredded and records purged.
type Retention struct {
	ShredAfter      time.Duration // after a request is final (default 30 days)
	KeepRequests    time.Duration // after a request is final (default 2 years)
	UnverifiedAfter time.Duration // after an unverified request came in (default 72h)
	SweepInterval   time.Duration // default 1m
}

// Coordinator is safe for concurrent use, and several processes may run one
// against the same store.
type Coordinator struct {
	store     store.Store
	hasher    *erasure.Hasher
	certifier Certifier
	clock     erasure.Clock
	log       *zap.Logger
	metrics   *telemetry.Metrics
	crash     *failpoint.Set
	cfg       Config
	byName    map[string]Connector
	// Nudge, if set, is called after a commit that enqueued messages.
	Nudge func()
}

// Deps are the coordinator's collaborators.
type Deps struct {
	Store     store.Store
	Hasher    *erasure.Hasher
	Certifier Certifier
	Clock     erasure.Clock
	Log       *zap.Logger
	Metrics   *telemetry.Metrics
	Crash     *failpoint.Set
}

// New returns a coordinator.
func New(d Deps, cfg Config) *Coordinator {
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	def(&cfg.RetryInitial, 10*time.Second)
	def(&cfg.RetryMax, time.Hour)
	def(&cfg.PollInterval, time.Minute)
	def(&cfg.PollLease, 10*time.Minute)
	def(&cfg.SchedulerInterval, time.Second)
	def(&cfg.RedispatchAfter, 25*time.Hour)
	def(&cfg.Retention.ShredAfter, 30*24*time.Hour)
	def(&cfg.Retention.KeepRequests, 2*365*24*time.Hour)
	def(&cfg.Retention.UnverifiedAfter, 72*time.Hour)
	def(&cfg.Retention.SweepInterval, time.Minute)
	if d.Clock == nil {
		d.Clock = erasure.SystemClock
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	c := &Coordinator{store: d.Store, hasher: d.Hasher, certifier: d.Certifier, clock: d.Clock, log: d.Log,
		metrics: d.Metrics, crash: d.Crash, cfg: cfg, byName: map[string]Connector{}}
	for _, cn := range cfg.Connectors {
		c.byName[cn.Name] = cn
	}
	return c
}

func (c *Coordinator) nudge() {
	if c.Nudge != nil {
		c.Nudge()
	}
}

func (c *Coordinator) maxAttempts(connector string) int {
	if cn, ok := c.byName[connector]; ok && cn.MaxAttempts > 0 {
		return cn.MaxAttempts
	}
	return c.cfg.MaxAttempts
}

// retryDelay is the exponential backoff before attempt+1, at least what the
// system asked for.
func (c *Coordinator) retryDelay(attempt int, retryAfter time.Duration) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.cfg.RetryInitial
	b.MaxInterval = c.cfg.RetryMax
	b.Multiplier = 2
	b.RandomizationFactor = 0.2
	b.MaxElapsedTime = 0
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < attempt; i++ {
		d = b.NextBackOff()
	}
	return max(d, retryAfter)
}

// taskMessage builds the outbox message that sends task to its connector.
// It carries no identifiers: the relay adds them from the request's
// encrypted envelope as it publishes.
func taskMessage(req erasure.Request, t erasure.Task, kind string, now time.Time) (store.OutboxMessage, error) {
	_, _, followUp := t.FollowUp()
	payload, err := json.Marshal(bus.Task{
		V: bus.Version, Kind: kind, TaskID: t.ID, RequestID: req.ID, Connector: t.Connector,
		Attempt: t.Attempt, Jurisdiction: string(req.Jurisdiction), JobRef: t.JobRef, FollowUp: followUp, IssuedAt: now,
	})
	if err != nil {
		return store.OutboxMessage{}, fmt.Errorf("encode task: %w", err)
	}
	return store.OutboxMessage{
		MsgID: erasure.NewID(), Subject: bus.TaskSubject(t.Connector), Payload: payload,
		RequestID: req.ID, TaskID: t.ID, Attempt: t.Attempt, CreatedAt: now,
	}, nil
}

// setStatus moves req to status with its event.

// Notifies reports whether the person of req is emailed about it (its
// denial, extension, start and end): a portal request, with notices on.
// The notifier still skips a request that holds no email address.
func (c *Coordinator) Notifies(req erasure.Request) bool {
	return c.cfg.Notify && req.Source == "portal"
}

// notice queues an email to the person about their request, for requests
// filed on the portal (the API's callers tell people themselves).
func (c *Coordinator) notice(ctx context.Context, tx store.Tx, req erasure.Request, kind string, now time.Time) error {
	if !c.Notifies(req) {
		return nil
	}
	payload, err := json.Marshal(bus.Notice{V: bus.Version, Kind: kind, RequestID: req.ID, IssuedAt: now})
	if err != nil {
		return err
	}
	return tx.Enqueue(ctx, store.OutboxMessage{
		MsgID: req.ID + ":notice:" + kind, Subject: bus.NoticeSubject(kind),
		Payload: payload, RequestID: req.ID, CreatedAt: now,
	})
}

func setStatus(ctx context.Context, tx store.Tx, req *erasure.Request, to erasure.RequestStatus, actor, reason string, now time.Time) (erasure.Event, error) {
	if !req.Status.CanTransition(to) {
		return erasure.Event{}, erasure.Errorf(erasure.EConflict, "a %s request cannot become %s", req.Status, to)
	}
	from := req.Status
	req.Status, req.UpdatedAt = to, now
	if to.Final() {
		req.CompletedAt = now
	}
	if err := tx.UpdateRequest(ctx, *req); err != nil {
		return erasure.Event{}, err
	}
	return tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventRequestStatus, actor, reason,
		map[string]string{"from": string(from), "to": string(to)}, now))
}

// Package ratelimit holds a connector instance to its rate limit across
// every process that runs it, and shares a vendor's "slow down" (a
// Retry-After) with all of them.
//
// The state of one instance's limit is a single entry in a JetStream
// key-value bucket: the theoretical arrival time of the generic cell rate
// algorithm (GCRA) and the end of any pause. A process takes a slot by
// compare-and-set on that entry, so two replicas never take the same slot
// and no leader is needed. A slot is a reservation: the caller learns when
// it may call and sleeps until then, so waiting callers are served in the
// order they asked.
//
// Replicas read their own clocks; they must agree to well within one
// interval (NTP does). A skew of s lets about s×rate extra calls through.
//
// Calls are spaced a little wider than the rate asks (Options.Headroom,
// 5% by default): a call leaves some time after its slot starts (a timer
// fires late, a goroutine waits for a core, a request is built), so two
// calls sent exactly one interval apart by slot arrive closer than that
// whenever the first was later than the second, and a vendor enforcing
// its limit strictly answers 429. For the same reason a process also
// holds its own calls to the rate as they actually leave (the same
// algorithm over the times Wait returns, without headroom): a slot's
// holder that woke late never has the next slot's holder follow it
// closer than one interval. And when the vendor refuses a call as too
// many anyway (its clock, its counting, jitter larger than the headroom),
// Slower spaces every process's slots wider for a while: by a share that
// each refusal raises and each slot taken lowers again, so the instance
// settles at the spacing the vendor actually accepts.
package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket holding every instance's limit.
const Bucket = "LETHE_RATES"

// EnsureBucket creates or updates the bucket, idempotently: every process
// does it at start-up, and writes only when the bucket is missing or
// configured otherwise.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	return bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Lethe connector rate limits, shared by every replica",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
}

// state is the stored entry. Times are Unix nanoseconds.
type state struct {
	// TAT is the theoretical arrival time: with no burst left, the next
	// call may start at TAT.
	TAT int64 `json:"tat"`
	// Pause: no call before this time (a vendor's Retry-After).
	Pause int64 `json:"pause,omitempty"`
	// Slow widens the interval by this share after the vendor refused
	// calls as too many; it shrinks with every slot taken.
	Slow float64 `json:"slow,omitempty"`
}

// How Slower widens the spacing: each refusal adds slowStep (up to
// slowMax), and each slot taken keeps slowDecay of it, so one refusal
// costs about slowStep/(1-slowDecay) = 2.5 intervals in all.
const (
	slowStep  = 0.05
	slowMax   = 0.5
	slowDecay = 0.98
)

// Limiter is one connector instance's shared limit. Its methods are safe
// for concurrent use.
type Limiter struct {
	kv       jetstream.KeyValue
	key      string
	interval time.Duration // between slots: the rate's interval with headroom; 0: no limit
	exact    time.Duration // the rate's interval, between calls leaving this process
	burst    int64
	now      func() time.Time

	// mu serialises this process's reservations, so only other processes
	// can make a compare-and-set miss; it also guards the cache.
	mu     sync.Mutex
	cached state
	rev    uint64 // revision of cached; 0: unknown

	// left is the theoretical arrival time of this process's calls as
	// they left (Wait returned), at the exact rate.
	leftMu sync.Mutex
	left   time.Time
}

// DefaultHeadroom is how much wider than the rate's interval calls are
// spaced unless Options say otherwise: at a vendor's documented limit,
// 95% of it is used and timing jitter of up to 5% of an interval is
// absorbed.
const DefaultHeadroom = 0.05

// Options tune a Limiter.
type Options struct {
	// Clock reads the time (default time.Now).
	Clock func() time.Time
	// Headroom spaces calls (1+Headroom) intervals apart; nil means
	// DefaultHeadroom, 0 none.
	Headroom *float64
}

// New returns the limiter of the named instance: perSecond calls a second
// (0: unlimited, only pauses apply) with bursts of up to burst calls.
func New(kv jetstream.KeyValue, name string, perSecond float64, burst int, opt Options) *Limiter {
	l := &Limiter{kv: kv, key: name, burst: int64(max(burst, 1)), now: opt.Clock}
	headroom := DefaultHeadroom
	if opt.Headroom != nil {
		headroom = *opt.Headroom
	}
	if perSecond > 0 {
		l.exact = time.Duration(float64(time.Second) / perSecond)
		l.interval = time.Duration(float64(time.Second) * (1 + headroom) / perSecond)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// ErrNoTurn is Wait's answer when the next slot starts after ctx's
// deadline: no slot is taken (it would only go unused), and the caller
// learns at once instead of sleeping until its deadline. It matches
// context.DeadlineExceeded too.
var ErrNoTurn = fmt.Errorf("no turn under the rate limit before the call's deadline: %w", context.DeadlineExceeded)

// Wait blocks until the caller may make one call. A pause that begins
// while it waits for its slot (another process got a Retry-After) holds
// it too: it then takes a new slot after the pause. When ctx has a
// deadline, only a slot starting before it is taken (else ErrNoTurn).
func (l *Limiter) Wait(ctx context.Context) error {
	deadline, _ := ctx.Deadline()
	for {
		at, err := l.reserveBefore(ctx, deadline)
		if err != nil {
			return err
		}
		if err := sleep(ctx, at.Sub(l.now())); err != nil {
			return err
		}
		if l.pausedUntil().After(l.now()) {
			continue
		}
		return l.leave(ctx)
	}
}

// leave holds the caller until the calls that left this process before it
// are at least one exact interval (or a burst) behind, then counts it as
// left. Only a slot's holder that woke late makes it wait.
func (l *Limiter) leave(ctx context.Context) error {
	if l.exact <= 0 {
		return nil
	}
	l.leftMu.Lock()
	defer l.leftMu.Unlock()
	now := l.now()
	start := maxTime(now, l.left.Add(-time.Duration(l.burst-1)*l.exact))
	if err := sleep(ctx, start.Sub(now)); err != nil {
		return err
	}
	l.left = maxTime(l.left, start).Add(l.exact)
	return nil
}

// pausedUntil is the end of the latest pause this process knows of.
func (l *Limiter) pausedUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Unix(0, l.cached.Pause)
}

// Reserve takes the next slot and returns when it starts. An unlimited
// instance takes no slot; it only learns of pauses.
func (l *Limiter) Reserve(ctx context.Context) (time.Time, error) {
	return l.reserveBefore(ctx, time.Time{})
}

// reserveBefore is Reserve taking only a slot that starts before
// deadline (zero: any), else ErrNoTurn and nothing taken.
func (l *Limiter) reserveBefore(ctx context.Context, deadline time.Time) (time.Time, error) {
	if l.interval <= 0 {
		at := maxTime(l.now(), l.pausedUntil())
		if !deadline.IsZero() && at.After(deadline) {
			return at, ErrNoTurn
		}
		return at, nil
	}
	var at time.Time
	err := l.update(ctx, func(s *state) bool {
		now := l.now().UnixNano()
		step := int64(float64(l.interval) * (1 + s.Slow))
		start := max(now, s.Pause, s.TAT-(l.burst-1)*step)
		at = time.Unix(0, start)
		if !deadline.IsZero() && at.After(deadline) {
			return false
		}
		s.TAT = max(s.TAT, start) + step
		if s.Slow *= slowDecay; s.Slow < 0.001 {
			s.Slow = 0
		}
		return true
	})
	if err == nil && !deadline.IsZero() && at.After(deadline) {
		return at, ErrNoTurn
	}
	return at, err
}

// Slower widens every process's spacing of this instance's calls for a
// while: the vendor refused one as too many.
func (l *Limiter) Slower(ctx context.Context) error {
	if l.interval <= 0 {
		return nil
	}
	return l.update(ctx, func(s *state) bool { s.Slow = min(s.Slow+slowStep, slowMax); return true })
}

// Pause holds every process's calls of this instance for d from now.
func (l *Limiter) Pause(ctx context.Context, d time.Duration) error {
	until := l.now().Add(d).UnixNano()
	return l.update(ctx, func(s *state) bool { s.Pause = max(s.Pause, until); return true })
}

// update applies change to the stored state with compare-and-set,
// reading the entry again when another process changed it meanwhile; a
// change that returns false leaves the state as it is. Transient NATS
// failures (a node restarting, a leader election) are retried for up to
// half a minute.
func (l *Limiter) update(ctx context.Context, change func(*state) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	op := func() error {
		for range 100 {
			if l.rev == 0 {
				if err := l.load(ctx); err != nil {
					return err
				}
			}
			next := l.cached
			if !change(&next) {
				return nil
			}
			b, err := json.Marshal(next)
			if err != nil {
				return backoff.Permanent(err)
			}
			var rev uint64
			if l.rev == notFound {
				rev, err = l.kv.Create(ctx, l.key, b)
			} else {
				rev, err = l.kv.Update(ctx, l.key, b, l.rev)
			}
			switch {
			case err == nil:
				l.cached, l.rev = next, rev
				return nil
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
				l.rev = 0 // another process was first: read and try again
			default:
				l.rev = 0
				return err
			}
		}
		return errors.New("too much contention")
	}
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(50*time.Millisecond), backoff.WithMaxElapsedTime(30*time.Second)), ctx)
	if err := backoff.Retry(op, b); err != nil {
		return fmt.Errorf("rate limit %s: %w", l.key, err)
	}
	return nil
}

// notFound marks a key that does not exist yet: the first write creates it.
const notFound = ^uint64(0)

// load reads the stored state into the cache. Callers hold mu.
func (l *Limiter) load(ctx context.Context) error {
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		l.cached, l.rev = state{}, notFound
		return nil
	case err != nil:
		return err
	}
	var s state
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		// A damaged entry is overwritten rather than blocking the instance.
		s = state{}
	}
	l.cached, l.rev = s, e.Revision()
	return nil
}

// Follow keeps the limiter's copy of the stored state current until ctx
// ends, so an unlimited instance learns of pauses other processes set
// without a read per call, and a limited one rarely misses a
// compare-and-set.
func (l *Limiter) Follow(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := l.kv.Watch(ctx, l.key)
		if err != nil {
			_ = sleep(ctx, time.Second)
			continue
		}
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var s state
			if json.Unmarshal(e.Value(), &s) != nil {
				continue
			}
			l.mu.Lock()
			if e.Revision() > l.rev || l.rev == notFound {
				l.cached, l.rev = s, e.Revision()
			}
			l.mu.Unlock()
		}
		_ = w.Stop()
		_ = sleep(ctx, time.Second)
	}
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

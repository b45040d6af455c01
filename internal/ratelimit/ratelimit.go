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
}

// Limiter is one connector instance's shared limit. Its methods are safe
// for concurrent use.
type Limiter struct {
	kv       jetstream.KeyValue
	key      string
	interval time.Duration // between calls at the steady rate; 0: no limit
	burst    int64
	now      func() time.Time

	// mu serialises this process's reservations, so only other processes
	// can make a compare-and-set miss; it also guards the cache.
	mu     sync.Mutex
	cached state
	rev    uint64 // revision of cached; 0: unknown
}

// Options tune a Limiter.
type Options struct {
	// Clock reads the time (default time.Now).
	Clock func() time.Time
}

// New returns the limiter of the named instance: perSecond calls a second
// (0: unlimited, only pauses apply) with bursts of up to burst calls.
func New(kv jetstream.KeyValue, name string, perSecond float64, burst int, opt Options) *Limiter {
	l := &Limiter{kv: kv, key: name, burst: int64(max(burst, 1)), now: opt.Clock}
	if perSecond > 0 {
		l.interval = time.Duration(float64(time.Second) / perSecond)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Wait blocks until the caller may make one call. A pause that begins
// while it waits for its slot (another process got a Retry-After) holds
// it too: it then takes a new slot after the pause.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		at, err := l.Reserve(ctx)
		if err != nil {
			return err
		}
		if err := sleep(ctx, at.Sub(l.now())); err != nil {
			return err
		}
		if !l.pausedUntil().After(l.now()) {
			return nil
		}
	}
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
	if l.interval <= 0 {
		return maxTime(l.now(), l.pausedUntil()), nil
	}
	var at time.Time
	err := l.update(ctx, func(s *state) {
		now := l.now().UnixNano()
		step := int64(l.interval)
		start := max(now, s.Pause, s.TAT-(l.burst-1)*step)
		s.TAT = max(s.TAT, start) + step
		at = time.Unix(0, start)
	})
	return at, err
}

// Pause holds every process's calls of this instance for d from now.
func (l *Limiter) Pause(ctx context.Context, d time.Duration) error {
	until := l.now().Add(d).UnixNano()
	return l.update(ctx, func(s *state) { s.Pause = max(s.Pause, until) })
}

// update applies change to the stored state with compare-and-set,
// reading the entry again when another process changed it meanwhile.
// Transient NATS failures (a node restarting, a leader election) are
// retried for up to half a minute.
func (l *Limiter) update(ctx context.Context, change func(*state)) error {
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
			change(&next)
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

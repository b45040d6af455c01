package ratelimit_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/ratelimit"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// exact is no headroom: the tests of the algorithm expect the rate's
// interval to the nanosecond.
var exact = 0.0

// replica connects to the server as a separate process would: its own
// connection, its own view of the bucket.
func replica(t *testing.T, url string) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := ratelimit.EnsureBucket(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestReplicasShareOneBudget: two processes reserving at the same instant
// get distinct slots that together follow the rate and burst exactly, as
// one limiter would hand them out.
func TestReplicasShareOneBudget(t *testing.T) {
	ns := testenv.NATS(t)
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const rate, burst, each = 10, 3, 25
	a := ratelimit.New(replica(t, ns.ClientURL()), "crm", rate, burst, ratelimit.Options{Clock: clock, Headroom: &exact})
	b := ratelimit.New(replica(t, ns.ClientURL()), "crm", rate, burst, ratelimit.Options{Clock: clock, Headroom: &exact})
	other := ratelimit.New(replica(t, ns.ClientURL()), "mail", rate, burst, ratelimit.Options{Clock: clock, Headroom: &exact})

	var mu sync.Mutex
	var got []time.Duration
	var wg sync.WaitGroup
	for _, l := range []*ratelimit.Limiter{a, b} {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each / 5 {
					at, err := l.Reserve(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got = append(got, at.Sub(now))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	slices.Sort(got)
	step := time.Second / rate
	var want []time.Duration
	for k := range 2 * each {
		want = append(want, max(0, time.Duration(k-(burst-1))*step))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("slots handed out:\n got %v\nwant %v", got, want)
	}
	// Another instance has a budget of its own.
	if at, err := other.Reserve(context.Background()); err != nil || !at.Equal(now) {
		t.Fatalf("another instance's first slot: %v, %v", at, err)
	}
}

// TestPauseReachesEveryReplica: a Retry-After seen by one process holds
// the others' calls, limited or not.
func TestPauseReachesEveryReplica(t *testing.T) {
	ns := testenv.NATS(t)
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := ratelimit.New(replica(t, ns.ClientURL()), "crm", 5, 1, ratelimit.Options{Clock: clock, Headroom: &exact})
	limited := ratelimit.New(replica(t, ns.ClientURL()), "crm", 5, 1, ratelimit.Options{Clock: clock, Headroom: &exact})
	unlimited := ratelimit.New(replica(t, ns.ClientURL()), "crm", 0, 0, ratelimit.Options{Clock: clock, Headroom: &exact})
	go unlimited.Follow(ctx)

	if at, err := limited.Reserve(ctx); err != nil || !at.Equal(now) {
		t.Fatalf("first slot %v, %v", at, err)
	}
	if err := seen.Pause(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// A shorter pause later does not cut the longer one short.
	if err := seen.Pause(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	at, err := limited.Reserve(ctx)
	if err != nil || !at.Equal(now.Add(30*time.Second)) {
		t.Fatalf("slot after another replica's pause: %v (%v), want %v", at, err, now.Add(30*time.Second))
	}
	at, _ = limited.Reserve(ctx)
	if want := now.Add(30*time.Second + 200*time.Millisecond); !at.Equal(want) {
		t.Fatalf("next slot %v, want %v", at, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		at, err := unlimited.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if at.Equal(now.Add(30 * time.Second)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an unlimited replica never learnt of the pause: %v", at)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWaitSpacesCallsAcrossReplicas uses the real clock: two processes
// making 11 calls at 50/s with no burst take at least 10 intervals.
func TestWaitSpacesCallsAcrossReplicas(t *testing.T) {
	ns := testenv.NATS(t)
	ls := []*ratelimit.Limiter{
		ratelimit.New(replica(t, ns.ClientURL()), "crm", 50, 1, ratelimit.Options{}),
		ratelimit.New(replica(t, ns.ClientURL()), "crm", 50, 1, ratelimit.Options{}),
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 11 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ls[i%2].Wait(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("11 calls at 50/s across two replicas took %v, less than 10 intervals", d)
	}
}

func TestWaitGivesUpWithItsContext(t *testing.T) {
	ns := testenv.NATS(t)
	l := ratelimit.New(replica(t, ns.ClientURL()), "crm", 0.1, 1, ratelimit.Options{})
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wait of 10s under a 50ms context: %v", err)
	}
}

// TestWaitTakesNoSlotBeyondItsDeadline: a call whose deadline comes
// before the next slot learns so at once (ErrNoTurn) and takes nothing,
// so the slot is still the next caller's: an endpoint allowing a call a
// few minutes does not lose its budget to calls that gave up.
func TestWaitTakesNoSlotBeyondItsDeadline(t *testing.T) {
	ns := testenv.NATS(t)
	now := time.Unix(1_800_000_000, 0)
	l := ratelimit.New(replica(t, ns.ClientURL()), "amplitude.user_search", 0.1, 1, ratelimit.Options{Headroom: &exact, Clock: func() time.Time { return now }})
	if at, err := l.Reserve(context.Background()); err != nil || !at.Equal(now) {
		t.Fatalf("first slot = %v, %v; want now", at, err)
	}
	for range 3 {
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(5*time.Second))
		start := time.Now()
		err := l.Wait(ctx)
		cancel()
		if !errors.Is(err, ratelimit.ErrNoTurn) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a wait for a slot 10s away under a 5s deadline: %v", err)
		}
		if waited := time.Since(start); waited > 2*time.Second {
			t.Fatalf("gave up only after %s; want at once", waited)
		}
	}
	if at, err := l.Reserve(context.Background()); err != nil || !at.Equal(now.Add(10*time.Second)) {
		t.Fatalf("after three refused waits the next slot = %v, %v; want now+10s (none taken)", at, err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(25*time.Second))
	defer cancel()
	if at, err := l.Reserve(ctx); err != nil || !at.Equal(now.Add(20*time.Second)) {
		t.Fatalf("a slot within the deadline = %v, %v; want now+20s", at, err)
	}
}

// TestDamagedEntryIsReplaced: an entry someone overwrote with garbage
// does not block the instance.
func TestDamagedEntryIsReplaced(t *testing.T) {
	ns := testenv.NATS(t)
	kv := replica(t, ns.ClientURL())
	if _, err := kv.Put(context.Background(), "crm", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	l := ratelimit.New(kv, "crm", 1, 1, ratelimit.Options{Clock: func() time.Time { return now }, Headroom: &exact})
	at, err := l.Reserve(context.Background())
	if err != nil || !at.Equal(now) {
		t.Fatalf("reserve over a damaged entry: %v, %v", at, err)
	}
	if at, _ := l.Reserve(context.Background()); !at.Equal(now.Add(time.Second)) {
		t.Fatalf("second slot %v", at)
	}
}

// TestUnreachableStoreIsAnError: with NATS gone for longer than the retry
// window allows, Wait reports it instead of letting calls through.
func TestUnreachableStoreIsAnError(t *testing.T) {
	ns := testenv.NATS(t)
	l := ratelimit.New(replica(t, ns.ClientURL()), "crm", 10, 1, ratelimit.Options{})
	ns.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.Wait(ctx); err == nil {
		t.Fatal("Wait succeeded with no NATS server")
	}
}

// TestPauseStopsAWaitingCall: a call already holding a slot when another
// process is told to slow down waits for the pause too.
func TestPauseStopsAWaitingCall(t *testing.T) {
	ns := testenv.NATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := ratelimit.New(replica(t, ns.ClientURL()), "crm", 2, 1, ratelimit.Options{})
	go waiting.Follow(ctx)
	told := ratelimit.New(replica(t, ns.ClientURL()), "crm", 2, 1, ratelimit.Options{})
	if err := waiting.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- waiting.Wait(ctx) }() // its slot is 500ms away
	time.Sleep(20 * time.Millisecond)
	if err := told.Pause(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("the waiting call went ahead after %v, inside another replica's 1s pause", d)
	}
}

// TestHeadroomSpacesCallsWider: by default slots are 5% more than one
// interval apart (a 10/s limit gives 105 ms), as configured otherwise,
// and the burst is untouched.
func TestHeadroomSpacesCallsWider(t *testing.T) {
	ns := testenv.NATS(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	wide := 0.2
	for _, tc := range []struct {
		name     string
		headroom *float64
		step     time.Duration
	}{{"default", nil, 105 * time.Millisecond}, {"wide", &wide, 120 * time.Millisecond}, {"none", &exact, 100 * time.Millisecond}} {
		l := ratelimit.New(replica(t, ns.ClientURL()), "crm-"+tc.name, 10, 2, ratelimit.Options{Clock: clock, Headroom: tc.headroom})
		var got []time.Duration
		for range 4 {
			at, err := l.Reserve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, at.Sub(now))
		}
		if want := []time.Duration{0, 0, tc.step, 2 * tc.step}; !slices.Equal(got, want) {
			t.Errorf("%s: slots %v, want %v", tc.name, got, want)
		}
	}
}

// TestCallsLeaveAtMostAtTheRate: when the shared slots let a call go at
// once although this process's previous call left less than an interval
// ago (the previous slot's holder woke late, or the entry was reset), the
// call still waits out the interval: no two calls leave one process
// closer than the rate allows.
func TestCallsLeaveAtMostAtTheRate(t *testing.T) {
	ns := testenv.NATS(t)
	kv := replica(t, ns.ClientURL())
	l := ratelimit.New(kv, "crm", 10, 1, ratelimit.Options{Headroom: &exact})
	ctx := context.Background()
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	if _, err := kv.Put(ctx, "crm", []byte(`{"tat":0}`)); err != nil { // the next slot is now
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the limiter follows no watch here; Reserve reads on a revision miss
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if gap := time.Since(first); gap < 95*time.Millisecond {
		t.Fatalf("the second call left %v after the first, under the 100ms interval", gap)
	}
}

// TestSlowerWidensThenRecovers: after the vendor refuses calls as too
// many, every replica's slots are spaced wider (5% a refusal, at most
// 50%), and the widening fades as slots are taken.
func TestSlowerWidensThenRecovers(t *testing.T) {
	ns := testenv.NATS(t)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	a := ratelimit.New(replica(t, ns.ClientURL()), "crm", 10, 1, ratelimit.Options{Clock: clock, Headroom: &exact})
	b := ratelimit.New(replica(t, ns.ClientURL()), "crm", 10, 1, ratelimit.Options{Clock: clock, Headroom: &exact})
	ctx := context.Background()
	gap := func(l *ratelimit.Limiter) time.Duration {
		t.Helper()
		x, err := l.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		y, err := l.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return y.Sub(x)
	}
	if g := gap(a); g != 100*time.Millisecond {
		t.Fatalf("before any refusal: %v apart", g)
	}
	for range 20 {
		if err := a.Slower(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if g := gap(b); g < 145*time.Millisecond || g > 150*time.Millisecond {
		t.Errorf("after 20 refusals, the other replica's slots are %v apart, want about 150ms (the 50%% cap)", g)
	}
	for range 400 {
		if _, err := b.Reserve(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if g := gap(a); g != 100*time.Millisecond {
		t.Errorf("400 slots later: %v apart, want 100ms again", g)
	}
}

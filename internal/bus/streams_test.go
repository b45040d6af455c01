package bus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
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
	return nc, js
}

// TestTopologyIsIdempotentAndFollowsTheConfig: many processes setting up
// at once agree, setting up again changes nothing, and a changed setting
// reaches the stream and the consumer at the next start-up.
func TestTopologyIsIdempotentAndFollowsTheConfig(t *testing.T) {
	ns := testenv.NATS(t)
	ctx := context.Background()
	topo := bus.Topology{AckWait: 30 * time.Second, TaskMaxAge: time.Hour}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, js := connect(t, ns.ClientURL())
			if err := topo.EnsureStreams(ctx, js); err != nil {
				errs <- err
				return
			}
			_, err := topo.WorkerConsumer(ctx, js, "crm")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent set-up: %v", err)
		}
	}
	nc, js := connect(t, ns.ClientURL())
	s, err := js.Stream(ctx, bus.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	before := s.CachedInfo().Config
	if err := topo.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	if s, _ = js.Stream(ctx, bus.TasksStream); s.CachedInfo().Config.MaxAge != time.Hour || s.CachedInfo().Config.Replicas != before.Replicas {
		t.Errorf("setting up again changed the stream: %+v", s.CachedInfo().Config)
	}
	// Changed settings reach the stream and the consumer.
	topo.TaskMaxAge, topo.AckWait = 2*time.Hour, 45*time.Second
	if err := topo.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	c, err := topo.WorkerConsumer(ctx, js, "crm")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ = js.Stream(ctx, bus.TasksStream); s.CachedInfo().Config.MaxAge != 2*time.Hour {
		t.Errorf("task max age after a change: %s", s.CachedInfo().Config.MaxAge)
	}
	if got := c.CachedInfo().Config.AckWait; got != 45*time.Second {
		t.Errorf("consumer ack wait after a change: %s", got)
	}
	if r := bus.ClusterReplicas(nc); r != 1 {
		t.Errorf("a single server gets %d replicas", r)
	}
}

// TestQueueDepthCountsPerConnector: messages waiting and in flight count;
// acknowledged ones do not.
func TestQueueDepthCountsPerConnector(t *testing.T) {
	ns := testenv.NATS(t)
	ctx := context.Background()
	_, js := connect(t, ns.ClientURL())
	topo := bus.Topology{}
	testenv.Must(t, topo.EnsureStreams(ctx, js))
	for i, name := range []string{"crm", "crm", "crm", "mail"} {
		if _, err := js.Publish(ctx, bus.TaskSubject(name), []byte("{}"), jetstream.WithMsgID(strings.Repeat("x", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := topo.WorkerConsumer(ctx, js, "crm")
	testenv.Must(t, err)
	batch, err := c.Fetch(2, jetstream.FetchMaxWait(time.Second))
	testenv.Must(t, err)
	n := 0
	for m := range batch.Messages() {
		if n == 0 {
			testenv.Must(t, m.Ack()) // done: no longer counted
		} // the second stays in flight: still counted
		n++
	}
	time.Sleep(100 * time.Millisecond) // let the ack land
	got, err := bus.QueueDepth(ctx, js)
	testenv.Must(t, err)
	if got["crm"] != 2 || got["mail"] != 1 || len(got) != 2 {
		t.Errorf("queue depth %v, want crm 2 and mail 1", got)
	}
}

// TestRetryGivesUpWithItsContext: an operation that keeps failing is
// retried until the context ends, and the error says what failed last.
func TestRetryGivesUpWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	tries := 0
	err := bus.Retry(ctx, func(context.Context) error { tries++; return errors.New("no meta leader") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no meta leader") || tries < 2 {
		t.Fatalf("after %d tries: %v", tries, err)
	}
	tries = 0
	if err := bus.Retry(context.Background(), func(context.Context) error {
		if tries++; tries < 3 {
			return errors.New("transient")
		}
		return nil
	}); err != nil || tries != 3 {
		t.Fatalf("a transient failure: %v after %d tries", err, tries)
	}
}

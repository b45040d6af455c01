package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterReplicas is the replica count for Lethe's streams when the
// configuration leaves it open: 3 when the server nc is connected to is in
// a cluster that has told the client of three or more servers, else 1.
func ClusterReplicas(nc *nats.Conn) int {
	if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// Topology describes the streams and consumers Lethe needs. Setting it up is
// idempotent: every process does it at start-up, concurrently if need be.
type Topology struct {
	// Replicas per stream: 1 for a single server, 3 in a cluster.
	Replicas int
	// AckWait is how long a worker may hold a message without a progress
	// signal before JetStream hands it to another worker.
	AckWait time.Duration
	// TaskMaxAge bounds how long a task message, with its identifiers,
	// stays in the stream (0: no limit).
	TaskMaxAge time.Duration
}

// duplicateWindow is how long JetStream remembers a Nats-Msg-Id. A relay
// that publishes, crashes before recording it, and restarts within the
// window causes no duplicate; after it, consumers' idempotency does.
const duplicateWindow = 10 * time.Minute

// noticeMaxAge: an email that could not be sent for a week is dropped
// (the person's status page still shows everything).
const noticeMaxAge = 7 * 24 * time.Hour

// EnsureStreams creates or updates the task, result and notice streams. All are
// work queues: a message is gone once acknowledged, so identifiers do not
// linger in NATS.
func (t Topology) EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, sc := range []jetstream.StreamConfig{
		{Name: TasksStream, Subjects: []string{taskPrefix + ">"}, Description: "Lethe erasure tasks, one subject per connector instance", MaxAge: t.TaskMaxAge},
		{Name: ResultsStream, Subjects: []string{resultPrefix + ">"}, Description: "Lethe connector results for the coordinator"},
		{Name: NoticesStream, Subjects: []string{noticePrefix + ">"}, Description: "Lethe emails to data subjects, to send", MaxAge: noticeMaxAge},
	} {
		sc.Retention = jetstream.WorkQueuePolicy
		sc.Storage = jetstream.FileStorage
		sc.Replicas = max(t.Replicas, 1)
		sc.Duplicates = duplicateWindow
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// WorkerConsumer creates or updates the durable pull consumer of one
// connector instance. At most concurrency messages are out at once, across
// every process that consumes it.
func (t Topology) WorkerConsumer(ctx context.Context, js jetstream.JetStream, connector string, concurrency int) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, TasksStream, jetstream.ConsumerConfig{
		Durable:       WorkerConsumer(connector),
		Description:   "Lethe worker for connector " + connector,
		FilterSubject: TaskSubject(connector),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.ackWait(),
		MaxAckPending: max(concurrency, 1),
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer for connector %s: %w", connector, err)
	}
	return c, nil
}

// CoordinatorConsumer creates or updates the durable consumer of results.
func (t Topology) CoordinatorConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, ResultsStream, jetstream.ConsumerConfig{
		Durable:       CoordinatorConsumer,
		Description:   "Lethe coordinator: applies connector results",
		FilterSubject: resultPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 256,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("coordinator consumer: %w", err)
	}
	return c, nil
}

// NotifierConsumer creates or updates the durable consumer of notices.
func (t Topology) NotifierConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	c, err := js.CreateOrUpdateConsumer(ctx, NoticesStream, jetstream.ConsumerConfig{
		Durable:       NotifierConsumer,
		Description:   "Lethe notifier: emails data subjects about their requests",
		FilterSubject: noticePrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 16,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("notifier consumer: %w", err)
	}
	return c, nil
}

func (t Topology) ackWait() time.Duration {
	if t.AckWait <= 0 {
		return time.Minute
	}
	return t.AckWait
}

// QueueDepth counts the task messages in the task stream per connector
// instance: waiting for a worker or being worked on, since a work queue
// keeps a message until its worker acknowledges it.
func QueueDepth(ctx context.Context, js jetstream.JetStream) (map[string]uint64, error) {
	s, err := js.Stream(ctx, TasksStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", TasksStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(taskPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", TasksStream, err)
	}
	out := make(map[string]uint64, len(info.State.Subjects))
	for subject, n := range info.State.Subjects {
		out[strings.TrimPrefix(subject, taskPrefix)] = n
	}
	return out, nil
}

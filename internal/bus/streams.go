package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
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

// resultAckWait: applying a result is one short transaction, so a result
// held by a replica that died goes to another within seconds. A slow
// commit that outlives it is applied twice, which changes nothing: results
// are applied idempotently.
const resultAckWait = 10 * time.Second

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
		if err := ensureStream(ctx, js, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// ensureStream creates the stream, or updates it when its configuration
// differs from sc. A start-up that finds it as wanted writes nothing, so
// many replicas starting at once, or while a NATS node recovers, do not
// queue changes on the cluster's metadata leader.
func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	return Retry(ctx, func(ctx context.Context) error {
		s, err := js.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, sc) // "already in use": another replica won; compare again
			return err
		}
		if err != nil {
			return err
		}
		if sameStream(s.CachedInfo().Config, sc) {
			return nil
		}
		_, err = js.UpdateStream(ctx, sc)
		return err
	})
}

func sameStream(a, b jetstream.StreamConfig) bool {
	return slices.Equal(a.Subjects, b.Subjects) && a.Description == b.Description && a.Retention == b.Retention &&
		a.Storage == b.Storage && a.Replicas == b.Replicas && a.Duplicates == b.Duplicates && a.MaxAge == b.MaxAge
}

// ensureConsumer creates or updates a durable consumer, writing only when
// its configuration differs from cc.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var c jetstream.Consumer
	err := Retry(ctx, func(ctx context.Context) error {
		var err error
		c, err = js.Consumer(ctx, stream, cc.Durable)
		if err == nil && sameConsumer(c.CachedInfo().Config, cc) {
			return nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		c, err = js.CreateOrUpdateConsumer(ctx, stream, cc)
		return err
	})
	return c, err
}

func sameConsumer(a, b jetstream.ConsumerConfig) bool {
	return a.Description == b.Description && a.FilterSubject == b.FilterSubject && a.AckPolicy == b.AckPolicy &&
		a.AckWait == b.AckWait && a.MaxAckPending == b.MaxAckPending && a.MaxDeliver == b.MaxDeliver
}

// Retry runs op with a bounded time per attempt until it succeeds or ctx
// ends: JetStream API calls go unanswered while a cluster elects a leader
// or a node catches up after a restart, and succeed a few seconds later.
func Retry(ctx context.Context, op func(context.Context) error) error {
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond), backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(0)), ctx)
	var last error
	err := backoff.Retry(func() error {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		last = op(attempt)
		return last
	}, b)
	if err != nil && last != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), last)
	}
	return err
}

// maxInFlight caps one connector instance's tasks in flight across all
// processes. Each process runs at most its instance's concurrency, or
// that many batches for an instance erasing in batches (up to 5,000
// people each, Segment's maximum); the vendor is protected by the shared
// rate limit.
const maxInFlight = 10000

// WorkerConsumer creates or updates the durable pull consumer of one
// connector instance, shared by every process that runs it: each pulls
// only as many tasks as it has free slots.
func (t Topology) WorkerConsumer(ctx context.Context, js jetstream.JetStream, connector string) (jetstream.Consumer, error) {
	return durable(ctx, js, TasksStream, WorkerConsumer(connector), "Lethe worker for connector "+connector,
		TaskSubject(connector), t.ackWait(), maxInFlight)
}

// CoordinatorConsumer creates or updates the durable consumer of results.
func (t Topology) CoordinatorConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	return durable(ctx, js, ResultsStream, CoordinatorConsumer, "Lethe coordinator: applies connector results",
		resultPrefix+">", resultAckWait, 256)
}

// NotifierConsumer creates or updates the durable consumer of notices.
func (t Topology) NotifierConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	return durable(ctx, js, NoticesStream, NotifierConsumer, "Lethe notifier: emails data subjects about their requests",
		noticePrefix+">", 2*time.Minute, 16)
}

// durable ensures one of Lethe's durable pull consumers: explicit acks,
// redelivered until acknowledged.
func durable(ctx context.Context, js jetstream.JetStream, stream, name, description, filter string, ackWait time.Duration, maxAckPending int) (jetstream.Consumer, error) {
	c, err := ensureConsumer(ctx, js, stream, jetstream.ConsumerConfig{
		Durable: name, Description: description, FilterSubject: filter,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: maxAckPending, MaxDeliver: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
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

// PullOptions are the options every Lethe consumer pulls with: at most
// batch messages ahead, and pull requests short enough (5s, with
// heartbeats every 2.5s) that a client whose NATS node died, or whose
// consumer moved to another leader, notices within seconds and asks again.
func PullOptions(batch int) []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(max(batch, 1)), jetstream.PullExpiry(5 * time.Second)}
}

// EnsureKeyValue creates or updates a key-value bucket idempotently: every
// process does it at start-up, and writes only when the bucket is missing
// or has another replica count.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = max(cfg.Replicas, 1)
	var kv jetstream.KeyValue
	err := Retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = js.KeyValue(ctx, cfg.Bucket)
		if err == nil {
			st, err := kv.Status(ctx)
			if err != nil {
				return err
			}
			if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo().Config.Replicas == cfg.Replicas {
				return nil
			}
		} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// IsWrongSequence reports whether err is a key-value compare-and-set that
// lost: another process wrote the key first.
func IsWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Applied says what ApplyResult did with a result.
type Applied string

// Outcomes of ApplyResult.
const (
	AppliedNew   Applied = "applied"
	AppliedStale Applied = "stale"   // a duplicate, or for an earlier attempt: ignored
	AppliedNoOp  Applied = "unknown" // no such request or task: ignored
)

// ApplyResult records a connector's report: the task's new state, its
// event, the request's new state and, when every task is done, the
// certificate, all in one transaction. Duplicates and results for earlier
// attempts change nothing, so redelivered messages are harmless.
func (c *Coordinator) ApplyResult(ctx context.Context, res bus.Result) (Applied, error) {
	return c.applyResult(ctx, res, "")
}

// applyResult is ApplyResult; a callback's result (forJob: the job it is
// about) is stale unless the task, read in the transaction, still waits on
// that job: a retry dispatched keeps the earlier job's ref until its own
// start is applied, and must not take the earlier job's answer.
func (c *Coordinator) applyResult(ctx context.Context, res bus.Result, forJob string) (Applied, error) {
	var applied Applied
	var certified bool
	var task erasure.Task
	err := c.store.InTx(ctx, func(tx store.Tx) error {
		applied, certified = AppliedStale, false
		req, err := tx.LockRequest(ctx, res.RequestID)
		if errors.Is(err, store.ErrNotFound) {
			applied = AppliedNoOp
			return nil
		}
		if err != nil {
			return err
		}
		task, err = tx.Task(ctx, res.TaskID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && task.RequestID != req.ID) {
			applied = AppliedNoOp
			return nil
		}
		if err != nil {
			return err
		}
		if !accepts(task, res) || (forJob != "" && task.JobRef != forJob) {
			return nil
		}
		res.Evidence = redactEvidence(res, req.Subject)
		now := c.clock()
		var changed bool
		switch {
		case task.Phase == erasure.PhaseResolve:
			if err := c.applyResolve(ctx, tx, &req, &task, res, now); err != nil {
				return err
			}
			changed = true
		case task.IsRecheck():
			c.applyRecheck(&task, req, res, now)
			changed = true
		default:
			changed = c.applyToTask(&task, req, res, now)
		}
		if err := tx.UpdateTask(ctx, task); err != nil {
			return err
		}
		applied = AppliedNew
		if !changed {
			return nil // a running job polled and still running: nothing new to record
		}
		var followUp map[string]any
		if _, _, ok := task.FollowUp(); ok {
			if followUp, err = c.followUpDone(ctx, tx, &req, task, res, now); err != nil {
				return err
			}
		}
		data := map[string]any{
			"connector": task.Connector, "kind": res.Kind, "attempt": res.Attempt, "status": task.Status,
			"records": res.Records, "evidence": res.Evidence,
		}
		if res.JobRef != "" {
			data["job_ref"] = res.JobRef
		}
		if len(res.SearchedBy) > 0 {
			data["searched_by"] = res.SearchedBy
		}
		if res.RecordsUnknown {
			data["records_unknown"] = true
		}
		if task.Phase == erasure.PhaseResolve {
			data["found"] = task.Found // kinds only: never the values
		}
		if res.Error != nil {
			data["error"] = task.LastError
			data["permanent"] = res.Error.Permanent
		}
		if task.Status == erasure.TaskFailed {
			data["next_attempt_at"] = task.NextAttemptAt
		}
		if task.Phase != erasure.PhaseResolve && task.Phase != erasure.PhaseErase {
			data["phase"] = task.Phase
		}
		for k, v := range followUp {
			data[k] = v
		}
		if _, err := tx.AppendEvent(ctx, erasure.NewEvent(req.ID, task.ID, erasure.EventTaskResult,
			"connector:"+task.Connector, "", data, now)); err != nil {
			return err
		}
		certified, err = c.advanceRequest(ctx, tx, &req, now)
		if err != nil {
			return err
		}
		c.crash.Hit("coordinator.before_commit")
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("apply result for task %s: %w", res.TaskID, err)
	}
	c.crash.Hit("coordinator.after_commit")
	if applied == AppliedNew {
		c.metrics.TaskResult(task.Connector, string(task.Status), task.CreatedAt, task.Status.Done() || task.Status == erasure.TaskDead)
		if task.Status == erasure.TaskFailed {
			c.metrics.TaskRetry(task.Connector)
		}
		c.log.Info("task result", zap.String("request_id", res.RequestID), zap.String("task_id", task.ID),
			zap.String("connector", task.Connector), zap.String("status", string(task.Status)),
			zap.Int("attempt", task.Attempt), zap.Int64("records", task.RecordsErased))
	}
	if certified {
		c.metrics.CertificateIssued()
		c.log.Info("certificate issued", zap.String("request_id", res.RequestID))
	}
	return applied, nil
}

// redactEvidence keeps identifiers out of a result's evidence, which the
// event log and the certificate carry: Lethe's own connectors never put
// them there, but a connector in another process might.
func redactEvidence(res bus.Result, s erasure.Subject) []erasure.Evidence {
	values := s.Values()
	for _, vs := range res.Identifiers {
		values = append(values, vs...)
	}
	out := make([]erasure.Evidence, len(res.Evidence))
	for i, ev := range res.Evidence {
		out[i] = erasure.Evidence{Kind: erasure.RedactValues(ev.Kind, values...), Value: erasure.RedactValues(ev.Value, values...)}
	}
	return out
}

// accepts reports whether res is news for task: for its current attempt,
// and of a kind the task is waiting for.
func accepts(t erasure.Task, res bus.Result) bool {
	if res.Attempt != t.Attempt {
		return false
	}
	switch t.Status {
	case erasure.TaskQueued, erasure.TaskDispatched:
		return res.Kind == kindFor(t)
	case erasure.TaskRunning:
		return res.Kind == bus.KindPoll
	}
	return false // done, failed (this attempt already reported) or dead
}

// applyToTask sets task's new state from res and reports whether it is
// worth an event (a still-running job is not).
func (c *Coordinator) applyToTask(t *erasure.Task, req erasure.Request, res bus.Result, now time.Time) bool {
	prev := t.Status
	t.UpdatedAt = now
	t.NextAttemptAt, t.NextPollAt = time.Time{}, time.Time{}
	for _, ev := range res.Evidence {
		if !slices.Contains(t.Evidence, ev) {
			t.Evidence = append(t.Evidence, ev)
		}
	}
	if res.Records > 0 {
		t.RecordsErased = res.Records
	}
	if res.RecordsUnknown {
		t.RecordsUnknown = true
	}
	if res.Kind == bus.KindErase && len(res.SearchedBy) > 0 {
		t.SearchedBy = res.SearchedBy
	}
	switch res.Status {
	case bus.ResultErased, bus.ResultNotFound:
		t.Status = erasure.TaskErased
		if res.Status == bus.ResultNotFound && t.RecordsErased == 0 && !t.RecordsUnknown {
			t.Status = erasure.TaskNotFound
		}
		t.Verified, t.LastError, t.CompletedAt = res.Verification, "", now
	case bus.ResultRunning:
		changed := prev != erasure.TaskRunning || res.JobRef != t.JobRef
		t.Status, t.JobRef = erasure.TaskRunning, res.JobRef
		poll := time.Duration(res.PollAfterSeconds) * time.Second
		if poll <= 0 {
			poll = c.cfg.PollInterval
		}
		t.NextPollAt = now.Add(poll)
		return changed
	case bus.ResultFailed:
		// External connectors may not redact; never store an identifier.
		t.LastError = req.Subject.Redact(truncate(res.Error.Message, 1000))
		if res.Error.Permanent || t.Attempt >= c.maxAttempts(t.Connector) {
			t.Status = erasure.TaskDead
		} else {
			t.Status = erasure.TaskFailed
			after := time.Duration(res.Error.RetryAfterSeconds) * time.Second
			t.NextAttemptAt = now.Add(c.retryDelay(t.Attempt, after))
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// applyResolve records a resolver's answer: what it found joins the
// request's subject (see mergeResolution), and the resolver's task is
// resolved, or dead when what it found cannot be merged.
func (c *Coordinator) applyResolve(ctx context.Context, tx store.Tx, req *erasure.Request, t *erasure.Task, res bus.Result, now time.Time) error {
	if res.Status != bus.ResultResolved {
		c.applyToTask(t, *req, res, now)
		return nil
	}
	t.UpdatedAt, t.NextAttemptAt = now, time.Time{}
	if len(res.SearchedBy) > 0 {
		t.SearchedBy = res.SearchedBy
	}
	m := c.mergeResolution(req, c.byName[t.Connector], res.Identifiers)
	t.Found = m.found
	for _, ev := range append(res.Evidence, m.notes...) {
		if !slices.Contains(t.Evidence, ev) {
			t.Evidence = append(t.Evidence, ev)
		}
	}
	if len(m.added) > 0 {
		if err := c.storeIdentifiers(ctx, tx, *req, m.added, erasure.EventIdentifiersResolved,
			"connector:"+t.Connector, "", t.Connector, now); err != nil {
			return err
		}
	}
	if len(m.conflicts) > 0 {
		t.Status = erasure.TaskDead
		t.LastError = t.Connector + " found " + strings.Join(m.conflicts, " and ") +
			": Lethe holds one identifier of each kind and will not pick one, as the other's data would be left unsearched. " +
			"Correct the records and retry, or declare this look-up not applicable and handle the other record with its own request"
		return nil
	}
	t.Status, t.LastError, t.CompletedAt = erasure.TaskResolved, "", now
	return nil
}

// advanceRequest moves the request's phases on (see settle), then to the
// state its tasks imply and, when they are all done, issues the
// certificate.
func (c *Coordinator) advanceRequest(ctx context.Context, tx store.Tx, req *erasure.Request, now time.Time) (certified bool, err error) {
	if req.Status.Final() {
		return false, nil // e.g. cancelled: tasks still record what happened
	}
	tasks, err := tx.Tasks(ctx, req.ID)
	if err != nil {
		return false, err
	}
	if err := c.settle(ctx, tx, req, tasks, now); err != nil {
		return false, err
	}
	if tasks, err = tx.Tasks(ctx, req.ID); err != nil {
		return false, err
	}
	next := erasure.Aggregate(tasks)
	if next == req.Status {
		return false, nil
	}
	ev, err := setStatus(ctx, tx, req, next, erasure.ActorCoordinator, "", now)
	if err != nil || !next.Final() {
		return false, err
	}
	cert, err := c.certifier.Issue(ctx, tx, *req, tasks, ev.Hash, now)
	if err != nil {
		return false, fmt.Errorf("issue certificate: %w", err)
	}
	if err := tx.InsertCertificate(ctx, cert); err != nil {
		return false, err
	}
	// The person is erased: keep their keyed hashes so they are not
	// re-created and are erased again after a backup restore.
	// The identifiers resolvers found are included: replay finds the person
	// by any of them.
	if err := tx.AddSuppressions(ctx, req.ID, c.hasher.Ref(req.Subject).Identifiers, now); err != nil {
		return false, err
	}
	if err := c.scheduleRechecks(ctx, tx, *req, tasks, now); err != nil {
		return false, err
	}
	sum := sha256.Sum256(cert.Document)
	_, err = tx.AppendEvent(ctx, erasure.NewEvent(req.ID, "", erasure.EventCertificateIssue, erasure.ActorCoordinator, "",
		map[string]string{"certificate_id": cert.ID, "key_id": cert.KeyID, "sha256": hex.EncodeToString(sum[:])}, now))
	if err != nil {
		return false, err
	}
	return true, c.notice(ctx, tx, *req, bus.NoticeCompleted, now)
}

// RunResults applies results from the coordinator's durable consumer until
// ctx ends, with workers goroutines in parallel. A result that cannot be
// applied now (store down) is redelivered later; one that can never be
// (malformed) is terminated and logged.
func (c *Coordinator) RunResults(ctx context.Context, cons jetstream.Consumer, workers int) error {
	iter, err := cons.Messages(bus.PullOptions(2 * workers)...)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				c.handleResult(ctx, m)
			}
		}()
	}
	defer func() {
		close(msgs)
		wg.Wait()
	}()
	for {
		m, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			c.log.Warn("results: fetch failed", zap.Error(err))
			continue
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return nil
		}
	}
}

func (c *Coordinator) handleResult(ctx context.Context, m jetstream.Msg) {
	res, err := bus.DecodeResult(m.Data())
	if err != nil {
		c.log.Error("results: malformed result message dropped", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.Term()
		return
	}
	if _, err := c.ApplyResult(ctx, res); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("results: will retry", zap.String("task_id", res.TaskID), zap.Error(err))
		}
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Cross-request batching. For an instance whose connector erases many
// people a call (connectors.BatchEraser) and whose BatchWindow is set, the
// runner pulls up to BatchMax tasks at once, waiting at most BatchWindow
// for them to gather, from whatever requests they belong to. Its erase
// tasks go to the vendor together, its poll tasks too when the connector
// polls in batches; resolves and re-checks run one by one as always.
// Every task still gets its own result message and its own ack, so a
// crash in the middle of a batch redelivers each task, and each finds its
// way into another batch.

// DefaultBatchWindow is how long a batching instance waits for tasks to
// gather before it calls the vendor with what it has.
const DefaultBatchWindow = time.Second

// maxBatchPull bounds one pull (Segment's 5,000 a regulation): the task
// consumer lets no more than 10,000 be held at once across every process.
const maxBatchPull = 5000

// batcher is the runner's connector as a batch eraser, or nil when the
// instance erases one person a call.
func (r *runner) batcher() connectors.BatchEraser {
	b, ok := r.in.Connector.(connectors.BatchEraser)
	if !ok || r.in.BatchWindow <= 0 || b.BatchLimit() < 2 {
		return nil
	}
	return b
}

// batchMax is how many tasks one pull takes: the instance's BatchMax, at
// most the vendor's limit (and maxBatchPull).
func (r *runner) batchMax(b connectors.BatchEraser) int {
	n := b.BatchLimit()
	if r.in.BatchMax > 0 {
		n = min(n, r.in.BatchMax)
	}
	return max(min(n, maxBatchPull), 2)
}

// runBatched is run's loop for a batching instance: each pull holds one of
// the instance's Concurrency slots until every task in it has reported.
func (r *runner) runBatched(ctx, work context.Context, b connectors.BatchEraser, sem chan struct{}, wg *sync.WaitGroup) {
	size := r.batchMax(b)
	r.batchSize = size
	for ctx.Err() == nil {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		fctx, cancel := context.WithTimeout(ctx, r.in.BatchWindow)
		batch, err := r.cons.Fetch(size, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			<-sem
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("fetch failed; will retry", zap.Error(err))
			sleepCtx(ctx, time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for msg := range batch.Messages() {
			msgs = append(msgs, msg)
		}
		cancel()
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			r.log.Debug("fetch ended early", zap.Error(err))
		}
		if len(msgs) == 0 {
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.handleSet(work, b, msgs)
		}()
	}
}

// pending is a task of a pulled set, with its message.
type pending struct {
	msg  jetstream.Msg
	task bus.Task
	log  *zap.Logger
}

// handleSet runs one pulled set of tasks: erases in batches, polls in
// batches when the connector polls so, the rest one by one; at most the
// instance's Concurrency of them run a vendor call of their own at once.
func (r *runner) handleSet(ctx context.Context, b connectors.BatchEraser, msgs []jetstream.Msg) {
	var erases, polls, singles []pending
	bp, pollsBatched := b.(connectors.BatchPoller)
	for _, msg := range msgs {
		task, ok := r.decode(msg)
		if !ok {
			continue
		}
		p := pending{msg: msg, task: task, log: r.taskLog(task)}
		switch {
		case task.Kind == bus.KindErase:
			erases = append(erases, p)
		case task.Kind == bus.KindPoll && pollsBatched:
			polls = append(polls, p)
		default:
			singles = append(singles, p)
		}
	}
	stops := make([]func(), 0, len(msgs))
	for _, msg := range msgs {
		stops = append(stops, heartbeat(msg, r.w.Topology))
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	slots := make(chan struct{}, r.in.Concurrency)
	var wg sync.WaitGroup
	one := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			fn()
		}()
	}
	for _, p := range singles {
		one(func() { r.report(ctx, p.msg, p.task, r.execute(ctx, p.task, p.log), p.log) })
	}
	if len(erases) > 0 {
		items := r.batchCalls(ctx, bus.KindErase, erases, func(ctx context.Context, set []pending) ([]connectors.Item, error) {
			subjects := make([]connectors.Subject, len(set))
			for i, p := range set {
				subjects[i] = p.task.Subject
			}
			return b.EraseBatch(ctx, subjects)
		})
		r.finishAll(ctx, erases, items, one)
	}
	if len(polls) > 0 {
		items := r.batchCalls(ctx, bus.KindPoll, polls, func(ctx context.Context, set []pending) ([]connectors.Item, error) {
			refs := make([]string, len(set))
			for i, p := range set {
				refs[i] = p.task.JobRef
			}
			return bp.PollBatch(ctx, refs)
		})
		r.finishAll(ctx, polls, items, one)
	}
	wg.Wait()
}

// finishAll describes and reports each task of a batch call, with its
// post-erasure lookup when one is due.
func (r *runner) finishAll(ctx context.Context, set []pending, items []batchItem, one func(func())) {
	checked := r.verifyBatch(ctx, set, items)
	for i, p := range set {
		one(func() {
			res := bus.Result{V: bus.Version, Kind: p.task.Kind, TaskID: p.task.TaskID, RequestID: p.task.RequestID,
				Connector: r.in.Name, Attempt: p.task.Attempt, StartedAt: items[i].started}
			res = r.finish(ctx, p.task, res, items[i].Outcome, items[i].Err, p.log, checked[i], items[i].others...)
			r.report(ctx, p.msg, p.task, res, p.log)
		})
	}
}

// verifyBatch runs the post-erasure lookups of a batch together, when the
// connector can: each subject found gone needs no lookup of its own. One
// still found, or whose lookup failed, or a batch lookup that failed, is
// left nil: finish looks it up alone, with the single path's retries.
func (r *runner) verifyBatch(ctx context.Context, set []pending, items []batchItem) []*connectors.Verification {
	out := make([]*connectors.Verification, len(set))
	bv, ok := r.in.Connector.(connectors.BatchVerifier)
	if !ok {
		return out
	}
	var due []int
	for i, it := range items {
		if it.Err == nil && (it.Outcome.Status == connectors.StatusErased || it.Outcome.Status == connectors.StatusNotFound) {
			due = append(due, i)
		}
	}
	for _, c := range connectors.Chunks(len(due), r.batchSize) {
		idx := due[c[0]:c[1]]
		subjects := make([]connectors.Subject, len(idx))
		for j, i := range idx {
			subjects[j] = set[i].task.Subject
		}
		var got []connectors.Checked
		err := r.retry(ctx, quickRetries, 10*time.Second, 2*time.Second, nil, func() error {
			cctx, cancel := context.WithTimeout(r.throttled(r.metered(ctx)), r.w.Timeout)
			defer cancel()
			start := time.Now()
			var err error
			got, err = bv.VerifyBatch(cctx, subjects)
			if err == nil && len(got) != len(subjects) {
				err = connectors.Permanentf("batch lookup answered for %d of %d", len(got), len(subjects))
			}
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			r.w.Metrics.ConnectorCall(r.in.Name, "verify_batch", outcome, time.Since(start))
			return err
		})
		if err != nil {
			r.log.Warn("batch lookup failed; each is looked up alone", zap.Int("size", len(idx)),
				zap.String("error", erasure.RedactValues(err.Error(), subjectValues(subjects)...)))
			continue
		}
		for j, i := range idx {
			if got[j].Err == nil && got[j].Verification.Remaining == 0 {
				v := got[j].Verification
				out[i] = &v
			}
		}
	}
	return out
}

func pendingValues(set []pending) []string {
	var vs []string
	for _, p := range set {
		vs = append(vs, p.task.Subject.Values()...)
	}
	return vs
}

func subjectValues(subjects []connectors.Subject) []string {
	var vs []string
	for _, s := range subjects {
		vs = append(vs, s.Values()...)
	}
	return vs
}

// batchItem is a task's part of a batch call; others are the identifiers
// of the rest of the batch, redacted from an error of the whole call.
type batchItem struct {
	connectors.Item
	started time.Time
	others  []string
}

// batchCalls calls the vendor for the whole set, in runs of at most the
// connector's limit. A run the vendor refuses for good is split in
// halves and each tried again, down to single tasks, so one person the
// vendor will not take never fails the others; a run that fails for a
// while (the vendor down, a rate limit) fails all its tasks, retryably,
// and the coordinator schedules them again.
func (r *runner) batchCalls(ctx context.Context, kind string, set []pending, call func(context.Context, []pending) ([]connectors.Item, error)) []batchItem {
	out := make([]batchItem, len(set))
	var run func(lo, hi int)
	run = func(lo, hi int) {
		started := r.w.Clock()
		var got []connectors.Item
		err := r.retry(ctx, quickRetries, 10*time.Second, 2*time.Second, nil, func() error {
			cctx, cancel := context.WithTimeout(r.throttled(r.metered(ctx)), r.w.Timeout)
			defer cancel()
			start := time.Now()
			var err error
			got, err = call(cctx, set[lo:hi])
			if err == nil {
				err = connectors.CheckItems(got, hi-lo)
			}
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			r.w.Metrics.ConnectorCall(r.in.Name, kind+"_batch", outcome, time.Since(start))
			return err
		})
		if err == nil {
			for i := range got {
				out[lo+i] = batchItem{Item: got[i], started: started}
			}
			return
		}
		if perm, _ := connectors.Classify(err); perm && hi-lo > 1 && ctx.Err() == nil {
			r.log.Info("batch refused; trying its halves", zap.String("kind", kind), zap.Int("size", hi-lo),
				zap.String("error", erasure.RedactValues(err.Error(), pendingValues(set[lo:hi])...)))
			mid := (lo + hi) / 2
			run(lo, mid)
			run(mid, hi)
			return
		}
		var others []string
		if hi-lo > 1 {
			others = pendingValues(set[lo:hi])
		}
		for i := lo; i < hi; i++ {
			out[i] = batchItem{Item: connectors.Item{Err: err}, started: started, others: others}
		}
	}
	for _, c := range connectors.Chunks(len(set), r.batchSize) {
		run(c[0], c[1])
	}
	return out
}

// maxThrottlePause is the longest pause a vendor's "too many requests" may
// name for a batch call to wait it out in place; a longer one fails the
// call, and the coordinator schedules its tasks after the pause.
const maxThrottlePause = 30 * time.Second

// throttled lets a batch call wait out a vendor's "too many requests" and
// send the request again (connectors.Throttled), instead of failing the
// whole batch and its requests already made: the refused endpoint's
// limiter (else the instance's) is slowed and paused in every process, as
// for a refusal that fails a call.
func (r *runner) throttled(ctx context.Context) context.Context {
	return connectors.WithThrottle(ctx, func(ctx context.Context, op string, after time.Duration) bool {
		if after > maxThrottlePause {
			return false
		}
		r.slower(ctx, op)
		if after > 0 {
			r.pause(ctx, op, after)
		}
		return ctx.Err() == nil
	})
}

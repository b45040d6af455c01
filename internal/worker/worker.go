// Package worker runs connectors: for each connector instance it consumes
// the instance's task stream with at most Concurrency tasks in flight, holds
// to the instance's rate limit (and to any Retry-After the system sends),
// calls Erase, Poll and Verify, and reports each outcome on the result
// stream before acknowledging the task. An instance whose connector
// erases many people a call (connectors.BatchEraser) gets its tasks in
// batches gathered across requests (batch.go).
//
// Delivery is at least once: a worker that dies after erasing but before
// reporting gets the task again, erases again (connectors are idempotent),
// and reports then.
package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/failpoint"
	"github.com/lethe-dev/lethe/internal/ratelimit"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Instance is one configured connector instance.
type Instance struct {
	Name      string
	Type      string
	Connector connectors.Connector
	// Plan says what the instance is searched by and, for a resolver,
	// what it looks people up by.
	Plan          connectors.Plan
	Concurrency   int
	RatePerSecond float64 // 0: unlimited
	Burst         int
	// RateHeadroom widens the spacing of calls (nil: ratelimit.DefaultHeadroom).
	RateHeadroom *float64
	// Endpoints are limits of some of the vendor's endpoints below the
	// instance's, by the op their requests name (connectors.Limits).
	Endpoints map[string]connectors.Rate
	// BatchWindow, for a connector that erases many people a call
	// (connectors.BatchEraser), is how long tasks gather before the vendor
	// is called with them all; 0 erases one person a call.
	BatchWindow time.Duration
	// BatchMax caps a batch below the connector's BatchLimit (0: no cap).
	BatchMax int
}

// Worker runs connector instances.
type Worker struct {
	JS       jetstream.JetStream
	Topology bus.Topology
	Log      *zap.Logger
	Metrics  *telemetry.Metrics
	Crash    *failpoint.Set
	// Timeout bounds one Erase, Poll or Verify call (default 5m).
	Timeout time.Duration
	// Grace is how long in-flight tasks may finish after shutdown begins
	// (default 10s); then they are cancelled and handed back to JetStream.
	Grace time.Duration
	// Clock stamps result times (default: system clock).
	Clock erasure.Clock
}

// Run runs every instance until ctx ends and in-flight tasks have finished
// or been handed back.
func (w *Worker) Run(ctx context.Context, instances []Instance) error {
	if w.Timeout <= 0 {
		w.Timeout = 5 * time.Minute
	}
	if w.Grace <= 0 {
		w.Grace = 10 * time.Second
	}
	if w.Clock == nil {
		w.Clock = erasure.SystemClock
	}
	rates, err := ratelimit.EnsureBucket(ctx, w.JS, w.Topology.Replicas)
	if err != nil {
		return err
	}
	runners := make([]*runner, 0, len(instances))
	for _, in := range instances {
		if _, outside := in.Connector.(connectors.Outsider); outside {
			continue // another process consumes its tasks
		}
		cons, err := w.Topology.WorkerConsumer(ctx, w.JS, in.Name)
		if err != nil {
			return err
		}
		runners = append(runners, newRunner(w, in, cons, rates))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(runners))
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.run(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

type runner struct {
	w    *Worker
	in   Instance
	cons jetstream.Consumer
	log  *zap.Logger
	// limiter holds the instance to its rate and to any Retry-After,
	// across every process that runs it.
	limiter *ratelimit.Limiter
	// endpoints hold the endpoints with limits of their own to them, by
	// op, across every process as limiter does.
	endpoints map[string]*ratelimit.Limiter
	// batchSize is the most tasks one batch call takes (set by
	// runBatched, for a batching instance).
	batchSize int
}

func newRunner(w *Worker, in Instance, cons jetstream.Consumer, rates jetstream.KeyValue) *runner {
	if in.Concurrency <= 0 {
		in.Concurrency = 4
	}
	r := &runner{w: w, in: in, cons: cons, log: w.Log.With(zap.String("connector", in.Name)),
		limiter: ratelimit.New(rates, in.Name, in.RatePerSecond, in.Burst, ratelimit.Options{Headroom: in.RateHeadroom})}
	r.endpoints = make(map[string]*ratelimit.Limiter, len(in.Endpoints))
	for op, rate := range in.Endpoints {
		r.endpoints[op] = ratelimit.New(rates, endpointKey(in.Name, op), rate.PerSecond, rate.Burst, ratelimit.Options{Headroom: in.RateHeadroom})
	}
	return r
}

// endpointKey is the rate-limit entry of the instance's endpoint op:
// instance names hold no '.', so it is no instance's key.
func endpointKey(instance, op string) string {
	b := []byte(op)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			b[i] = '_'
		}
	}
	return instance + "." + string(b)
}

func (r *runner) run(ctx context.Context) error {
	go r.limiter.Follow(ctx)
	for _, l := range r.endpoints {
		go l.Follow(ctx)
	}
	// Calls run under work, which outlives ctx by the grace period so a
	// shutdown lets short erasures finish instead of redoing them.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sem := make(chan struct{}, r.in.Concurrency)
	var wg sync.WaitGroup
	defer func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(r.w.Grace):
			cancelWork()
			<-done
		}
	}()
	if b := r.batcher(); b != nil {
		r.runBatched(ctx, work, b, sem, &wg)
		return nil
	}
	for ctx.Err() == nil {
		// Take every free slot (waiting for one), then ask for that many
		// tasks: a process never holds a task it cannot start yet, which
		// would sit without progress signals while another process could
		// run it.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		slots := 1
	more:
		for slots < r.in.Concurrency {
			select {
			case sem <- struct{}{}:
				slots++
			default:
				break more
			}
		}
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		batch, err := r.cons.Fetch(slots, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			release(sem, slots)
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("fetch failed; will retry", zap.Error(err))
			sleepCtx(ctx, time.Second)
			continue
		}
		for msg := range batch.Messages() {
			slots--
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				r.handle(work, msg)
			}()
		}
		cancel()
		release(sem, slots)
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			r.log.Debug("fetch ended early", zap.Error(err))
		}
	}
	return nil
}

// fetchWait bounds one pull: short, so a process whose NATS server went
// away asks another within seconds.
const fetchWait = 5 * time.Second

func release(sem chan struct{}, n int) {
	for range n {
		<-sem
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (r *runner) handle(ctx context.Context, msg jetstream.Msg) {
	task, ok := r.decode(msg)
	if !ok {
		return
	}
	log := r.taskLog(task)
	stop := heartbeat(msg, r.w.Topology)
	res := r.execute(ctx, task, log)
	stop()
	r.report(ctx, msg, task, res, log)
}

// decode reads a task message; a malformed one, or one for another
// instance, is dropped for good.
func (r *runner) decode(msg jetstream.Msg) (bus.Task, bool) {
	task, err := bus.DecodeTask(msg.Data())
	if err == nil && task.Connector != r.in.Name {
		err = fmt.Errorf("task for connector %q arrived at %q", task.Connector, r.in.Name)
	}
	if err != nil {
		r.log.Error("malformed task message dropped", zap.Error(err))
		_ = msg.Term()
		return bus.Task{}, false
	}
	return task, true
}

func (r *runner) taskLog(task bus.Task) *zap.Logger {
	return r.log.With(zap.String("request_id", task.RequestID), zap.String("task_id", task.TaskID),
		zap.String("kind", task.Kind), zap.Int("attempt", task.Attempt))
}

// report publishes a task's result and acknowledges its message; a result
// that cannot be published leaves the task to be delivered again.
func (r *runner) report(ctx context.Context, msg jetstream.Msg, task bus.Task, res bus.Result, log *zap.Logger) {
	if meta, err := msg.Metadata(); err == nil && meta.NumDelivered > 1 && res.Status == bus.ResultNotFound && task.Kind != bus.KindRecheck {
		// The same task ran before and did not report (a crash, a lost
		// connection): that run may have erased what this one did not find.
		res.Evidence = append(res.Evidence, erasure.Evidence{Kind: "redelivered",
			Value: fmt.Sprintf("delivery %d of this task: an earlier, interrupted run may have removed records this search no longer found", meta.NumDelivered)})
	}
	if ctx.Err() != nil {
		_ = msg.Nak() // shutting down: someone else will do it
		return
	}
	if task.Kind == bus.KindResolve {
		r.w.Crash.Hit("worker.after_resolve")
	} else {
		r.w.Crash.Hit("worker.after_erase")
	}
	body, err := json.Marshal(res)
	if err != nil {
		log.Error("encode result", zap.Error(err))
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	pubCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := r.w.JS.Publish(pubCtx, bus.ResultSubject(r.in.Name), body, jetstream.WithMsgID(resultMsgID(msg, task))); err != nil {
		log.Warn("report failed; the task will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	r.w.Crash.Hit("worker.after_report")
	if err := msg.Ack(); err != nil {
		log.Warn("ack failed; the task may be redelivered", zap.Error(err))
	}
}

// resultMsgID derives the result's Nats-Msg-Id from the task message's, so
// a redelivered task yields a result JetStream recognises as a duplicate.
func resultMsgID(msg jetstream.Msg, t bus.Task) string {
	if h := msg.Headers(); h != nil {
		if id := h.Get(jetstream.MsgIDHeader); id != "" {
			return "result-" + id
		}
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%s/%s", t.TaskID, t.Attempt, t.Kind, t.JobRef))
	return "result-" + hex.EncodeToString(sum[:12])
}

// heartbeat tells JetStream the task is still being worked on, so a long
// vendor call is not handed to a second worker.
func heartbeat(msg jetstream.Msg, t bus.Topology) (stop func()) {
	every := t.AckWait / 3
	if every <= 0 {
		every = 20 * time.Second
	}
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// quickRetries is how often a transient failure is retried in-process
// before it is reported; longer waits are the coordinator's, persisted.
const quickRetries = 2

// retry runs fn with the instance's rate limit before each try and up to
// tries quick in-process retries of transient failures. A pause the
// system asks for holds the whole instance; waits longer than maxPause,
// and permanent errors, are returned at once (long waits are the
// coordinator's, persisted). done, when set, ends the retries early for
// errors that retrying will not change.
func (r *runner) retry(ctx context.Context, tries uint64, maxElapsed, maxPause time.Duration, done func(error) bool, fn func() error) error {
	call := func() error {
		if err := r.waitTurn(ctx); err != nil {
			return backoff.Permanent(err)
		}
		err := fn()
		if err == nil || (done != nil && done(err)) {
			return backoff.Permanent(err)
		}
		perm, after := connectors.Classify(err)
		op := connectors.RateLimitedOp(err) // "": the instance
		if errors.Is(err, connectors.ErrRateLimited) {
			r.slower(ctx, op)
		}
		if after > 0 {
			r.pause(ctx, op, after)
		}
		// A turn beyond the call's deadline does not come within the quick
		// retries' seconds either.
		if perm || after > maxPause || errors.Is(err, ratelimit.ErrNoTurn) {
			return backoff.Permanent(err)
		}
		return err
	}
	quick := backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond), backoff.WithMaxElapsedTime(maxElapsed))
	return backoff.Retry(call, backoff.WithContext(backoff.WithMaxRetries(quick, tries), ctx))
}

// execute runs the connector for one task and describes the outcome.
func (r *runner) execute(ctx context.Context, t bus.Task, log *zap.Logger) bus.Result {
	res := bus.Result{V: bus.Version, Kind: t.Kind, TaskID: t.TaskID, RequestID: t.RequestID,
		Connector: r.in.Name, Attempt: t.Attempt, StartedAt: r.w.Clock()}
	switch t.Kind {
	case bus.KindResolve:
		return r.resolve(ctx, t, res, log)
	case bus.KindRecheck:
		return r.recheck(ctx, t, res, log)
	}
	var out connectors.Outcome
	err := r.retry(ctx, quickRetries, 10*time.Second, 2*time.Second, nil, func() error {
		var err error
		out, err = r.call(ctx, t)
		return err
	})
	return r.finish(ctx, t, res, out, err, log, nil)
}

// finish describes the outcome of an erase or poll, alone or in a batch,
// after the post-erasure lookup when it is due.
//
// checked, when set, is a batch lookup that already found the subject
// gone. others are identifiers besides the task's own that err may carry
// (the rest of a batch whose call failed): they are redacted too.
func (r *runner) finish(ctx context.Context, t bus.Task, res bus.Result, out connectors.Outcome, err error, log *zap.Logger,
	checked *connectors.Verification, others ...string) bus.Result {
	if err == nil {
		err = checkOutcome(out)
	}
	if err == nil && (out.Status == connectors.StatusErased || out.Status == connectors.StatusNotFound) {
		if checked != nil && checked.Remaining == 0 {
			out.Evidence = append(out.Evidence, checked.Evidence...)
			res.Verification = "clean"
		} else {
			res.Verification, err = r.verifyAfter(ctx, t, &out, log)
		}
	}
	res.FinishedAt = r.w.Clock()
	if err != nil {
		r.failed(&res, err, t.Subject, log, others...)
		res.Evidence = out.Evidence
		return res
	}
	res.Status, res.Records, res.JobRef, res.Evidence = string(out.Status), out.Records, out.JobRef, out.Evidence
	if out.Status == connectors.StatusErased && out.Uncounted {
		res.Records, res.RecordsUnknown = 0, true
	}
	if t.Kind == bus.KindErase {
		// What an erase was searched by; a later poll reports on that
		// search, whatever identifiers the request has gained since.
		res.SearchedBy = out.SearchedBy
		if len(res.SearchedBy) == 0 {
			res.SearchedBy = r.in.Plan.SearchedBy(t.Subject)
		}
	}
	if res.JobRef == "" {
		res.JobRef = t.JobRef // a finished poll names the job it polled
	}
	if out.Status == connectors.StatusRunning {
		res.PollAfterSeconds = int(out.PollAfter / time.Second)
	}
	log.Info("task done", zap.String("status", res.Status), zap.Int64("records", res.Records), zap.Bool("records_unknown", res.RecordsUnknown))
	return res
}

// failed describes err in res, with every identifier redacted.
func (r *runner) failed(res *bus.Result, err error, s connectors.Subject, log *zap.Logger, found ...string) {
	perm, after := connectors.Classify(err)
	msg := erasure.RedactValues(s.Redact(err.Error()), found...)
	res.Status = bus.ResultFailed
	res.Error = &bus.ResultError{
		Message:           msg,
		Permanent:         perm,
		RetryAfterSeconds: int((after + time.Second - 1) / time.Second),
	}
	log.Warn("task failed", zap.String("kind", res.Kind), zap.Bool("permanent", perm), zap.Duration("retry_after", after),
		zap.String("error", res.Error.Message))
}

// resolve looks the subject up and reports what the resolver found. The
// identifiers go back to the coordinator in the result message; they are
// never logged.
func (r *runner) resolve(ctx context.Context, t bus.Task, res bus.Result, log *zap.Logger) bus.Result {
	rs, ok := r.in.Connector.(connectors.Resolver)
	var found connectors.Resolution
	var err error
	if !ok || !r.in.Plan.Resolves() {
		err = connectors.Permanentf("connector %s (%s) cannot look people up", r.in.Name, r.in.Type)
	} else {
		err = r.lookUp(ctx, bus.KindResolve, func(ctx context.Context) (err error) {
			found, err = rs.Resolve(ctx, t.Subject)
			return err
		})
	}
	res.FinishedAt = r.w.Clock()
	res.SearchedBy = r.in.Plan.LooksUpBy(t.Subject)
	if err != nil {
		r.failed(&res, err, t.Subject, log, found.Values()...)
		return res
	}
	res.Status, res.Evidence = bus.ResultResolved, found.Evidence
	for k, vs := range found.Found {
		if len(vs) == 0 {
			continue
		}
		if res.Identifiers == nil {
			res.Identifiers = map[erasure.Kind][]string{}
		}
		res.Identifiers[k] = vs
	}
	kinds := make([]string, 0, len(res.Identifiers))
	for k := range res.Identifiers {
		kinds = append(kinds, string(k))
	}
	log.Info("looked up", zap.Strings("found_kinds", kinds))
	return res
}

// lookUp runs one look-up call (a resolve or a re-check) with the
// runtime's quick retries, each try metered, timed out and counted.
func (r *runner) lookUp(ctx context.Context, kind string, call func(ctx context.Context) error) error {
	return r.retry(ctx, quickRetries, 10*time.Second, 2*time.Second, nil, func() error {
		cctx, cancel := context.WithTimeout(r.metered(ctx), r.w.Timeout)
		defer cancel()
		start := time.Now()
		err := call(cctx)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		r.w.Metrics.ConnectorCall(r.in.Name, kind, outcome, time.Since(start))
		return err
	})
}

// recheck looks the subject up again, long after the request completed,
// and reports how many records remain: nothing is erased here (a person
// found again gets a re-erasure task of its own).
func (r *runner) recheck(ctx context.Context, t bus.Task, res bus.Result, log *zap.Logger) bus.Result {
	v, ok := r.in.Connector.(connectors.Verifier)
	var got connectors.Verification
	var err error
	if !ok {
		err = connectors.Permanentf("connector %s (%s) cannot look people up again", r.in.Name, r.in.Type)
	} else {
		err = r.lookUp(ctx, bus.KindRecheck, func(ctx context.Context) (err error) {
			got, err = v.Verify(ctx, t.Subject)
			return err
		})
	}
	res.FinishedAt = r.w.Clock()
	res.SearchedBy = r.in.Plan.SearchedBy(t.Subject)
	if err == nil && got.Remaining < 0 {
		err = connectors.Permanentf("connector reported a negative number of remaining records")
	}
	if err != nil {
		r.failed(&res, err, t.Subject, log)
		return res
	}
	res.Evidence = got.Evidence
	res.Status, res.Verification = bus.ResultNotFound, "clean"
	if got.Remaining > 0 {
		res.Status, res.Records, res.Verification = bus.ResultFound, got.Remaining, ""
	}
	log.Info("re-checked", zap.String("status", res.Status), zap.Int64("remaining", got.Remaining))
	return res
}

// metered gives a connector call its meter: the runtime has taken the
// turn for the call's first request (waitTurn), every further request
// the connector announces with connectors.WaitCall takes one more. A
// request to an endpoint with a limit of its own (Instance.Endpoints)
// first waits for that, every one of them, the first included: when no
// turn comes before the call's deadline it fails at once, saying so.
func (r *runner) metered(ctx context.Context) context.Context {
	var first atomic.Bool
	first.Store(true)
	return connectors.WithMeter(ctx, func(ctx context.Context, op string) error {
		if l := r.endpoints[op]; l != nil {
			start := time.Now()
			err := l.Wait(ctx)
			r.w.Metrics.RateLimitWait(r.in.Name, time.Since(start))
			if errors.Is(err, ratelimit.ErrNoTurn) {
				rate := r.in.Endpoints[op]
				return connectors.Retryable(fmt.Errorf("%s %s allows %s: none free before the call's deadline: %w",
					r.in.Type, op, rateWords(rate.PerSecond), err), 0)
			}
			if err != nil {
				return err
			}
		}
		if first.CompareAndSwap(true, false) {
			return ctx.Err()
		}
		return r.waitTurn(ctx)
	})
}

// rateWords says a rate as a vendor documents it: a second, a minute or
// an hour.
func rateWords(perSecond float64) string {
	n, per := perSecond, "a second"
	switch {
	case perSecond*60 < 1:
		n, per = perSecond*3600, "an hour"
	case perSecond < 1:
		n, per = perSecond*60, "a minute"
	}
	n = math.Round(n*1000) / 1000 // 1.0/3600 a second is 1 an hour, not 0.9999…
	if n == math.Trunc(n) {
		return connectors.Plural(int(n), "request") + " " + per
	}
	return strconv.FormatFloat(n, 'f', -1, 64) + " requests " + per
}

func (r *runner) call(ctx context.Context, t bus.Task) (connectors.Outcome, error) {
	ctx, cancel := context.WithTimeout(r.metered(ctx), r.w.Timeout)
	defer cancel()
	start := time.Now()
	var out connectors.Outcome
	var err error
	switch t.Kind {
	case bus.KindPoll:
		p, ok := r.in.Connector.(connectors.Poller)
		if !ok {
			return out, connectors.Permanentf("connector type %s cannot poll jobs", r.in.Type)
		}
		out, err = p.Poll(ctx, t.JobRef)
	default:
		out, err = r.in.Connector.Erase(ctx, t.Subject)
	}
	outcome := string(out.Status)
	if err != nil {
		outcome = "error"
	}
	r.w.Metrics.ConnectorCall(r.in.Name, t.Kind, outcome, time.Since(start))
	return out, err
}

// checkOutcome catches connector bugs before they reach the coordinator.
func checkOutcome(o connectors.Outcome) error {
	switch o.Status {
	case connectors.StatusErased, connectors.StatusNotFound:
		if o.Records < 0 {
			return connectors.Permanentf("connector reported a negative record count")
		}
	case connectors.StatusRunning:
		if o.JobRef == "" {
			return connectors.Permanentf("connector reported a running job without a job reference")
		}
	default:
		return connectors.Permanentf("connector reported an unknown status %q", o.Status)
	}
	return nil
}

// errRemaining marks a lookup that still finds the subject.
var errRemaining = errors.New("post-erasure lookup still finds records")

// verifyAfter runs the post-erasure lookup with the same quick retries and
// Retry-After pauses as the erase. The erase has happened by then, so a
// lookup that keeps failing must not fail the task: its retry would find
// nothing and report the records as never there. The task then finishes
// with verification "lookup_failed", which the certificate shows. Only a
// lookup that still finds the subject fails the task.
func (r *runner) verifyAfter(ctx context.Context, t bus.Task, out *connectors.Outcome, log *zap.Logger) (string, error) {
	if _, ok := r.in.Connector.(connectors.Verifier); !ok {
		return "not_available", nil // and no turn of the rate limit taken for it
	}
	var verdict string
	err := r.retry(ctx, 4, 20*time.Second, 5*time.Second, func(err error) bool { return errors.Is(err, errRemaining) }, func() error {
		var err error
		verdict, err = r.verify(ctx, t, out)
		return err
	})
	switch {
	case err == nil:
		return verdict, nil
	case errors.Is(err, errRemaining), ctx.Err() != nil:
		return "", err
	}
	log.Warn("post-erasure lookup failed; the task finishes without it", zap.String("error", t.Subject.Redact(err.Error())))
	return "lookup_failed", nil
}

// verify looks the subject up again after erasure, when the connector can.
func (r *runner) verify(ctx context.Context, t bus.Task, out *connectors.Outcome) (string, error) {
	v, ok := r.in.Connector.(connectors.Verifier)
	if !ok {
		return "not_available", nil
	}
	ctx, cancel := context.WithTimeout(r.metered(ctx), r.w.Timeout)
	defer cancel()
	start := time.Now()
	got, err := v.Verify(ctx, t.Subject)
	if err != nil {
		r.w.Metrics.ConnectorCall(r.in.Name, "verify", "error", time.Since(start))
		return "", fmt.Errorf("post-erasure lookup failed: %w", err)
	}
	r.w.Metrics.ConnectorCall(r.in.Name, "verify", "ok", time.Since(start))
	out.Evidence = append(out.Evidence, got.Evidence...)
	if got.Remaining > 0 {
		return "", connectors.Retryable(fmt.Errorf("%w: %d", errRemaining, got.Remaining), 0)
	}
	return "clean", nil
}

// waitTurn blocks until the instance's rate limit and any Retry-After pause
// allow another call.
func (r *runner) waitTurn(ctx context.Context) error {
	start := time.Now()
	defer func() { r.w.Metrics.RateLimitWait(r.in.Name, time.Since(start)) }()
	return r.limiter.Wait(ctx)
}

// slower spaces the instance's calls wider for a while, in every process:
// the vendor refused one as too many, although the limit was kept. A
// refusal of a request to an endpoint with a limit of its own (op) slows
// that endpoint's calls only: it was that budget the vendor refused.
func (r *runner) slower(ctx context.Context, op string) {
	if err := r.limiterFor(op).Slower(ctx); err != nil {
		r.log.Warn("could not share a vendor's refusal with other replicas", zap.Error(err))
	}
}

// pause holds every task of the instance, in every process, for d: a
// Retry-After is about the account, not the one request that received it,
// unless it answered a request to an endpoint with a limit of its own
// (op), whose calls alone it holds.
func (r *runner) pause(ctx context.Context, op string, d time.Duration) {
	if err := r.limiterFor(op).Pause(ctx, d); err != nil {
		r.log.Warn("could not share a vendor's pause with other replicas", zap.Error(err))
	}
}

// limiterFor is op's own limiter where the type registered one, else the
// instance's.
func (r *runner) limiterFor(op string) *ratelimit.Limiter {
	if l := r.endpoints[op]; l != nil {
		return l
	}
	return r.limiter
}

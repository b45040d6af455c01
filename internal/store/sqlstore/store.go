package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
)

// Store implements store.Store over a Conn.
type Store struct {
	conn Conn
	d    *Dialect
	rw   *rewriter
	keys seal.Wrapper
}

// New returns a Store over conn whose request identifiers are encrypted
// with data keys wrapped by keys. Migrate must have run. keys may be nil for
// a store that never holds requests (tests of other tables).
func New(conn Conn, d *Dialect, keys seal.Wrapper) *Store {
	return &Store{conn: conn, d: d, rw: &rewriter{d: d}, keys: keys}
}

var _ store.Store = (*Store)(nil)

const maxTxAttempts = 5

// InTx implements store.Store.
func (s *Store) InTx(ctx context.Context, fn func(store.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = s.inTx(ctx, fn)
		if err == nil || !s.d.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt*attempt) * 5 * time.Millisecond)
	}
	return err
}

func (s *Store) inTx(ctx context.Context, fn func(store.Tx) error) (err error) {
	txc, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = txc.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(&tx{q: txc, s: s}); err != nil {
		return err
	}
	if err = txc.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() { s.conn.Close() }

const requestCols = `id, status, jurisdiction, subject_enc, data_key, shredded_at, subject_ref, source,
	idempotency_key, created_by, received_at, due_at, completed_at, updated_at, extended_at,
	sources, original_due_at, extension_category, flag, flagged_at, batch`

const taskCols = `id, request_id, connector, connector_type, status, attempt, records_erased,
	job_ref, next_attempt_at, next_poll_at, last_error, evidence, verified,
	created_at, updated_at, completed_at, exemption_basis,
	phase, searched_by, found, records_unknown, reason`

const eventCols = `request_id, seq, type, task_id, actor, reason, data, at, prev_hash, hash`

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, id string) (erasure.Request, error) {
	return s.oneRequest(ctx, s.conn, `SELECT `+requestCols+` FROM requests WHERE id = $1`, id)
}

// RequestByIdempotencyKey implements store.Store.
func (s *Store) RequestByIdempotencyKey(ctx context.Context, key string) (erasure.Request, error) {
	return s.oneRequest(ctx, s.conn, `SELECT `+requestCols+` FROM requests WHERE idempotency_key = $1`, key)
}

func (s *Store) oneRequest(ctx context.Context, q Querier, query string, args ...any) (erasure.Request, error) {
	rs, err := s.queryRequests(ctx, q, query, args...)
	if err != nil {
		return erasure.Request{}, err
	}
	if len(rs) == 0 {
		return erasure.Request{}, fmt.Errorf("request: %w", store.ErrNotFound)
	}
	return rs[0], nil
}

// Requests implements store.Store.
func (s *Store) Requests(ctx context.Context, f store.RequestFilter) ([]erasure.Request, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.Statuses) > 0 {
		ph := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ph[i] = arg(string(st))
		}
		where = append(where, "status IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Before != "" {
		where = append(where, "id < "+arg(f.Before))
	}
	if !f.DueBefore.IsZero() {
		where = append(where, "due_at < "+arg(s.d.TimeArg(f.DueBefore)))
	}
	if !f.ReceivedFrom.IsZero() {
		where = append(where, "received_at >= "+arg(s.d.TimeArg(f.ReceivedFrom)))
	}
	if !f.ReceivedTo.IsZero() {
		where = append(where, "received_at < "+arg(s.d.TimeArg(f.ReceivedTo)))
	}
	if !f.CompletedBefore.IsZero() {
		where = append(where, "completed_at < "+arg(s.d.TimeArg(f.CompletedBefore)))
	}
	if f.Unshredded {
		where = append(where, "data_key IS NOT NULL")
	}
	if f.Flagged {
		where = append(where, "flag <> ''")
	}
	if f.Batch != "" {
		where = append(where, "batch = "+arg(f.Batch))
	}
	if f.WaitingForPerson {
		where = append(where, "EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = requests.id AND "+waitingForPerson+")")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, store.MaxLimit)
	q := `SELECT ` + requestCols + ` FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	switch {
	case f.ByDue:
		q += fmt.Sprintf(" ORDER BY due_at, id LIMIT %d OFFSET %d", limit, max(f.Offset, 0))
	default:
		q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit)
	}
	return s.queryRequests(ctx, s.conn, q, args...)
}

// waitingForPerson is true of a task (aliased t) that only a person can
// move on: it needs an identifier, or a manual system waits for staff.
const waitingForPerson = `(t.status = 'needs_identifier' OR (t.connector_type = 'manual' AND t.status = 'running'))`

// doneStatuses are the task statuses erasure.TaskStatus.Done accepts.
var doneStatuses = func() string {
	var q []string
	for _, st := range []erasure.TaskStatus{erasure.TaskErased, erasure.TaskNotFound, erasure.TaskExempted,
		erasure.TaskNotApplicable, erasure.TaskResolved, erasure.TaskFoundAgain} {
		q = append(q, "'"+string(st)+"'")
	}
	return strings.Join(q, ", ")
}()

// progressSums are the columns of a store.Progress over tasks (aliased
// t): the systems, those done, the tasks waiting for a person.
var progressSums = `SUM(CASE WHEN t.phase = 'erase' THEN 1 ELSE 0 END),
	SUM(CASE WHEN t.phase = 'erase' AND t.status IN (` + doneStatuses + `) THEN 1 ELSE 0 END),
	SUM(CASE WHEN ` + waitingForPerson + ` THEN 1 ELSE 0 END)`

// Progress implements store.Store.
func (s *Store) Progress(ctx context.Context, requestIDs []string) (map[string]store.Progress, error) {
	out := make(map[string]store.Progress, len(requestIDs))
	if len(requestIDs) == 0 {
		return out, nil
	}
	ph, args := placeholders(requestIDs)
	rows, err := s.conn.Query(ctx, s.rw.q(`SELECT request_id, `+progressSums+`
		FROM tasks t WHERE request_id IN (`+ph+`) AND `+mainPhases+` GROUP BY request_id`), args...)
	if err != nil {
		return nil, fmt.Errorf("query progress: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p store.Progress
		if err := rows.Scan(&id, &p.Systems, &p.Done, &p.WaitingForPerson); err != nil {
			return nil, fmt.Errorf("scan progress: %w", err)
		}
		out[id] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query progress: %w", err)
	}
	return out, nil
}

// Batches implements store.Store.
func (s *Store) Batches(ctx context.Context, limit int, now time.Time) ([]store.Batch, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, store.MaxLimit)
	rows, err := s.conn.Query(ctx, s.rw.q(fmt.Sprintf(`SELECT batch FROM requests WHERE batch <> ''
		GROUP BY batch ORDER BY MAX(id) DESC LIMIT %d`, limit)))
	if err != nil {
		return nil, fmt.Errorf("query batches: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan batch: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query batches: %w", err)
	}
	return s.batches(ctx, names, now)
}

// Batch implements store.Store.
func (s *Store) Batch(ctx context.Context, name string, now time.Time) (store.Batch, error) {
	bs, err := s.batches(ctx, []string{name}, now)
	if err != nil {
		return store.Batch{}, err
	}
	if len(bs) == 0 {
		return store.Batch{}, fmt.Errorf("batch: %w", store.ErrNotFound)
	}
	return bs[0], nil
}

// batches sums up the named batches, in the order named; a name no
// request carries is left out.
func (s *Store) batches(ctx context.Context, names []string, now time.Time) ([]store.Batch, error) {
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "" })
	if len(names) == 0 {
		return nil, nil
	}
	byName := make(map[string]*store.Batch, len(names))
	ph, args := placeholders(names)
	rows, err := s.conn.Query(ctx, s.rw.q(`SELECT batch, status, COUNT(*), MIN(received_at), MAX(received_at),
		SUM(CASE WHEN completed_at IS NULL AND due_at < $`+fmt.Sprint(len(names)+1)+` THEN 1 ELSE 0 END)
		FROM requests WHERE batch IN (`+ph+`) GROUP BY batch, status`), append(args, s.d.TimeArg(now))...)
	if err != nil {
		return nil, fmt.Errorf("query batch: %w", err)
	}
	for rows.Next() {
		var name, status string
		var n, overdue int
		var first, last time.Time
		if err := rows.Scan(&name, &status, &n, timeCol{&first}, timeCol{&last}, &overdue); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan batch: %w", err)
		}
		b := byName[name]
		if b == nil {
			b = &store.Batch{Name: name, ByStatus: map[erasure.RequestStatus]int{}, FirstReceived: first, LastReceived: last}
			byName[name] = b
		}
		b.Requests += n
		b.ByStatus[erasure.RequestStatus(status)] += n
		b.Overdue += overdue
		if first.Before(b.FirstReceived) {
			b.FirstReceived = first
		}
		if last.After(b.LastReceived) {
			b.LastReceived = last
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query batch: %w", err)
	}
	rows, err = s.conn.Query(ctx, s.rw.q(`SELECT r.batch, `+progressSums+`
		FROM tasks t JOIN requests r ON r.id = t.request_id
		WHERE r.batch IN (`+ph+`) AND t.`+mainPhases+` GROUP BY r.batch`), args...)
	if err != nil {
		return nil, fmt.Errorf("query batch progress: %w", err)
	}
	for rows.Next() {
		var name string
		var p store.Progress
		if err := rows.Scan(&name, &p.Systems, &p.Done, &p.WaitingForPerson); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan batch progress: %w", err)
		}
		if b := byName[name]; b != nil {
			b.Tasks = p
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query batch progress: %w", err)
	}
	out := make([]store.Batch, 0, len(byName))
	for _, n := range names {
		if b := byName[n]; b != nil {
			out = append(out, *b)
		}
	}
	return out, nil
}

func (s *Store) queryRequests(ctx context.Context, q Querier, query string, args ...any) ([]erasure.Request, error) {
	rows, err := q.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("query requests: %w", err)
	}
	defer rows.Close()
	var out []erasure.Request
	for rows.Next() {
		var r erasure.Request
		var sealed, dataKey, ref []byte
		var sources string
		if err := rows.Scan(&r.ID, &r.Status, &r.Jurisdiction, &sealed, &dataKey, timeCol{&r.ShreddedAt}, &ref, &r.Source,
			&r.IdempotencyKey, &r.CreatedBy, timeCol{&r.ReceivedAt}, timeCol{&r.DueAt}, timeCol{&r.CompletedAt}, timeCol{&r.UpdatedAt},
			timeCol{&r.ExtendedAt}, &sources, timeCol{&r.OriginalDueAt}, &r.ExtensionCategory, &r.Flag, timeCol{&r.FlaggedAt}, &r.Batch); err != nil {
			return nil, fmt.Errorf("scan request: %w", err)
		}
		if err := json.Unmarshal(ref, &r.SubjectRef); err != nil {
			return nil, fmt.Errorf("request %s subject ref: %w", r.ID, err)
		}
		if err := json.Unmarshal([]byte(sources), &r.Sources); err != nil {
			return nil, fmt.Errorf("request %s sources: %w", r.ID, err)
		}
		if dataKey != nil {
			if err := s.open(ctx, &r, sealed, dataKey); err != nil {
				return nil, err
			}
		}
		if len(r.Sources) == 0 {
			// Stored before sources were: everything came with the request.
			r.Sources = erasure.Sources{}
			for _, id := range r.SubjectRef.Identifiers {
				r.Sources[erasure.Kind(id.Kind)] = erasure.SourceRequest
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query requests: %w", err)
	}
	return out, nil
}

// Tasks implements store.Store: the resolve and erase tasks.
func (s *Store) Tasks(ctx context.Context, requestID string) ([]erasure.Task, error) {
	return s.queryTasks(ctx, s.conn, `SELECT `+taskCols+` FROM tasks WHERE request_id = $1 AND `+mainPhases+` ORDER BY phase DESC, connector`, requestID)
}

// mainPhases keeps the tasks that make up a request's erasure; the
// others are follow-ups of a completed request (see erasure.Task.FollowUp).
const mainPhases = `phase IN ('resolve', 'erase')`

// FollowUps implements store.Store.
func (s *Store) FollowUps(ctx context.Context, requestID string) ([]erasure.Task, error) {
	return s.followUps(ctx, s.conn, requestID)
}

func (s *Store) followUps(ctx context.Context, q Querier, requestID string) ([]erasure.Task, error) {
	return s.queryTasks(ctx, q, `SELECT `+taskCols+` FROM tasks WHERE request_id = $1 AND NOT `+mainPhases+` ORDER BY created_at, phase, connector`, requestID)
}

func (s *Store) queryTasks(ctx context.Context, q Querier, query string, args ...any) ([]erasure.Task, error) {
	rows, err := q.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("query tasks: %w", err)
	}
	defer rows.Close()
	var out []erasure.Task
	for rows.Next() {
		var t erasure.Task
		var evidence []byte
		var searched, found string
		var unknown int
		if err := rows.Scan(&t.ID, &t.RequestID, &t.Connector, &t.ConnectorType, &t.Status, &t.Attempt,
			&t.RecordsErased, &t.JobRef, timeCol{&t.NextAttemptAt}, timeCol{&t.NextPollAt}, &t.LastError,
			&evidence, &t.Verified, timeCol{&t.CreatedAt}, timeCol{&t.UpdatedAt}, timeCol{&t.CompletedAt}, &t.ExemptionBasis,
			&t.Phase, &searched, &found, &unknown, &t.Reason); err != nil {
			return nil, fmt.Errorf("scan task: %w", err)
		}
		t.RecordsUnknown = unknown != 0
		if err := json.Unmarshal(evidence, &t.Evidence); err != nil {
			return nil, fmt.Errorf("task %s evidence: %w", t.ID, err)
		}
		if err := json.Unmarshal([]byte(searched), &t.SearchedBy); err != nil {
			return nil, fmt.Errorf("task %s searched_by: %w", t.ID, err)
		}
		if err := json.Unmarshal([]byte(found), &t.Found); err != nil {
			return nil, fmt.Errorf("task %s found: %w", t.ID, err)
		}
		if len(t.SearchedBy) == 0 {
			t.SearchedBy = nil
		}
		if len(t.Found) == 0 {
			t.Found = nil
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query tasks: %w", err)
	}
	return out, nil
}

// TaskByJobRef implements store.Store.
func (s *Store) TaskByJobRef(ctx context.Context, connector, jobRef string) (erasure.Task, error) {
	ts, err := s.queryTasks(ctx, s.conn, `SELECT `+taskCols+` FROM tasks WHERE connector = $1 AND job_ref = $2 ORDER BY created_at DESC LIMIT 1`, connector, jobRef)
	if err == nil && len(ts) == 0 && jobRef != "" {
		// An earlier attempt's job: the task, whose JobRef is now another.
		ts, err = s.queryTasks(ctx, s.conn, `SELECT `+taskCols+` FROM tasks WHERE id =
			(SELECT task_id FROM task_job_refs WHERE connector = $1 AND job_ref = $2)`, connector, jobRef)
	}
	if err != nil {
		return erasure.Task{}, err
	}
	if len(ts) == 0 || jobRef == "" {
		return erasure.Task{}, fmt.Errorf("task: %w", store.ErrNotFound)
	}
	return ts[0], nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, requestID string) ([]erasure.Event, error) {
	return s.queryEvents(ctx, s.conn, `SELECT `+eventCols+` FROM events WHERE request_id = $1 ORDER BY seq`, requestID)
}

func (s *Store) queryEvents(ctx context.Context, q Querier, query string, args ...any) ([]erasure.Event, error) {
	rows, err := q.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []erasure.Event
	for rows.Next() {
		var e erasure.Event
		var data string
		if err := rows.Scan(&e.RequestID, &e.Seq, &e.Type, &e.TaskID, &e.Actor, &e.Reason, &data,
			timeCol{&e.At}, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		e.Data = json.RawMessage(data)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	return out, nil
}

const certificateCols = `request_id, id, key_id, document, issued_at, COALESCE(log_index, -1)`

// Certificate implements store.Store.
func (s *Store) Certificate(ctx context.Context, requestID string) (store.Certificate, error) {
	return s.oneCertificate(ctx, `SELECT `+certificateCols+` FROM certificates WHERE request_id = $1`, requestID)
}

// CertificateByID implements store.Store.
func (s *Store) CertificateByID(ctx context.Context, id string) (store.Certificate, error) {
	return s.oneCertificate(ctx, `SELECT `+certificateCols+` FROM certificates WHERE id = $1`, id)
}

func (s *Store) oneCertificate(ctx context.Context, query string, args ...any) (store.Certificate, error) {
	cs, err := s.queryCertificates(ctx, query, args...)
	if err != nil {
		return store.Certificate{}, err
	}
	if len(cs) == 0 {
		return store.Certificate{}, fmt.Errorf("certificate: %w", store.ErrNotFound)
	}
	return cs[0], nil
}

func (s *Store) queryCertificates(ctx context.Context, query string, args ...any) ([]store.Certificate, error) {
	rows, err := s.conn.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("query certificates: %w", err)
	}
	defer rows.Close()
	var out []store.Certificate
	for rows.Next() {
		var c store.Certificate
		if err := rows.Scan(&c.RequestID, &c.ID, &c.KeyID, &c.Document, timeCol{&c.IssuedAt}, &c.LogIndex); err != nil {
			return nil, fmt.Errorf("scan certificate: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Certificates implements store.Store.
func (s *Store) Certificates(ctx context.Context, requestIDs []string) (map[string]store.Certificate, error) {
	out := make(map[string]store.Certificate, len(requestIDs))
	for start := 0; start < len(requestIDs); start += 500 {
		batch := requestIDs[start:min(start+500, len(requestIDs))]
		ph, args := placeholders(batch)
		cs, err := s.queryCertificates(ctx, `SELECT `+certificateCols+` FROM certificates WHERE request_id IN (`+ph+`)`, args...)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out[c.RequestID] = c
		}
	}
	return out, nil
}

// placeholders returns "$1, $2, …" and the values as arguments.
func placeholders[T any](vs []T) (string, []any) {
	ph := make([]string, len(vs))
	args := make([]any, len(vs))
	for i, v := range vs {
		ph[i] = fmt.Sprintf("$%d", i+1)
		args[i] = v
	}
	return strings.Join(ph, ", "), args
}

// RequestsBySubjectHash implements store.Store.
func (s *Store) RequestsBySubjectHash(ctx context.Context, hashes []string) ([]erasure.Request, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	ph, args := placeholders(hashes)
	return s.queryRequests(ctx, s.conn, `SELECT `+requestCols+` FROM requests WHERE id IN (
		SELECT request_id FROM subject_hashes WHERE hash IN (`+ph+`)) ORDER BY id DESC`, args...)
}

// DueTasks implements store.Store.
func (s *Store) DueTasks(ctx context.Context, now, staleBefore time.Time, limit int) ([]store.DueTask, error) {
	q := s.rw.q(`SELECT id, request_id, status FROM (
		SELECT id, request_id, status, next_attempt_at AS due FROM tasks WHERE status = 'failed' AND next_attempt_at <= $1
		UNION ALL
		SELECT id, request_id, status, next_attempt_at AS due FROM tasks WHERE status = 'scheduled' AND next_attempt_at <= $1
		UNION ALL
		SELECT id, request_id, status, next_poll_at AS due FROM tasks WHERE status = 'running' AND next_poll_at <= $1
		UNION ALL
		SELECT t.id, t.request_id, t.status, t.updated_at AS due FROM tasks t JOIN requests r ON r.id = t.request_id
			WHERE t.status = 'dispatched' AND t.updated_at <= $2
			AND (r.status NOT IN ('completed', 'completed_with_exemptions', 'denied', 'cancelled') OR NOT t.` + mainPhases + `)
	) due ORDER BY due LIMIT ` + fmt.Sprint(limit))
	rows, err := s.conn.Query(ctx, q, s.d.TimeArg(now), s.d.TimeArg(staleBefore))
	if err != nil {
		return nil, fmt.Errorf("query due tasks: %w", err)
	}
	defer rows.Close()
	var out []store.DueTask
	for rows.Next() {
		var d store.DueTask
		if err := rows.Scan(&d.TaskID, &d.RequestID, &d.Status); err != nil {
			return nil, fmt.Errorf("scan due task: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	st := store.Stats{Requests: map[erasure.RequestStatus]int{}}
	rows, err := s.conn.Query(ctx, `SELECT status, count(*) FROM requests GROUP BY status`)
	if err != nil {
		return st, fmt.Errorf("count requests: %w", err)
	}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return st, fmt.Errorf("count requests: %w", err)
		}
		st.Requests[erasure.RequestStatus(status)] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("count requests: %w", err)
	}
	final := `'completed', 'completed_with_exemptions', 'denied', 'cancelled'`
	if err := s.scanInt(ctx, &st.Overdue, `SELECT count(*) FROM requests WHERE due_at < $1 AND status NOT IN (`+final+`)`, s.d.TimeArg(now)); err != nil {
		return st, err
	}
	if err := s.scanInt(ctx, &st.OutboxPending, `SELECT count(*) FROM outbox`); err != nil {
		return st, err
	}
	return st, nil
}

func (s *Store) scanInt(ctx context.Context, dst *int, query string, args ...any) error {
	rows, err := s.conn.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(dst); err != nil {
			return fmt.Errorf("count: %w", err)
		}
	}
	return rows.Err()
}

// tx implements store.Tx.
type tx struct {
	q TxConn
	s *Store
	// last holds each request's newest event appended in this
	// transaction; the request lock keeps it current.
	last map[string]erasure.Event
}

func (t *tx) exec(ctx context.Context, query string, args ...any) (int64, error) {
	return t.q.Exec(ctx, t.s.rw.q(query), args...)
}

func (t *tx) InsertRequest(ctx context.Context, r erasure.Request) error {
	sealed, dataKey, err := t.s.seal(ctx, r)
	if err != nil {
		return err
	}
	ref, err := json.Marshal(r.SubjectRef)
	if err != nil {
		return fmt.Errorf("encode subject ref: %w", err)
	}
	sources, err := encodeJSON(r.Sources, "{}")
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO requests (`+requestCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
		r.ID, string(r.Status), string(r.Jurisdiction), sealed, dataKey, nil, string(ref), r.Source, r.IdempotencyKey,
		r.CreatedBy, t.time(r.ReceivedAt), t.time(r.DueAt), t.time(r.CompletedAt), t.time(r.UpdatedAt), t.time(r.ExtendedAt),
		sources, t.time(r.OriginalDueAt), r.ExtensionCategory, r.Flag, t.time(r.FlaggedAt), r.Batch)
	if err != nil {
		if t.s.d.IsUniqueViolation(err) {
			return erasure.Errorf(erasure.EConflict, "a request with this id or idempotency key exists")
		}
		return fmt.Errorf("insert request: %w", err)
	}
	return t.AddSubjectHashes(ctx, r.ID, r.SubjectRef.Identifiers)
}

func (t *tx) AddSubjectHashes(ctx context.Context, requestID string, ids []erasure.IdentifierHash) error {
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id.Hash] {
			continue
		}
		seen[id.Hash] = true
		if _, err := t.exec(ctx, `INSERT INTO subject_hashes (hash, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id.Hash, requestID); err != nil {
			return fmt.Errorf("insert subject hash: %w", err)
		}
	}
	return nil
}

// encodeJSON encodes v, or returns empty when v is nil.
func encodeJSON(v any, empty string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	if string(b) == "null" {
		return empty, nil
	}
	return string(b), nil
}

func (t *tx) time(v time.Time) any { return t.s.d.TimeArg(v) }

func (t *tx) LockRequest(ctx context.Context, id string) (erasure.Request, error) {
	return t.s.oneRequest(ctx, t.q, `SELECT `+requestCols+` FROM requests WHERE id = $1`+t.s.d.ForUpdate, id)
}

func (t *tx) UpdateRequest(ctx context.Context, r erasure.Request) error {
	sources, err := encodeJSON(r.Sources, "{}")
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, `UPDATE requests SET status = $2, due_at = $3, completed_at = $4, updated_at = $5, extended_at = $6,
		sources = $7, original_due_at = $8, extension_category = $9, flag = $10, flagged_at = $11 WHERE id = $1`,
		r.ID, string(r.Status), t.time(r.DueAt), t.time(r.CompletedAt), t.time(r.UpdatedAt), t.time(r.ExtendedAt),
		sources, t.time(r.OriginalDueAt), r.ExtensionCategory, r.Flag, t.time(r.FlaggedAt))
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update request: %w", store.ErrNotFound)
	}
	return nil
}

func (t *tx) InsertTask(ctx context.Context, k erasure.Task) error {
	evidence, err := encodeEvidence(k.Evidence)
	if err != nil {
		return err
	}
	searched, found, err := encodeKinds(k)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO tasks (`+taskCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		k.ID, k.RequestID, k.Connector, k.ConnectorType, string(k.Status), k.Attempt, k.RecordsErased,
		k.JobRef, t.time(k.NextAttemptAt), t.time(k.NextPollAt), k.LastError, evidence, k.Verified,
		t.time(k.CreatedAt), t.time(k.UpdatedAt), t.time(k.CompletedAt), k.ExemptionBasis,
		phaseOf(k), searched, found, boolInt(k.RecordsUnknown), k.Reason)
	if err != nil {
		if t.s.d.IsUniqueViolation(err) {
			return erasure.Errorf(erasure.EConflict, "the request already has a %s task for connector %s", phaseOf(k), k.Connector)
		}
		return fmt.Errorf("insert task: %w", err)
	}
	return nil
}

func phaseOf(k erasure.Task) string {
	if k.Phase == "" {
		return erasure.PhaseErase
	}
	return k.Phase
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func encodeKinds(k erasure.Task) (searched, found string, err error) {
	if searched, err = encodeJSON(k.SearchedBy, "[]"); err != nil {
		return "", "", err
	}
	found, err = encodeJSON(k.Found, "[]")
	return searched, found, err
}

func encodeEvidence(ev []erasure.Evidence) (string, error) {
	if ev == nil {
		ev = []erasure.Evidence{}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("encode evidence: %w", err)
	}
	return string(b), nil
}

func (t *tx) Task(ctx context.Context, id string) (erasure.Task, error) {
	ts, err := t.s.queryTasks(ctx, t.q, `SELECT `+taskCols+` FROM tasks WHERE id = $1`, id)
	if err != nil {
		return erasure.Task{}, err
	}
	if len(ts) == 0 {
		return erasure.Task{}, fmt.Errorf("task: %w", store.ErrNotFound)
	}
	return ts[0], nil
}

func (t *tx) Tasks(ctx context.Context, requestID string) ([]erasure.Task, error) {
	return t.s.queryTasks(ctx, t.q, `SELECT `+taskCols+` FROM tasks WHERE request_id = $1 AND `+mainPhases+` ORDER BY phase DESC, connector`, requestID)
}

func (t *tx) FollowUps(ctx context.Context, requestID string) ([]erasure.Task, error) {
	return t.s.followUps(ctx, t.q, requestID)
}

func (t *tx) UpdateTask(ctx context.Context, k erasure.Task) error {
	evidence, err := encodeEvidence(k.Evidence)
	if err != nil {
		return err
	}
	searched, found, err := encodeKinds(k)
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, `UPDATE tasks SET status = $2, attempt = $3, records_erased = $4, job_ref = $5,
		next_attempt_at = $6, next_poll_at = $7, last_error = $8, evidence = $9, verified = $10,
		updated_at = $11, completed_at = $12, exemption_basis = $13,
		searched_by = $14, found = $15, records_unknown = $16, reason = $17 WHERE id = $1`,
		k.ID, string(k.Status), k.Attempt, k.RecordsErased, k.JobRef, t.time(k.NextAttemptAt), t.time(k.NextPollAt),
		k.LastError, evidence, k.Verified, t.time(k.UpdatedAt), t.time(k.CompletedAt), k.ExemptionBasis,
		searched, found, boolInt(k.RecordsUnknown), k.Reason)
	if err != nil {
		return fmt.Errorf("update task: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update task: %w", store.ErrNotFound)
	}
	if k.JobRef != "" {
		if _, err := t.exec(ctx, `INSERT INTO task_job_refs (connector, job_ref, task_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			k.Connector, k.JobRef, k.ID); err != nil {
			return fmt.Errorf("update task: job ref: %w", err)
		}
	}
	return nil
}

func (t *tx) AppendEvent(ctx context.Context, e erasure.Event) (erasure.Event, error) {
	var prev *erasure.Event
	if ev, ok := t.last[e.RequestID]; ok {
		prev = &ev
	} else {
		last, err := t.s.queryEvents(ctx, t.q, `SELECT `+eventCols+` FROM events WHERE request_id = $1 ORDER BY seq DESC LIMIT 1`, e.RequestID)
		if err != nil {
			return e, err
		}
		if len(last) == 1 {
			prev = &last[0]
		}
	}
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	}
	e.At = erasure.Timestamp(e.At)
	e = e.Chain(prev)
	_, err := t.exec(ctx, `INSERT INTO events (`+eventCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.RequestID, e.Seq, e.Type, e.TaskID, e.Actor, e.Reason, string(e.Data), t.time(e.At), e.PrevHash, e.Hash)
	if err != nil {
		return e, fmt.Errorf("append event: %w", err)
	}
	if t.last == nil {
		t.last = map[string]erasure.Event{}
	}
	t.last[e.RequestID] = e
	return e, nil
}

func (t *tx) Enqueue(ctx context.Context, m store.OutboxMessage) error {
	if m.MsgID == "" || m.Subject == "" {
		return errors.New("enqueue: message needs a MsgID and a Subject")
	}
	createdAt := erasure.Timestamp(m.CreatedAt)
	if createdAt.IsZero() {
		createdAt = erasure.SystemClock()
	}
	_, err := t.exec(ctx, `INSERT INTO outbox (msg_id, subject, payload, request_id, task_id, attempt, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		m.MsgID, m.Subject, m.Payload, m.RequestID, m.TaskID, m.Attempt, t.time(createdAt))
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

func (t *tx) ClaimOutbox(ctx context.Context, limit int) ([]store.OutboxMessage, error) {
	rows, err := t.q.Query(ctx, t.s.rw.q(`SELECT id, msg_id, subject, payload, request_id, task_id, attempt, created_at
		FROM outbox ORDER BY id LIMIT `+fmt.Sprint(limit)+t.s.d.SkipLocked))
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	defer rows.Close()
	var out []store.OutboxMessage
	for rows.Next() {
		var m store.OutboxMessage
		if err := rows.Scan(&m.ID, &m.MsgID, &m.Subject, &m.Payload, &m.RequestID, &m.TaskID, &m.Attempt, timeCol{&m.CreatedAt}); err != nil {
			return nil, fmt.Errorf("scan outbox: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (t *tx) DeleteOutbox(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	ph, args := placeholders(ids)
	_, err := t.exec(ctx, `DELETE FROM outbox WHERE id IN (`+ph+`)`, args...)
	if err != nil {
		return fmt.Errorf("delete outbox: %w", err)
	}
	return nil
}

// DeleteRequestOutbox skips rows a relay has claimed: the relay locks
// them before the request, so waiting for them here, with the request
// locked, would deadlock. The relay drops those itself once it sees the
// request final.
func (t *tx) DeleteRequestOutbox(ctx context.Context, requestID string) (int64, error) {
	n, err := t.exec(ctx, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE request_id = $1`+t.s.d.SkipLocked+`)`, requestID)
	if err != nil {
		return 0, fmt.Errorf("delete request outbox: %w", err)
	}
	return n, nil
}

func (t *tx) InsertCertificate(ctx context.Context, c store.Certificate) error {
	_, err := t.exec(ctx, `INSERT INTO certificates (request_id, id, key_id, document, issued_at, log_index) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.RequestID, c.ID, c.KeyID, c.Document, t.time(c.IssuedAt), c.LogIndex)
	if err != nil {
		if t.s.d.IsUniqueViolation(err) {
			return erasure.Errorf(erasure.EConflict, "the request already has a certificate")
		}
		return fmt.Errorf("insert certificate: %w", err)
	}
	return nil
}

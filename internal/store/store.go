// Package store is Lethe's source of truth: requests, tasks, the event log,
// the outbox and certificates, behind one interface with a PostgreSQL
// implementation (production) and a SQLite one (single machine, `lethe dev`).
// Both pass the same conformance suite, storetest.Run.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// Store reads state and runs transactions that change it. Every change to a
// request or task goes through InTx together with the event that records it
// and any outbox message that announces it: all or nothing.
type Store interface {
	// InTx runs fn in a transaction and commits if fn returns nil. It may
	// run fn more than once when the database asks for a retry
	// (serialisation failure, deadlock, busy), so fn must not have effects
	// outside the transaction that cannot be repeated.
	InTx(ctx context.Context, fn func(Tx) error) error

	Request(ctx context.Context, id string) (erasure.Request, error)
	// RequestByIdempotencyKey finds the request filed with key.
	RequestByIdempotencyKey(ctx context.Context, key string) (erasure.Request, error)
	Requests(ctx context.Context, f RequestFilter) ([]erasure.Request, error)
	// Tasks lists a request's resolve and erase tasks: what its
	// certificate is about.
	Tasks(ctx context.Context, requestID string) ([]erasure.Task, error)
	// Progress counts the systems of each of these requests; a request
	// without tasks is missing from the map.
	Progress(ctx context.Context, requestIDs []string) (map[string]Progress, error)
	// Batch sums up the requests filed in the named batch (see
	// erasure.Request.Batch), overdue meaning due before now:
	// ErrNotFound when no request carries the name.
	Batch(ctx context.Context, name string, now time.Time) (Batch, error)
	// Batches sums up the newest batches (by their newest request), at
	// most limit (default 50, capped at MaxLimit).
	Batches(ctx context.Context, limit int, now time.Time) ([]Batch, error)
	// FollowUps lists a completed request's re-checks and re-erasures
	// (see erasure.Task.FollowUp), oldest first.
	FollowUps(ctx context.Context, requestID string) ([]erasure.Task, error)
	// TaskByJobRef finds the task of a connector instance waiting on a
	// vendor job (for callbacks), or whose earlier attempt had that job:
	// its JobRef then names the newer one.
	TaskByJobRef(ctx context.Context, connector, jobRef string) (erasure.Task, error)
	Events(ctx context.Context, requestID string) ([]erasure.Event, error)
	Certificate(ctx context.Context, requestID string) (Certificate, error)
	// DueTasks lists tasks whose retry or poll time has come, and
	// dispatched tasks unchanged since staleBefore (their message may be
	// lost), oldest first. Callers re-check each under the request lock.
	DueTasks(ctx context.Context, now, staleBefore time.Time, limit int) ([]DueTask, error)
	// Stats counts requests by status and pending outbox messages.
	Stats(ctx context.Context, now time.Time) (Stats, error)

	// CertificateByID finds a certificate by its own id.
	CertificateByID(ctx context.Context, id string) (Certificate, error)
	// Certificates returns the certificates of the given requests, by
	// request id; requests without one are absent.
	Certificates(ctx context.Context, requestIDs []string) (map[string]Certificate, error)
	// RequestsBySubjectHash lists the requests whose subject has an
	// identifier with one of these keyed hashes, newest first.
	RequestsBySubjectHash(ctx context.Context, hashes []string) ([]erasure.Request, error)

	// Suppressed returns the suppression entries for these keyed hashes.
	Suppressed(ctx context.Context, hashes []string) ([]Suppression, error)
	// SuppressionsSince lists the entries made at or after since.
	SuppressionsSince(ctx context.Context, since time.Time) ([]Suppression, error)
	// RewrapDataKeys re-wraps up to limit data keys that the active
	// key-encryption key did not wrap, and reports how many it did and how
	// many such keys remain.
	RewrapDataKeys(ctx context.Context, limit int) (done, remaining int, err error)
	// Purge returns what is left of a purged request.
	Purge(ctx context.Context, requestID string) (Purge, error)

	// PortalRequest returns the portal side of a request.
	PortalRequest(ctx context.Context, requestID string) (PortalRequest, error)

	// Throttle reads the failures counted against key; a key never
	// counted gives a zero Throttle with that Key.
	Throttle(ctx context.Context, key string) (Throttle, error)
	// DeleteThrottles forgets keys not updated since before.
	DeleteThrottles(ctx context.Context, before time.Time) (int64, error)

	// Console sessions.
	CreateSession(ctx context.Context, s Session) error
	Session(ctx context.Context, idHash string, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, idHash string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)

	// The transparency log, read side.
	LogSize(ctx context.Context) (int64, error)
	LogHashes(ctx context.Context, ids []int64) ([][]byte, error)
	LogEntries(ctx context.Context, start, end int64) ([]LogEntry, error)
	LogEntryByRef(ctx context.Context, kind, ref string) (LogEntry, error)
	// LogEntriesByRef lists every leaf of kind naming ref, in log order
	// (the re-checks of a certificate).
	LogEntriesByRef(ctx context.Context, kind, ref string) ([]LogEntry, error)
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)

	Ping(ctx context.Context) error
	Close()
}

// Tx is one transaction. Methods that change a request or its tasks expect
// the caller to hold the request's lock (LockRequest) so that concurrent
// workers and replicas serialise on it.
type Tx interface {
	// InsertRequest stores a new request. A request with the same
	// idempotency key already stored gives an EConflict error.
	InsertRequest(ctx context.Context, r erasure.Request) error
	// LockRequest reads a request and locks it until the transaction ends.
	LockRequest(ctx context.Context, id string) (erasure.Request, error)
	// UpdateRequest stores r's status, times and identifier sources (not
	// its identifiers: see UpdateSubject).
	UpdateRequest(ctx context.Context, r erasure.Request) error
	// UpdateSubject stores r.Subject (identifiers added by resolvers or
	// staff), encrypted under the request's own data key. A shredded
	// request gives an EConflict error.
	UpdateSubject(ctx context.Context, r erasure.Request) error
	// AddSubjectHashes makes the request findable by these keyed hashes
	// too (identifiers added after filing).
	AddSubjectHashes(ctx context.Context, requestID string, ids []erasure.IdentifierHash) error

	InsertTask(ctx context.Context, t erasure.Task) error
	// Task reads any task by id, follow-ups included.
	Task(ctx context.Context, id string) (erasure.Task, error)
	// Tasks and FollowUps are as Store's, within the transaction.
	Tasks(ctx context.Context, requestID string) ([]erasure.Task, error)
	FollowUps(ctx context.Context, requestID string) ([]erasure.Task, error)
	UpdateTask(ctx context.Context, t erasure.Task) error

	// AppendEvent chains e to the request's last event (setting Seq,
	// PrevHash and Hash), stores it and returns it.
	AppendEvent(ctx context.Context, e erasure.Event) (erasure.Event, error)

	// Enqueue adds a message for the relay to publish.
	Enqueue(ctx context.Context, m OutboxMessage) error
	// ClaimOutbox locks up to limit unsent messages, oldest first, skipping
	// any another transaction holds.
	ClaimOutbox(ctx context.Context, limit int) ([]OutboxMessage, error)
	// DeleteOutbox removes published messages.
	DeleteOutbox(ctx context.Context, ids []int64) error
	// DeleteRequestOutbox drops a request's unsent messages (on cancel).
	DeleteRequestOutbox(ctx context.Context, requestID string) (int64, error)

	// InsertCertificate stores a request's certificate; a second one for the
	// same request gives an EConflict error.
	InsertCertificate(ctx context.Context, c Certificate) error

	// LockLog locks the transparency log's head until the transaction
	// ends and returns its size: appends are serialised.
	LockLog(ctx context.Context) (int64, error)
	// LogHashes reads stored tree hashes by id, in the order asked.
	LogHashes(ctx context.Context, ids []int64) ([][]byte, error)
	// AppendLog stores leaf e (its Index must be the log's size), the tree
	// hashes it adds (ids from firstHash on) and moves the head.
	AppendLog(ctx context.Context, e LogEntry, firstHash int64, hashes [][]byte) error
	LogEntryByRef(ctx context.Context, kind, ref string) (LogEntry, error)
	InsertCheckpoint(ctx context.Context, c Checkpoint) error

	// ShredRequest destroys the request's data key and encrypted
	// identifiers: from then on only keyed hashes remain.
	ShredRequest(ctx context.Context, id string, at time.Time) error
	// AddSuppressions puts a request's identifier hashes on the
	// suppression list.
	AddSuppressions(ctx context.Context, requestID string, ids []erasure.IdentifierHash, at time.Time) error
	// PurgeRequest deletes a request with its tasks, events and
	// certificate, leaving p as its record.
	PurgeRequest(ctx context.Context, p Purge) error

	InsertPortalRequest(ctx context.Context, p PortalRequest) error
	// LockPortal reads a portal request and locks it (code attempts are
	// counted under the lock).
	LockPortal(ctx context.Context, requestID string) (PortalRequest, error)
	UpdatePortalRequest(ctx context.Context, p PortalRequest) error

	// LockThrottle reads key's failures and locks them until the
	// transaction ends, so that replicas count one at a time; a key never
	// counted gives a zero Throttle with that Key.
	LockThrottle(ctx context.Context, key string) (Throttle, error)
	// UpdateThrottle stores t (creating its row if need be).
	UpdateThrottle(ctx context.Context, t Throttle) error
}

// PortalRequest is the portal's side of a request filed there.
type PortalRequest struct {
	RequestID     string
	Lang          string
	CodeHash      string
	CodeExpiresAt time.Time
	CodeAttempts  int
	// CodeSentAt is when the current code was emailed; zero when it never
	// was (held back by the per-email limit, or the mail failed).
	CodeSentAt time.Time
	VerifiedAt time.Time
}

// Throttle is the failures counted against one key, shared by every
// replica. Key is a keyed hash: never an email address, a name or a
// client address in clear.
type Throttle struct {
	Key      string
	Failures int
	// LastAt is the last failure counted (zero: none).
	LastAt time.Time
	// Ref is what the key last pointed at: for a portal address, the
	// request whose code was sent last.
	Ref       string
	UpdatedAt time.Time
}

// ThrottleIdle is how long housekeeping keeps a throttle nobody updated:
// longer than any Backoff.Forget and than an unverified portal request
// lives, so that nothing still counted or pointed at is forgotten.
const ThrottleIdle = 7 * 24 * time.Hour

// Backoff turns counted failures into growing delays: the first Free
// failures cost nothing, each one after that doubles the wait before the
// next try, from Base up to Max, and failures are forgotten Forget after
// the last one. Nobody is locked out for good: the wait always ends.
type Backoff struct {
	Free   int
	Base   time.Duration
	Max    time.Duration
	Forget time.Duration
}

// Count returns the failures of t still remembered at now.
func (b Backoff) Count(t Throttle, now time.Time) int {
	if t.LastAt.IsZero() || !now.Before(t.LastAt.Add(b.Forget)) {
		return 0
	}
	return t.Failures
}

// Delay is how long after the n-th failure the next try must wait.
func (b Backoff) Delay(n int) time.Duration {
	if n < b.Free || n <= 0 {
		return 0
	}
	d := b.Base
	for i := b.Free; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Wait returns how long from now the key must wait before its next try
// (0: it may try now).
func (b Backoff) Wait(t Throttle, now time.Time) time.Duration {
	n := b.Count(t, now)
	if n == 0 {
		return 0
	}
	return max(0, t.LastAt.Add(b.Delay(n)).Sub(now))
}

// Fail counts one failure at now.
func (b Backoff) Fail(t *Throttle, now time.Time) {
	t.Failures = b.Count(*t, now) + 1
	t.LastAt, t.UpdatedAt = now, now
}

// Session is a signed-in staff member.
type Session struct {
	IDHash    string
	User      string
	Role      string
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Suppression says that a person with this identifier hash was erased.
type Suppression struct {
	Hash      string
	Kind      string
	RequestID string
	CreatedAt time.Time
}

// Purge is what remains of a request purged under the retention policy.
type Purge struct {
	RequestID     string
	Status        erasure.RequestStatus
	Jurisdiction  erasure.Jurisdiction
	ReceivedAt    time.Time
	DueAt         time.Time
	CompletedAt   time.Time
	CertificateID string
	LogIndex      int64 // -1 when there was no certificate
	PurgedAt      time.Time
}

// LogEntry is one leaf of the transparency log.
type LogEntry struct {
	Index     int64
	Kind      string // certificate, key_activated, key_retired, recheck
	Ref       string // the certificate id (of a recheck: the one it re-checks) or key id
	Data      []byte // the leaf data
	CreatedAt time.Time
}

// Checkpoint is a signed statement of the log's size and root.
type Checkpoint struct {
	Size      int64
	Root      []byte
	Note      []byte
	CreatedAt time.Time
}

// OutboxMessage is a message written in the same transaction as the state
// change it announces, published to NATS by the relay.
type OutboxMessage struct {
	ID int64 // assigned by the store
	// MsgID becomes the Nats-Msg-Id header, so JetStream drops a
	// message the relay publishes twice.
	MsgID     string
	Subject   string
	Payload   []byte
	RequestID string
	// TaskID and Attempt are set for task messages: publishing one moves
	// the task from queued to dispatched.
	TaskID    string
	Attempt   int
	CreatedAt time.Time
}

// Certificate is a stored, signed certificate.
type Certificate struct {
	RequestID string
	ID        string
	KeyID     string
	Document  []byte
	IssuedAt  time.Time
	// LogIndex is the certificate's leaf in the transparency log.
	LogIndex int64
}

// RequestFilter selects requests for listing, newest first.
type RequestFilter struct {
	Statuses []erasure.RequestStatus
	// Before is a cursor: only requests with an id before this one.
	Before string
	// DueBefore keeps requests due before this time (zero: any).
	DueBefore time.Time
	// ReceivedFrom and ReceivedTo keep requests received in [from, to)
	// (zero: unbounded).
	ReceivedFrom, ReceivedTo time.Time
	// CompletedBefore keeps requests completed before this time.
	CompletedBefore time.Time
	// Unshredded keeps requests whose data key still exists.
	Unshredded bool
	// Flagged keeps requests flagged for staff (see erasure.Request.Flag).
	Flagged bool
	// Batch keeps the requests filed in this batch (see
	// erasure.Request.Batch).
	Batch string
	// WaitingForPerson keeps requests with a task only a person can move
	// on: one that needs an identifier, or a manual system's task waiting
	// for staff to do it by hand.
	WaitingForPerson bool
	// ByDue orders by deadline, soonest first (then by id), instead of
	// newest first; Before is then ignored and Offset pages.
	ByDue  bool
	Offset int
	// Limit defaults to 50 and is capped at MaxLimit.
	Limit int
}

// Progress counts a request's systems (its erase-phase tasks).
type Progress struct {
	// Systems is how many systems the request erases in; Done, how many
	// of them are finished (erased, not found, exempted, not applicable).
	Systems, Done int
	// WaitingForPerson counts tasks only a person can move on (see
	// RequestFilter.WaitingForPerson).
	WaitingForPerson int
}

// Batch sums up the requests of one batch.
type Batch struct {
	Name     string
	Requests int
	ByStatus map[erasure.RequestStatus]int
	// Overdue counts its requests past their deadline and not final.
	Overdue int
	// Tasks counts the systems of all its requests together.
	Tasks                       Progress
	FirstReceived, LastReceived time.Time
}

// Final counts the batch's requests that are over (completed, denied,
// cancelled).
func (b Batch) Final() int {
	n := 0
	for st, c := range b.ByStatus {
		if st.Final() {
			n += c
		}
	}
	return n
}

// DueTask names a task whose retry or poll is due.
type DueTask struct {
	TaskID    string
	RequestID string
	Status    erasure.TaskStatus // failed (retry), scheduled (re-check), running (poll) or dispatched (stale)
}

// Stats are counts for metrics.
type Stats struct {
	Requests      map[erasure.RequestStatus]int
	Overdue       int
	OutboxPending int
}

// MaxLimit caps one page of requests.
const MaxLimit = 5000

// ErrNotFound is returned (wrapped) when a row does not exist.
var ErrNotFound = &erasure.Error{Code: erasure.ENotFound, Message: "not found"}

// ErrUnavailable is in the chain of every error a store returns because
// the database cannot be reached (down, restarting, the network between),
// so that callers answer "try again shortly" rather than "internal error".
var ErrUnavailable = &erasure.Error{Code: erasure.EUnavailable,
	Message: "the database cannot be reached just now; try again shortly"}

// Unavailable marks err, a failure to reach the database, with
// ErrUnavailable; the cause stays in the chain for errors.Is and errors.As.
func Unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

package erasure

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Request is one erasure request: a subject, a legal basis with its
// deadline, and one task per connector instance.
type Request struct {
	ID           string
	Status       RequestStatus
	Jurisdiction Jurisdiction
	// Subject is personal data; see Subject.
	Subject    Subject
	SubjectRef SubjectRef
	// CommitmentNonce is given to the person (never put in a
	// certificate): with it and their email they can recompute
	// SubjectRef.Commitment.
	CommitmentNonce []byte
	// ShreddedAt is when the request's data key was destroyed; from then
	// on Subject and CommitmentNonce are gone for good.
	ShreddedAt time.Time
	// Sources says where each kind of identifier in Subject came from: the
	// request, a resolver, staff. Kinds and system names only.
	Sources Sources
	// ExtendedAt is when the deadline was extended (once at most);
	// OriginalDueAt is the deadline before it, and ExtensionCategory the
	// kind of reason given (see ExtensionCategories).
	ExtendedAt        time.Time
	OriginalDueAt     time.Time
	ExtensionCategory string
	// Source says how the request came in: "api", "portal", "cli".
	Source string
	// IdempotencyKey, when the client sent one, makes filing the same
	// request twice return the first.
	IdempotencyKey string
	CreatedBy      string
	// Batch names the batch the request was filed in (one POST
	// /v1/requests/batch, one CSV import), empty when filed alone: a name
	// chosen by staff or made by Lethe, never personal data (see
	// CheckBatch).
	Batch       string
	ReceivedAt  time.Time
	DueAt       time.Time
	CompletedAt time.Time // zero until the request is final
	// Flag, when not empty, asks staff to look at a completed request: a
	// re-check found the person again, or could not look them up. Words
	// and system names only, no personal data; FlaggedAt is when.
	Flag      string
	FlaggedAt time.Time
	UpdatedAt time.Time
}

// FirstDueAt is the deadline the request was received with, before any
// extension.
func (r Request) FirstDueAt() time.Time {
	if !r.OriginalDueAt.IsZero() {
		return r.OriginalDueAt
	}
	return r.DueAt
}

// Overdue reports whether the request is past its deadline and not final.
func (r Request) Overdue(now time.Time) bool {
	return !r.Status.Final() && now.After(r.DueAt)
}

// Evidence is one fact a connector reports about what it did: a vendor job
// id, a row count per table, the result of the post-erasure lookup. It must
// not contain personal data.
type Evidence struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Task is one connector instance's share of a request.
type Task struct {
	ID            string
	RequestID     string
	Connector     string // instance name, e.g. "shop-db"
	ConnectorType string // e.g. "sql"
	// Phase is PhaseResolve for a resolver's look-up, PhaseErase (or
	// empty, in tasks stored before phases) for an erasure.
	Phase  string
	Status TaskStatus
	// Attempt counts dispatches: 1 for the first, +1 per retry.
	Attempt       int
	RecordsErased int64
	// RecordsUnknown: the system reported the erasure done without saying
	// how much it removed (a vendor job); RecordsErased means nothing then.
	RecordsUnknown bool
	// SearchedBy lists the kinds of identifier the system was searched
	// (or, a resolver, looked up) by.
	SearchedBy []Kind
	// Found lists the kinds a resolver supplied (new or confirmed).
	Found []Kind
	// Reason explains a not_applicable or needs_identifier task in words
	// (no personal data).
	Reason string
	// JobRef is the vendor's job id while an asynchronous job runs.
	JobRef        string
	NextAttemptAt time.Time // when a failed task is retried
	NextPollAt    time.Time // when a running job is polled next
	LastError     string    // redacted: never holds identifiers
	Evidence      []Evidence
	// Verified says what the post-erasure lookup found: "clean", or ""
	// when the connector cannot look the subject up.
	Verified string
	// ExemptionBasis is the legal basis (see Exemptions) of an exempted task.
	ExemptionBasis string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    time.Time
}

// HashIdempotencyKey is how a client's Idempotency-Key is stored: clients
// may put anything in it, an email included.
func HashIdempotencyKey(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("lethe-idempotency\x00" + key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewID returns a new time-ordered unique id (UUIDv7).
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// ValidID reports whether s looks like an id made by NewID, so malformed ids
// are rejected before they reach the store.
func ValidID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && len(s) == 36 && u.Version() == 7
}

// batchName is what a batch may be called: letters, digits, '.', '_' and
// '-', up to 64, so that no email address or name of a person fits.
var batchName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckBatch refuses a name a batch may not have (see Request.Batch).
func CheckBatch(name string) error {
	if !batchName.MatchString(name) {
		return Invalid("batch", "name a batch with 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// NewBatchName names a batch staff did not name: "batch-" and a new id,
// so that names sort by when they were made.
func NewBatchName() string { return "batch-" + NewID() }

// Clock gives the current time. Times are UTC and cut to microseconds, the
// precision every store keeps, so a value reads back exactly as written.
type Clock func() time.Time

// SystemClock is the wall clock.
func SystemClock() time.Time { return Timestamp(time.Now()) }

// Timestamp normalises t to UTC microseconds.
func Timestamp(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Package connectors is the contract between Lethe and the systems it erases
// personal data from, and the registry of connector types.
//
// A connector type lives in its own folder under connectors/ and registers
// itself from an init function:
//
//	func init() {
//		connectors.Register("crm", "Acme CRM contacts", connectors.Limits{Concurrency: 4, RatePerSecond: 10},
//			func(ctx context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
//				return &crm{cfg: cfg}, nil
//			})
//	}
//
// Config is the connector's own typed configuration, decoded strictly from
// the `config:` block of its entry in Lethe's config file; if it has a
// Validate() error method, that runs before the constructor.
//
// The runtime calls Erase once per task (and again on retries, so it must be
// idempotent), Poll for asynchronous vendor jobs, and Verify after a
// successful erase when the connector can look the subject up.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// Subject is the person to erase. It is personal data: never log it, never
// put it in an error message, evidence or metric.
type Subject = erasure.Subject

// Evidence is a fact about what was done (a vendor job id, rows per table).
// No personal data.
type Evidence = erasure.Evidence

// Status is the outcome of an Erase or Poll call.
type Status string

// Statuses a connector reports.
const (
	// StatusErased: the subject's records were removed.
	StatusErased Status = "erased"
	// StatusNotFound: the system was searched by the subject's identifiers
	// (the plan's Uses that the subject has) and held nothing. Counts as
	// done. Never report it for a search that did not happen: a missing
	// identifier is the runtime's to notice (Plan.Keys), and a system that
	// holds the subject in a recoverable state (a recycle bin, an archive,
	// a trash folder) still holds it.
	StatusNotFound Status = "not_found"
	// StatusRunning: an asynchronous vendor job was started (or is still
	// going); the runtime will call Poll with JobRef after PollAfter.
	StatusRunning Status = "running"
)

// Outcome is what a connector reports after Erase or Poll.
type Outcome struct {
	Status Status
	// Records counts what was removed or anonymised (rows, objects, contacts).
	Records int64
	// Uncounted: the system reported the erasure done without saying what
	// it removed (a vendor's deletion job that finished); Records is then
	// meaningless and certificates say "unknown". Never invent a count.
	Uncounted bool
	// SearchedBy names the kinds of identifier the system was searched by,
	// when the connector used fewer than its plan's Uses that the subject
	// has. Empty: the runtime records those.
	SearchedBy []Kind
	// JobRef identifies a running vendor job; Poll receives it back.
	JobRef string
	// PollAfter is when to poll a running job; zero means the runtime default.
	PollAfter time.Duration
	Evidence  []Evidence
}

// Erased reports n records removed, or not found when n is zero.
//
//	return connectors.Erased(rows, connectors.Evidence{Kind: "table", Value: "customers: 1"}), nil
func Erased(n int64, ev ...Evidence) Outcome {
	if n == 0 {
		return Outcome{Status: StatusNotFound, Evidence: ev}
	}
	return Outcome{Status: StatusErased, Records: n, Evidence: ev}
}

// ErasedUncounted reports an erasure the system confirmed without a count:
// a vendor's deletion job that finished.
//
//	return connectors.ErasedUncounted(connectors.Evidence{Kind: "job", Value: id + ": FINISHED"}), nil
func ErasedUncounted(ev ...Evidence) Outcome {
	return Outcome{Status: StatusErased, Uncounted: true, Evidence: ev}
}

// NotFound reports that the system held nothing about the subject.
func NotFound(ev ...Evidence) Outcome { return Outcome{Status: StatusNotFound, Evidence: ev} }

// Running reports an asynchronous job to poll after the given delay.
//
//	return connectors.Running(resp.JobID, time.Hour), nil
func Running(jobRef string, pollAfter time.Duration, ev ...Evidence) Outcome {
	return Outcome{Status: StatusRunning, JobRef: jobRef, PollAfter: pollAfter, Evidence: ev}
}

// Connector erases a subject from one system.
type Connector interface {
	// Erase removes everything the system holds about s. It must be
	// idempotent: erasing an absent subject reports StatusNotFound.
	Erase(ctx context.Context, s Subject) (Outcome, error)
}

// Poller is implemented by connectors whose Erase starts a vendor job.
type Poller interface {
	// Poll reports the state of the job that Erase (or an earlier Poll)
	// returned as JobRef.
	Poll(ctx context.Context, jobRef string) (Outcome, error)
}

// Verifier is implemented by connectors that can look the subject up again
// after erasure.
type Verifier interface {
	// Verify returns how many records of s remain; zero means clean.
	// Records in a recoverable state (recycle bin, archive, trash) remain.
	Verify(ctx context.Context, s Subject) (Verification, error)
}

// Scanner is implemented by connectors whose system can be searched for
// every subject it holds. After a backup is restored, `lethe replay` scans
// such systems for people on the suppression list and erases them again.
type Scanner interface {
	// Scan calls fn with the identifiers of each record the system holds
	// (one identifier per call is enough). It returns ErrCannotScan when
	// this instance is not configured for scanning.
	Scan(ctx context.Context, fn func(Subject) error) error
}

// Callbacker is implemented by connectors whose system reports a job's
// progress by calling Lethe back, at POST /v1/connectors/{name}/callback
// (Poll stays the fallback). Callback must authenticate the request (a
// signature over the raw body and a timestamp, say) before trusting
// anything in it; an error refuses the callback with 403.
type Callbacker interface {
	Callback(ctx context.Context, header http.Header, body []byte) (Callback, error)
}

// Confirmer is implemented by connectors whose task a person outside
// Lethe confirms through a signed link (a processor reached by email):
// Lethe serves the page at /processors/{name}/confirm/{token}, and its
// form is posted to Callback as application/x-www-form-urlencoded with
// the token in the field "token".
type Confirmer interface {
	Callbacker
	// ConfirmLink checks a link's token and says what the page shows; an
	// error is said to the visitor as it is.
	ConfirmLink(token string) (ConfirmLink, error)
}

// ConfirmLink is what a confirmation page shows about its link.
type ConfirmLink struct {
	// Processor is who was asked; Reference the request's reference.
	Processor, Reference string
	Sent, Expires        time.Time
}

// Callback is what an authenticated callback says.
type Callback struct {
	// JobRef is the job the callback is about (the JobRef an Erase
	// returned).
	JobRef string
	// Outcome is the job's outcome: StatusRunning while it goes on.
	Outcome Outcome
	// ID names the signed message (a digest of what was signed): Lethe
	// remembers it, across replicas, and refuses a second callback with
	// the same ID as a replay. Empty: nothing to remember.
	ID string
}

// Outsider is implemented by connectors that run in another process (type
// external): Lethe tracks their tasks but runs no worker for them.
type Outsider interface {
	RunsOutside()
}

// ErrCannotScan says a connector instance cannot list its subjects.
var ErrCannotScan = errors.New("this connector instance cannot scan its system")

// ErrRateLimited marks an error as the system's "too many requests" (a
// 429, a throttled answer): wrap it (fmt.Errorf("…: %w", ErrRateLimited))
// and the runtime spaces the instance's calls a little wider for a while,
// in every process, besides honouring any Retry-After. vendorhttp wraps
// every 429 with it.
var ErrRateLimited = errors.New("rate limited")

// RateLimitedAt is ErrRateLimited for a request to op (the op a request
// names, as vendorhttp.Client.Send's): where the type registered op's own
// limit (Limits.Endpoints) the runtime slows and pauses that endpoint's
// calls, not the instance's, as the vendor's refusal was of that
// endpoint's budget.
func RateLimitedAt(op string) error { return &rateLimited{op: op} }

// RateLimitedOp is the op a "too many requests" in err names
// (RateLimitedAt), or "" for the instance as a whole.
func RateLimitedOp(err error) string {
	var rl *rateLimited
	if errors.As(err, &rl) {
		return rl.op
	}
	return ""
}

type rateLimited struct{ op string }

func (e *rateLimited) Error() string        { return ErrRateLimited.Error() }
func (e *rateLimited) Is(target error) bool { return target == ErrRateLimited }

// Verification is the result of looking a subject up after erasure.
type Verification struct {
	Remaining int64
	Evidence  []Evidence
}

// Error classifies a connector failure for the runtime.
type Error struct {
	// Permanent errors (bad credentials, bad config, a refused identifier)
	// are not retried: the task goes dead and a person is asked to act.
	Permanent bool
	// RetryAfter is the delay the system asked for (Retry-After, rate-limit
	// reset); zero when it named none.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	return kind + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanentf returns a permanent error.
//
//	return connectors.Outcome{}, connectors.Permanentf("401 from CRM: check the API token")
func Permanentf(format string, args ...any) error {
	return &Error{Permanent: true, Err: fmt.Errorf(format, args...)}
}

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &Error{Permanent: true, Err: err} }

// Retryable marks err as transient, to be retried after at least retryAfter
// (zero: the runtime's backoff decides).
func Retryable(err error, retryAfter time.Duration) error {
	return &Error{RetryAfter: retryAfter, Err: err}
}

// Classify tells the runtime whether err is permanent and how long the
// system asked to wait. Errors a connector did not classify are retryable:
// a retry is bounded by the task's attempts; giving up on a blip is not.
func Classify(err error) (permanent bool, retryAfter time.Duration) {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Permanent, ce.RetryAfter
	}
	return false, 0
}

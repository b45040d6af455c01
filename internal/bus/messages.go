// Package bus carries Lethe's work over NATS JetStream: the versioned JSON
// messages between the coordinator and connector workers, the streams and
// durable consumers they travel on, and the outbox relay that publishes what
// the store has committed.
//
// The message contract is documented in docs/messages.md; a connector in
// another process or language needs only a NATS client and that page.
package bus

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

// Version is the message contract version. A worker must refuse (terminate)
// a message with a version it does not know.
const Version = 1

// Stream and subject names.
const (
	TasksStream   = "LETHE_TASKS"
	ResultsStream = "LETHE_RESULTS"
	taskPrefix    = "lethe.task."
	resultPrefix  = "lethe.result."
	// CoordinatorConsumer is the durable consumer of all results.
	CoordinatorConsumer = "coordinator"
	NoticesStream       = "LETHE_NOTICES"
	noticePrefix        = "lethe.notice."
	// NotifierConsumer is the durable consumer of notices.
	NotifierConsumer = "notifier"
)

// NoticeSubject is where notices of one kind are published.
func NoticeSubject(kind string) string { return noticePrefix + kind }

// Kinds of notice: what the person is told by email.
const (
	NoticeReceived         = "received"          // the email was verified and erasure started
	NoticeAwaitingApproval = "awaiting_approval" // the email was verified; staff review the request before it starts
	NoticeApproved         = "approved"          // staff approved the request and erasure started
	NoticeCompleted        = "completed"         // done: the certificate and the proof code
	NoticeExtended         = "extended"          // the deadline was extended, with the reason
	NoticeDenied           = "denied"            // the request was refused, with the reason
)

// Notice asks the notifier to email the person about their request. It
// holds no personal data: the notifier reads the address from the
// request's encrypted envelope when it sends.
type Notice struct {
	V         int       `json:"v"`
	Kind      string    `json:"kind"`
	RequestID string    `json:"request_id"`
	IssuedAt  time.Time `json:"issued_at"`
}

// TaskSubject is where a connector instance's work is published.
func TaskSubject(connector string) string { return taskPrefix + connector }

// ResultSubject is where a connector instance reports.
func ResultSubject(connector string) string { return resultPrefix + connector }

// WorkerConsumer is the durable consumer name of a connector instance.
func WorkerConsumer(connector string) string { return "worker-" + connector }

// Kinds of task.
const (
	KindErase   = "erase"   // erase the subject
	KindPoll    = "poll"    // check on the asynchronous job JobRef
	KindResolve = "resolve" // look the subject up and report further identifiers
	// KindRecheck: look the subject up again, some time after the
	// request completed, and report what remains (nothing is erased).
	KindRecheck = "recheck"
)

// Task is the message a connector worker receives. It carries the subject's
// identifiers: the worker needs them, and must not log them.
type Task struct {
	V            int             `json:"v"`
	Kind         string          `json:"kind"`
	TaskID       string          `json:"task_id"`
	RequestID    string          `json:"request_id"`
	Connector    string          `json:"connector"`
	Attempt      int             `json:"attempt"`
	Jurisdiction string          `json:"jurisdiction"`
	Subject      erasure.Subject `json:"subject"`
	JobRef       string          `json:"job_ref,omitempty"`
	// FollowUp marks a re-check or re-erasure of a completed request:
	// the relay sends it although the request is final.
	FollowUp bool      `json:"follow_up,omitempty"`
	IssuedAt time.Time `json:"issued_at"`
}

// Result statuses.
const (
	ResultErased   = "erased"
	ResultNotFound = "not_found"
	ResultRunning  = "running"
	ResultFailed   = "failed"
	ResultResolved = "resolved" // a resolve task's answer: Identifiers holds what was found
	// ResultFound answers a re-check that found the subject again:
	// Records counts what remains.
	ResultFound = "found"
)

// Result is what a worker reports for one task message.
type Result struct {
	V         int    `json:"v"`
	Kind      string `json:"kind"`
	TaskID    string `json:"task_id"`
	RequestID string `json:"request_id"`
	Connector string `json:"connector"`
	Attempt   int    `json:"attempt"`
	Status    string `json:"status"`
	Records   int64  `json:"records"`
	// RecordsUnknown: the system confirmed the erasure without a count.
	RecordsUnknown bool `json:"records_unknown,omitempty"`
	// SearchedBy names the kinds of identifier the system was searched
	// (or, resolving, looked up) by.
	SearchedBy []erasure.Kind `json:"searched_by,omitempty"`
	// Identifiers is what a resolver found, by kind. Personal data, like
	// a task's subject: a result is deleted from the stream once applied.
	Identifiers map[erasure.Kind][]string `json:"identifiers,omitempty"`
	JobRef      string                    `json:"job_ref,omitempty"`
	// PollAfterSeconds: when to poll a running job again (0: default).
	PollAfterSeconds int                `json:"poll_after_seconds,omitempty"`
	Evidence         []erasure.Evidence `json:"evidence,omitempty"`
	// Verification: "clean" when a lookup after erasure found nothing,
	// "not_available" when the connector cannot look up.
	Verification string       `json:"verification,omitempty"`
	Error        *ResultError `json:"error,omitempty"`
	StartedAt    time.Time    `json:"started_at"`
	FinishedAt   time.Time    `json:"finished_at"`
}

// ResultError describes a failed attempt. Message never holds identifiers.
type ResultError struct {
	Message           string `json:"message"`
	Permanent         bool   `json:"permanent"`
	RetryAfterSeconds int    `json:"retry_after_seconds,omitempty"`
}

// DecodeTask parses and checks a task message.
func DecodeTask(b []byte) (Task, error) {
	var t Task
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("task message: %w", err)
	}
	switch {
	case t.V != Version:
		return t, fmt.Errorf("task message: unsupported version %d", t.V)
	case t.Kind != KindErase && t.Kind != KindPoll && t.Kind != KindResolve && t.Kind != KindRecheck:
		return t, fmt.Errorf("task message: unknown kind %q", t.Kind)
	case t.TaskID == "" || t.RequestID == "" || t.Connector == "" || t.Attempt < 1:
		return t, fmt.Errorf("task message: task_id, request_id, connector and attempt are required")
	case t.Kind == KindPoll && t.JobRef == "":
		return t, fmt.Errorf("task message: a poll needs a job_ref")
	}
	return t, nil
}

// DecodeResult parses and checks a result message.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("result message: %w", err)
	}
	switch {
	case r.V != Version:
		return r, fmt.Errorf("result message: unsupported version %d", r.V)
	case r.TaskID == "" || r.Attempt < 1:
		return r, fmt.Errorf("result message: task_id and attempt are required")
	}
	if len(r.Identifiers) > 0 && r.Status != ResultResolved {
		return r, fmt.Errorf("result message: only a resolved result carries identifiers")
	}
	switch r.Status {
	case ResultErased, ResultNotFound:
		if r.Kind == KindResolve {
			return r, fmt.Errorf("result message: a resolve task answers resolved or failed, not %s", r.Status)
		}
		if r.Kind == KindRecheck && r.Status == ResultErased {
			return r, fmt.Errorf("result message: a re-check erases nothing: it answers not_found, found or failed")
		}
	case ResultFound:
		if r.Kind != KindRecheck {
			return r, fmt.Errorf("result message: found answers a re-check, not %q", r.Kind)
		}
		if r.Records < 1 {
			return r, fmt.Errorf("result message: found needs the number of records that remain")
		}
	case ResultResolved:
		if r.Kind != KindResolve {
			return r, fmt.Errorf("result message: resolved answers a resolve task, not %q", r.Kind)
		}
	case ResultRunning:
		if r.Kind == KindResolve || r.Kind == KindRecheck {
			return r, fmt.Errorf("result message: a %s task cannot be running", r.Kind)
		}
		if r.JobRef == "" {
			return r, fmt.Errorf("result message: running needs a job_ref")
		}
	case ResultFailed:
		if r.Error == nil {
			return r, fmt.Errorf("result message: failed needs an error")
		}
	default:
		return r, fmt.Errorf("result message: unknown status %q", r.Status)
	}
	return r, nil
}

// DecodeNotice parses and checks a notice message.
func DecodeNotice(b []byte) (Notice, error) {
	var n Notice
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("notice message: %w", err)
	}
	switch {
	case n.V != Version:
		return n, fmt.Errorf("notice message: unsupported version %d", n.V)
	case n.RequestID == "" || n.Kind == "":
		return n, fmt.Errorf("notice message: kind and request_id are required")
	}
	return n, nil
}

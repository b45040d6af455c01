package erasure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event types. Task events are "task." followed by the new task status.
const (
	EventRequestReceived  = "request.received"
	EventRequestStatus    = "request.status" // Data: {"from","to"}
	EventTaskCreated      = "task.created"
	EventTaskDispatched   = "task.dispatched"
	EventTaskRetry        = "task.retry_scheduled"
	EventTaskRedispatch   = "task.redispatched"
	EventTaskPoll         = "task.poll_scheduled"
	EventTaskResult       = "task.result" // Data: the connector's report
	EventCertificateIssue = "certificate.issued"
	EventShredded         = "request.shredded"
	EventExtended         = "request.extended"
	EventTaskExempted     = "task.exempted"
	EventReplayErased     = "replay.erased" // erased again after a backup restore
	// Identity resolution. Data names kinds and systems, never values.
	EventIdentifiersResolved = "identifiers.resolved" // Data: {"kinds","from"}
	EventIdentifiersAdded    = "identifiers.added"    // by staff; Data: {"kinds","from"}
	EventTaskLookUpAgain     = "task.look_up_again"   // a resolver asked again, by identifiers found since
	EventErasing             = "request.erasing"      // resolution done; Data: {"identifiers": [{kind, from}]}
	EventTaskReleased        = "task.released"        // an erase task that waited (erase_after, an identifier) is sent
	EventTaskNotApplicable   = "task.not_applicable"
	// A completed request flagged for staff by a re-check (see
	// Task.FollowUp), and the flag cleared by staff.
	EventRequestFlagged = "request.flagged" // Data: {"connector","phase","flag","evidence"}
	EventFlagCleared    = "request.flag_cleared"
)

// Actors that are not people.
const (
	ActorSystem      = "system"
	ActorCoordinator = "coordinator"
	ActorRelay       = "relay"
	ActorScheduler   = "scheduler"
	ActorRetention   = "retention"
)

// Event is one entry of a request's append-only log. Each event's Hash
// covers its content and the previous event's hash, so editing, dropping or
// reordering an event breaks the chain.
type Event struct {
	RequestID string
	Seq       int64 // 1, 2, 3… within the request
	Type      string
	TaskID    string // empty for request-level events
	Actor     string // who caused it: "api:<token name>", "coordinator", …
	Reason    string
	// Data is a compact JSON object with details. No personal data.
	Data     json.RawMessage
	At       time.Time
	PrevHash string
	Hash     string
}

// NewEvent builds an event with data marshalled to compact JSON.
func NewEvent(requestID, taskID, typ, actor, reason string, data any, at time.Time) Event {
	e := Event{RequestID: requestID, TaskID: taskID, Type: typ, Actor: actor, Reason: reason, At: Timestamp(at)}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			panic(fmt.Sprintf("erasure: event data not JSON: %v", err)) // a programming error
		}
		e.Data = b
	}
	return e
}

// ComputeHash returns the hash that e's Hash field must hold, given PrevHash.
func (e Event) ComputeHash() string {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		compact.Reset()
		compact.Write(data)
	}
	// A JSON array of strings and numbers has one encoding; the version tag
	// lets the layout change later without ambiguity.
	b, _ := json.Marshal([]any{
		"lethe-event-v1", e.RequestID, e.Seq, e.Type, e.TaskID, e.Actor, e.Reason,
		compact.String(), e.At.UTC().Format(time.RFC3339Nano), e.PrevHash,
	})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Chain sets e's Seq, PrevHash and Hash to follow prev (nil for the first
// event of a request).
func (e Event) Chain(prev *Event) Event {
	e.Seq, e.PrevHash = 1, ""
	if prev != nil {
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Hash = e.ComputeHash()
	return e
}

// VerifyChain checks that events form one unbroken chain for one request,
// in order from the first.
func VerifyChain(events []Event) error {
	var prev *Event
	for i := range events {
		e := events[i]
		if prev != nil && e.RequestID != prev.RequestID {
			return fmt.Errorf("event %d: belongs to another request", e.Seq)
		}
		want := e.Chain(prev)
		if e.Seq != want.Seq {
			return fmt.Errorf("event %d: expected sequence %d", e.Seq, want.Seq)
		}
		if e.PrevHash != want.PrevHash {
			return fmt.Errorf("event %d: previous hash does not match event %d", e.Seq, e.Seq-1)
		}
		if e.Hash != want.Hash {
			return fmt.Errorf("event %d: content does not match its hash", e.Seq)
		}
		prev = &events[i]
	}
	return nil
}

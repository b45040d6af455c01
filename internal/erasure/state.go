package erasure

// RequestStatus is where a request stands. See ARCHITECTURE.md, "Request
// lifecycle".
type RequestStatus string

// Request statuses.
const (
	RequestReceived                RequestStatus = "received"
	RequestUnverified              RequestStatus = "unverified"
	RequestPendingApproval         RequestStatus = "pending_approval"
	RequestInProgress              RequestStatus = "in_progress"
	RequestNeedsAttention          RequestStatus = "needs_attention"
	RequestCompleted               RequestStatus = "completed"
	RequestCompletedWithExemptions RequestStatus = "completed_with_exemptions"
	RequestDenied                  RequestStatus = "denied"
	RequestCancelled               RequestStatus = "cancelled"
)

var requestTransitions = map[RequestStatus][]RequestStatus{
	RequestReceived:        {RequestUnverified, RequestPendingApproval, RequestInProgress, RequestDenied, RequestCancelled},
	RequestUnverified:      {RequestPendingApproval, RequestInProgress, RequestCancelled},
	RequestPendingApproval: {RequestInProgress, RequestDenied, RequestCancelled},
	RequestInProgress:      {RequestNeedsAttention, RequestCompleted, RequestCompletedWithExemptions, RequestCancelled},
	RequestNeedsAttention:  {RequestInProgress, RequestCompleted, RequestCompletedWithExemptions, RequestCancelled},
}

// Valid reports whether s is a known status.
func (s RequestStatus) Valid() bool {
	switch s {
	case RequestReceived, RequestUnverified, RequestPendingApproval, RequestInProgress,
		RequestNeedsAttention, RequestCompleted, RequestCompletedWithExemptions,
		RequestDenied, RequestCancelled:
		return true
	}
	return false
}

// Final reports whether no further transition is possible.
func (s RequestStatus) Final() bool {
	switch s {
	case RequestCompleted, RequestCompletedWithExemptions, RequestDenied, RequestCancelled:
		return true
	}
	return false
}

// CanTransition reports whether a request may move from s to next.
func (s RequestStatus) CanTransition(next RequestStatus) bool {
	for _, n := range requestTransitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// TaskStatus is where one system's share of a request stands.
type TaskStatus string

// Task statuses.
const (
	TaskQueued     TaskStatus = "queued"     // written, not yet on the bus
	TaskDispatched TaskStatus = "dispatched" // published to the connector's stream
	TaskRunning    TaskStatus = "running"    // an asynchronous vendor job is under way
	TaskErased     TaskStatus = "erased"     // done: records removed
	TaskNotFound   TaskStatus = "not_found"  // done: the system held nothing
	TaskExempted   TaskStatus = "exempted"   // done: kept on an Art. 17(3) basis
	TaskFailed     TaskStatus = "failed"     // will be retried at NextAttemptAt
	TaskDead       TaskStatus = "dead"       // gave up; a person must act
)

var taskTransitions = map[TaskStatus][]TaskStatus{
	TaskQueued:     {TaskDispatched, TaskRunning, TaskErased, TaskNotFound, TaskFailed, TaskDead, TaskExempted},
	TaskDispatched: {TaskRunning, TaskErased, TaskNotFound, TaskFailed, TaskDead, TaskExempted},
	TaskRunning:    {TaskRunning, TaskErased, TaskNotFound, TaskFailed, TaskDead, TaskExempted},
	TaskFailed:     {TaskQueued, TaskDead, TaskExempted},
	TaskDead:       {TaskQueued, TaskExempted},
}

// Valid reports whether s is a known status.
func (s TaskStatus) Valid() bool {
	_, ok := taskTransitions[s]
	return ok || s.Done()
}

// Done reports whether the task is finished for good: erased, not found or
// exempted. A request completes when all its tasks are done.
func (s TaskStatus) Done() bool {
	return s == TaskErased || s == TaskNotFound || s == TaskExempted
}

// Active reports whether the task is out with a connector or waiting to be.
func (s TaskStatus) Active() bool {
	return s == TaskQueued || s == TaskDispatched || s == TaskRunning || s == TaskFailed
}

// CanTransition reports whether a task may move from s to next.
func (s TaskStatus) CanTransition(next TaskStatus) bool {
	for _, n := range taskTransitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// Aggregate derives a request's status from its tasks: completed when every
// task is done, needs_attention when any is dead, in_progress otherwise.
func Aggregate(tasks []Task) RequestStatus {
	status := RequestCompleted
	for _, t := range tasks {
		switch {
		case t.Status == TaskDead:
			return RequestNeedsAttention
		case !t.Status.Done():
			status = RequestInProgress
		case t.Status == TaskExempted && status == RequestCompleted:
			status = RequestCompletedWithExemptions
		}
	}
	return status
}

package erasure

// RequestStatus is where a request stands. See docs/architecture.md,
// "Lifecycles".
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
	TaskWaiting    TaskStatus = "waiting"    // held back: for a system it must follow (erase_after), or for identifiers to look up by
	TaskQueued     TaskStatus = "queued"     // written, not yet on the bus
	TaskDispatched TaskStatus = "dispatched" // published to the connector's stream
	TaskRunning    TaskStatus = "running"    // an asynchronous vendor job is under way
	TaskErased     TaskStatus = "erased"     // done: records removed
	TaskNotFound   TaskStatus = "not_found"  // done: looked up by the identifiers in SearchedBy, nothing there
	TaskExempted   TaskStatus = "exempted"   // done: kept on an Art. 17(3) basis
	TaskResolved   TaskStatus = "resolved"   // done (resolve phase): looked the person up; Found lists the kinds it supplied
	// TaskNotApplicable: done, because staff (or the config, for an
	// optional system) declared the system not applicable to this person;
	// Reason says why.
	TaskNotApplicable TaskStatus = "not_applicable"
	// TaskNeedsIdentifier: the system erases by a kind of identifier the
	// request does not have. Not done: a person adds the identifier,
	// declares the system not applicable, or exempts it.
	TaskNeedsIdentifier TaskStatus = "needs_identifier"
	TaskFailed          TaskStatus = "failed" // will be retried at NextAttemptAt
	// TaskScheduled: a re-check of a completed request, to run at
	// NextAttemptAt (see FollowUp).
	TaskScheduled TaskStatus = "scheduled"
	// TaskFoundAgain: done (a re-check): the system holds the person
	// again; a re-erasure task was made.
	TaskFoundAgain TaskStatus = "found_again"
	TaskDead       TaskStatus = "dead" // gave up; a person must act
)

// Phases of a request: every resolver looks the person up first, then
// every system erases by the identifiers found.
const (
	PhaseResolve = "resolve"
	PhaseErase   = "erase"
)

var taskTransitions = map[TaskStatus][]TaskStatus{
	TaskWaiting:         {TaskQueued, TaskNotApplicable, TaskExempted},
	TaskScheduled:       {TaskQueued, TaskNotApplicable},
	TaskNeedsIdentifier: {TaskQueued, TaskWaiting, TaskNotApplicable, TaskExempted},
	TaskQueued:          {TaskDispatched, TaskRunning, TaskErased, TaskNotFound, TaskResolved, TaskFoundAgain, TaskFailed, TaskDead, TaskExempted},
	TaskDispatched:      {TaskRunning, TaskErased, TaskNotFound, TaskResolved, TaskFoundAgain, TaskFailed, TaskDead, TaskExempted},
	TaskRunning:         {TaskRunning, TaskErased, TaskNotFound, TaskFailed, TaskDead, TaskExempted},
	TaskResolved:        {TaskQueued}, // looked up again by identifiers found since
	TaskFailed:          {TaskQueued, TaskDead, TaskExempted, TaskNotApplicable},
	TaskDead:            {TaskQueued, TaskExempted, TaskNotApplicable},
}

// Valid reports whether s is a known status.
func (s TaskStatus) Valid() bool {
	_, ok := taskTransitions[s]
	return ok || s.Done()
}

// Done reports whether the task is finished: erased, not found, exempted,
// not applicable, or (a resolver) resolved. A request completes when all
// its tasks are done.
func (s TaskStatus) Done() bool {
	switch s {
	case TaskErased, TaskNotFound, TaskExempted, TaskNotApplicable, TaskResolved, TaskFoundAgain:
		return true
	}
	return false
}

// NeedsPerson reports whether only a person can move the task on.
func (s TaskStatus) NeedsPerson() bool { return s == TaskDead || s == TaskNeedsIdentifier }

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

// Aggregate derives a request's status from its tasks: needs_attention
// when any task waits for a person (dead, or needing an identifier),
// completed when every task is done and the erase phase has begun (a
// request whose resolvers are done but whose erase tasks are not yet made
// is still in progress), in_progress otherwise.
func Aggregate(tasks []Task) RequestStatus {
	status := RequestCompleted
	erasing := false
	for _, t := range tasks {
		if t.Phase != PhaseResolve {
			erasing = true
		}
		switch {
		case t.Status.NeedsPerson():
			return RequestNeedsAttention
		case !t.Status.Done():
			status = RequestInProgress
		case t.Status == TaskExempted && status == RequestCompleted:
			status = RequestCompletedWithExemptions
		}
	}
	if !erasing {
		return RequestInProgress
	}
	return status
}

package erasure

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. The HTTP layer maps them to status codes; everything else
// only needs to know which class of failure it is looking at.
const (
	EInvalid      = "invalid"      // the caller sent something wrong
	ENotFound     = "not_found"    // no such thing
	EConflict     = "conflict"     // the thing is not in a state that allows this
	EUnauthorized = "unauthorized" // no or unknown credentials
	EForbidden    = "forbidden"    // known caller, not allowed
	ETooLarge     = "too_large"    // the body is over the limit
	EUnavailable  = "unavailable"  // a dependency is down; try again
	EInternal     = "internal"     // a bug or an unexpected failure
)

// RetryUnavailable is how long a caller is told to wait (HTTP Retry-After)
// after an EUnavailable failure: about what a database restart or a pool
// reconnecting takes.
const RetryUnavailable = 5 * time.Second

// Error is an error with a code and a message fit to show a user. Field names
// the input field at fault, in dotted form ("subject.email"), when there is one.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EInvalid error about one input field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-facing message of err: the message of the
// first *Error in its chain, or a generic text for anything else so that
// internals (SQL, stack details) never reach a user.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field named by the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

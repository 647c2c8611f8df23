package domain

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for API clients; the values are the GraphQL
// extensions.code strings of the contract.
type Code string

// Error codes of the API contract.
const (
	CodeUnauthenticated  Code = "UNAUTHENTICATED"
	CodeForbidden        Code = "FORBIDDEN"
	CodeBadUserInput     Code = "BAD_USER_INPUT"
	CodeNotFound         Code = "NOT_FOUND"
	CodeAuditLogDisabled Code = "AUDIT_LOG_DISABLED"
	CodeRegionImmutable  Code = "REGION_IMMUTABLE"
	CodeConflict         Code = "CONFLICT"
	CodeRateLimited      Code = "RATE_LIMITED"
	// CodeSlowConsumer ends a live subscription whose client stopped
	// reading; it may resubscribe from its last event.
	CodeSlowConsumer Code = "SLOW_CONSUMER"
	// CodeExpired answers a download of an export whose file was deleted.
	CodeExpired Code = "EXPIRED"
	// CodeUnavailable says the log could not take the call just now (its
	// stream or store was unreachable); the same call may be sent again.
	CodeUnavailable Code = "UNAVAILABLE"
	// CodeComplexityLimit refuses a query whose estimated answer is too
	// large; it is gqlgen's own code for the same refusal.
	CodeComplexityLimit Code = "COMPLEXITY_LIMIT_EXCEEDED"
	// CodeQueryTooLarge refuses a query whose text or shape is too large
	// to process: too long, too many tokens, definitions, fields, aliases
	// or repeated fields. The message names the limit.
	CodeQueryTooLarge Code = "QUERY_TOO_LARGE"
	// CodeResponseTooLarge replaces an answer larger than the server sends;
	// ask for fewer rows or fields.
	CodeResponseTooLarge Code = "RESPONSE_TOO_LARGE"
	CodeInternal         Code = "INTERNAL"
)

// Error is an error a client can act on: it carries a code, a message safe to
// show, and the input field it concerns, if any.
type Error struct {
	Code    Code
	Field   string
	Message string
	// Cause is the failure behind the error, for logs; it is never shown.
	Cause error
	// RetryAfter, when set, is how long the client should wait before
	// sending the same call again: the log is overloaded, not failing, and
	// a client that waits this long finds room (extensions.retryAfter on
	// GraphQL, retryAfter on NATS ingest, in seconds).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Unwrap is the cause, so errors.Is and errors.As see it.
func (e *Error) Unwrap() error { return e.Cause }

// Is makes errors.Is match any *Error with the same code, so callers can test
// against the sentinels below.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Field == "" && t.Message == "" && t.Cause == nil && t.Code == e.Code
}

// Sentinels for errors.Is; compare by code only.
var (
	ErrUnauthenticated  = &Error{Code: CodeUnauthenticated}
	ErrForbidden        = &Error{Code: CodeForbidden}
	ErrBadInput         = &Error{Code: CodeBadUserInput}
	ErrNotFound         = &Error{Code: CodeNotFound}
	ErrAuditLogDisabled = &Error{Code: CodeAuditLogDisabled}
	ErrRegionImmutable  = &Error{Code: CodeRegionImmutable}
	ErrConflict         = &Error{Code: CodeConflict}
	ErrRateLimited      = &Error{Code: CodeRateLimited}
)

// Errorf returns an *Error with the given code and field.
func Errorf(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// BadInput returns a BAD_USER_INPUT error naming field.
func BadInput(field, format string, args ...any) *Error {
	return Errorf(CodeBadUserInput, field, format, args...)
}

// Unavailable is the UNAVAILABLE error for cause: nothing the caller sent
// was wrong, and sending it again is safe.
func Unavailable(message string, cause error) *Error {
	return &Error{Code: CodeUnavailable, Message: message, Cause: cause}
}

// Overloaded is the UNAVAILABLE error of a call the log refused because it
// was busy: the same call may be sent again after retryAfter.
func Overloaded(message string, retryAfter time.Duration, cause error) *Error {
	return &Error{Code: CodeUnavailable, Message: message, Cause: cause, RetryAfter: retryAfter}
}

// CodeOf reports the code of the first *Error in err's chain, or INTERNAL.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

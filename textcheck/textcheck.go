// Package textcheck decides whether client text and JSON can be taken as
// they are: read the same way by every decoder on the way (Go's, the GraphQL
// lexer's, PostgreSQL's jsonb) and storable in PostgreSQL text and jsonb.
//
// It reads bytes only and knows nothing of events or APIs; callers turn its
// *Error into their own error type.
package textcheck

import "fmt"

// Error names the part of an input that cannot be taken, and why, in words
// safe to show the client that sent it.
type Error struct {
	// Field is the path of the offending value below the field the caller
	// named ("details.changes[0].after"); empty for the whole input.
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

func bad(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Package logstream is the model of log streams, which deliver an
// organization's audit log to the SIEM it uses: the kinds of destination
// and their configuration, the Sender each destination implements, the
// errors that tell the delivery engine whether to retry, how events are
// rendered and batched, and the guarded network access every destination
// shares (egress policy, verified TLS, time-outs, capped reads).
//
// The destinations are in logstream/webhook, logstream/splunk and
// logstream/syslog.
package logstream

import (
	"context"

	"github.com/auditlog/auditlog/domain"
)

// Sender delivers batches of events to one stream's destination. The
// delivery engine calls Send with events in log order and acknowledges the
// first Result.Delivered of them; on an error it retries the rest later if
// the error is retryable (see ClassOf) and stops the stream if not.
type Sender interface {
	// Send delivers batch, cutting it into requests within the
	// destination's Limits. It stops at the first failure: the events
	// before it are delivered (Result.Delivered), the others not.
	Send(ctx context.Context, batch []*domain.Event) (Result, error)
	// Test sends one test event, signed or authenticated as real ones are,
	// and returns what the destination answered, for an admin checking a
	// new stream (the testLogStream mutation).
	Test(ctx context.Context) (TestResult, error)
}

// Result is what a Send delivered.
type Result struct {
	// Delivered is how many events, from the start of the batch, the
	// destination accepted.
	Delivered int
	// Requests is how many requests (or, for syslog, connections) it took.
	Requests int
	// Bytes is the size of the payloads sent.
	Bytes int
}

// TestResult is what a destination answered a test event, to show an
// admin. Body is the start of the answer, capped and with anything that
// is not printable text replaced.
type TestResult struct {
	// Status is the HTTP status, 0 for syslog.
	Status int
	// Code is the destination's own result code, if it has one (Splunk's
	// "code"), else "".
	Code string
	// Body is the first bytes of the answer (at most TestBodyBytes).
	Body string
}

// TestBodyBytes caps TestResult.Body.
const TestBodyBytes = 512

// Package ndjson is the NDJSON export format: a plain file of one event
// per line (Encoder), and a file that proves itself (ProvedEncoder): a
// signed checkpoint first, each event line with its record, leaf index and
// inclusion proof, and a signed manifest last, which Verify checks offline
// with the log's verifier key alone (auditd verify).
package ndjson

import (
	"bufio"
	"encoding/json"
	"io"
	"time"

	"github.com/auditlog/auditlog/domain"
)

// NewEncoder writes events to w as NDJSON, without proofs.
func NewEncoder(w io.Writer) *Encoder {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &Encoder{w: bw, enc: json.NewEncoder(bw)}
}

// Encoder writes an NDJSON export without proofs: one JSON object per
// line, an event each. Build it with NewEncoder.
type Encoder struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// ndjsonEvent is the line format: the event as recorded, with its catalog
// category and description, as the API shows it.
type ndjsonEvent struct {
	ID          string           `json:"id"`
	Type        domain.EventType `json:"type"`
	Category    domain.Category  `json:"category"`
	Description string           `json:"description"`
	Source      domain.Source    `json:"source"`
	OccurredAt  time.Time        `json:"occurredAt"`
	RecordedAt  time.Time        `json:"recordedAt"`
	Actor       domain.Actor     `json:"actor"`
	Target      *domain.Target   `json:"target,omitempty"`
	IPAddress   string           `json:"ipAddress,omitempty"`
	UserAgent   string           `json:"userAgent,omitempty"`
	RequestID   string           `json:"requestId,omitempty"`
	Details     json.RawMessage  `json:"details"`
}

// Encode writes e's line.
func (n *Encoder) Encode(e *domain.Event) error {
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage("{}")
	}
	return n.enc.Encode(ndjsonEvent{
		ID: e.ID, Type: e.Type, Category: e.Category(), Description: e.Description(), Source: e.Source,
		OccurredAt: e.OccurredAt.UTC(), RecordedAt: e.RecordedAt.UTC(), Actor: e.Actor, Target: e.Target,
		IPAddress: e.IPAddress, UserAgent: e.UserAgent, RequestID: e.RequestID, Details: details,
	})
}

// Flush writes out what is buffered and reports a write error.
func (n *Encoder) Flush() error { return n.w.Flush() }

// Package ndjson is the NDJSON export format: a plain file of one event
// per line (Encoder), and a file that proves itself (ProvedEncoder): a
// signed checkpoint and the filter first, each event line with its leaf
// index, one range proof for all of them after the lines, and a signed
// manifest last, which Verify checks offline with the log's verifier key
// alone (auditd verify).
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
	return n.enc.Encode(showEvent(e))
}

// Flush writes out what is buffered and reports a write error.
func (n *Encoder) Flush() error { return n.w.Flush() }

package logstream

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
	"github.com/auditlog/auditlog/ocsf"
)

// Encoder renders one event in a stream's format. Build it with
// NewEncoder; it keeps a buffer, so one Encoder serves one goroutine.
type Encoder struct {
	format  Format
	product ocsf.Product
	buf     bytes.Buffer
	line    *ndjson.Encoder
}

// NewEncoder renders events in format f; product is what OCSF events name
// as their producer (metadata.product).
func NewEncoder(f Format, product ocsf.Product) (*Encoder, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("logstream: unknown format %q", f)
	}
	e := &Encoder{format: f, product: product}
	e.line = ndjson.NewEncoder(&e.buf)
	return e, nil
}

// Encode returns e as one JSON object, in a new slice.
//
// JSON is the line of an NDJSON export (the event as the API shows it,
// id first) with "leafIndex" added last: null for an event not yet
// projected. OCSF carries the id as metadata.uid and the leaf index as
// metadata.sequence and unmapped.leaf_index.
func (enc *Encoder) Encode(e *domain.Event) ([]byte, error) {
	if enc.format == FormatOCSF {
		return ocsf.Marshal(e, enc.product)
	}
	enc.buf.Reset()
	if err := enc.line.Encode(e); err != nil {
		return nil, fmt.Errorf("logstream: encode event %s: %w", e.ID, err)
	}
	if err := enc.line.Flush(); err != nil {
		return nil, fmt.Errorf("logstream: encode event %s: %w", e.ID, err)
	}
	line := bytes.TrimRight(enc.buf.Bytes(), "\n")
	if len(line) < 2 || line[len(line)-1] != '}' {
		return nil, fmt.Errorf("logstream: event %s did not encode to an object", e.ID)
	}
	out := make([]byte, 0, len(line)+24)
	out = append(out, line[:len(line)-1]...)
	out = append(out, `,"leafIndex":`...)
	if e.LeafIndex == nil {
		out = append(out, "null"...)
	} else {
		out = strconv.AppendInt(out, *e.LeafIndex, 10)
	}
	return append(out, '}'), nil
}

// EncodeOne renders the single event e in format f, as a destination's
// test does.
func EncodeOne(f Format, product ocsf.Product, e *domain.Event) ([]byte, error) {
	enc, err := NewEncoder(f, product)
	if err != nil {
		return nil, err
	}
	return enc.Encode(e)
}

// EncodeAll encodes each event of batch.
func (enc *Encoder) EncodeAll(batch []*domain.Event) ([][]byte, error) {
	out := make([][]byte, len(batch))
	for i, e := range batch {
		b, err := enc.Encode(e)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

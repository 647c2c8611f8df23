package model

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// JSON binds the JSON scalar to json.RawMessage through MarshalJSON and
// UnmarshalJSON below.
type JSON = json.RawMessage

// MarshalJSON writes raw JSON as the scalar's value.
func MarshalJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		_, _ = w.Write(v)
	})
}

// UnmarshalJSON accepts any JSON value a client sent.
func UnmarshalJSON(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not a JSON value: %w", err)
	}
	return b, nil
}

// Time binds the Time scalar to time.Time through MarshalTime and
// UnmarshalTime below.
type Time = time.Time

// MarshalTime writes t in RFC 3339 with nanoseconds, as gqlgen's own Time.
func MarshalTime(t time.Time) graphql.Marshaler { return graphql.MarshalTime(t) }

// dateOnly is the layout of a bare date, taken as midnight UTC.
const dateOnly = "2006-01-02"

// UnmarshalTime accepts an RFC 3339 date-time with an offset, or a date
// alone as the midnight (UTC) that starts it, and says what it expected
// otherwise: gqlgen's own message names neither the format nor an example.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("must be a string with an RFC 3339 time such as 2026-11-25T10:00:00Z, got %T", v)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(dateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("must be an RFC 3339 time such as 2026-11-25T10:00:00Z (or a date such as 2026-11-25, meaning midnight UTC), got %q", truncate(s, 64))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

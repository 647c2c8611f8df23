package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/textcheck"
)

// Limits on what an event may carry; they keep one producer from filling the
// log with a single event.
const (
	MaxDetailsBytes = 64 << 10
	MaxStringLen    = 1024
	MaxIDLen        = 128
	// MaxClockSkew is how far in the future occurredAt may lie by default.
	MaxClockSkew = 5 * time.Minute
	// MaxFutureSkewLimit bounds a configured future skew: the streams'
	// retention margin and reconciliation assume no event occurs later
	// than this after it was stored.
	MaxFutureSkewLimit = 12 * time.Hour
)

// EarliestOccurredAt bounds occurredAt from below; anything older is a bug in
// the producer, not history.
var EarliestOccurredAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// orgIDPattern keeps org ids safe to embed in NATS subjects and SQL identifiers.
var orgIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidOrgID reports whether id can name an organization.
func ValidOrgID(id string) bool { return orgIDPattern.MatchString(id) }

// ValidEventID reports whether id is a ULID or a UUID.
func ValidEventID(id string) bool {
	if len(id) == ulid.EncodedSize {
		if _, err := ulid.ParseStrict(id); err == nil {
			return true
		}
	}
	if len(id) == 36 {
		if _, err := uuid.Parse(id); err == nil {
			return true
		}
	}
	return false
}

// Validate checks e against the envelope rules and its type's payload schema.
// now is the recording time, used to reject events from the future. The error
// is a BAD_USER_INPUT *Error naming the first offending field.
func (e *Event) Validate(now time.Time) error { return e.ValidateWithin(now, MaxClockSkew) }

// ValidateWithin is Validate with occurredAt allowed up to maxFuture after
// now (the configured skew; see MaxFutureSkewLimit).
func (e *Event) ValidateWithin(now time.Time, maxFuture time.Duration) error {
	switch {
	case !ValidEventID(e.ID):
		return BadInput("id", "must be a ULID or a UUID")
	case !ValidOrgID(e.OrgID):
		return BadInput("orgId", "must be 1-64 letters, digits, '-' or '_'")
	case !e.Source.Valid():
		return BadInput("source", "unknown source %q", e.Source)
	case !e.Type.Valid():
		return BadInput("type", "unknown event type %q", e.Type)
	case e.OccurredAt.IsZero():
		return BadInput("occurredAt", "is required: an RFC 3339 time such as 2026-01-02T15:04:05Z (0001-01-01T00:00:00Z is the zero time, which says nothing)")
	case e.OccurredAt.Before(EarliestOccurredAt):
		return BadInput("occurredAt", "is before %s", EarliestOccurredAt.Format(time.RFC3339))
	case e.OccurredAt.After(now.Add(maxFuture)):
		return BadInput("occurredAt", "is more than %s in the future", maxFuture)
	}
	if err := e.Actor.Validate(); err != nil {
		return err
	}
	if e.Target != nil {
		if err := checkString("target.kind", e.Target.Kind, true, MaxIDLen); err != nil {
			return err
		}
		if err := checkString("target.id", e.Target.ID, true, MaxIDLen); err != nil {
			return err
		}
		if err := checkString("target.name", e.Target.Name, false, MaxStringLen); err != nil {
			return err
		}
	}
	if e.IPAddress != "" && net.ParseIP(e.IPAddress) == nil {
		return BadInput("ipAddress", "is not an IPv4 or IPv6 address")
	}
	if err := checkString("userAgent", e.UserAgent, false, MaxStringLen); err != nil {
		return err
	}
	if err := checkString("requestId", e.RequestID, false, MaxIDLen); err != nil {
		return err
	}
	return ValidateDetails(e.Type, e.Details)
}

// Validate reports the first field of a that an event cannot carry.
func (a Actor) Validate() error {
	if !a.Kind.Valid() {
		return BadInput("actor.kind", "unknown actor kind %q", a.Kind)
	}
	if err := checkString("actor.id", a.ID, true, MaxIDLen); err != nil {
		return err
	}
	if err := checkString("actor.name", a.Name, false, MaxStringLen); err != nil {
		return err
	}
	if a.Email != "" {
		if err := checkEmail("actor.email", a.Email); err != nil {
			return err
		}
	}
	return nil
}

// ValidateDetails checks a payload against the schema of type t: every
// required field present, every present field declared and of its type.
func ValidateDetails(t EventType, details json.RawMessage) error {
	info, ok := t.Info()
	if !ok {
		return BadInput("type", "unknown event type %q", t)
	}
	if len(details) > MaxDetailsBytes {
		return BadInput("details", "is larger than %d bytes", MaxDetailsBytes)
	}
	fields := map[string]json.RawMessage{}
	if trimmed := bytes.TrimSpace(details); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		// Read the bytes once, as every decoder and jsonb will: no key
		// twice, no NUL or lone surrogate, at any depth.
		if err := CheckJSON("details", trimmed); err != nil {
			return err
		}
		if trimmed[0] != '{' {
			return BadInput("details", "must be a JSON object")
		}
		// Most payloads' keys need no unescaping: read them without
		// encoding/json's reflection.
		if !textcheck.PlainMembers(trimmed, func(k string, v []byte) { fields[k] = v }) {
			clear(fields)
			if err := json.Unmarshal(trimmed, &fields); err != nil {
				return BadInput("details", "is not valid JSON: %v", err)
			}
		}
	}
	declared := make(map[string]bool, len(info.Fields))
	for _, f := range info.Fields {
		declared[f.Name] = true
		raw, present := fields[f.Name]
		if !present || bytes.Equal(raw, []byte("null")) {
			if f.Required {
				return BadInput("details."+f.Name, "is required for %s", t)
			}
			continue
		}
		// A change list checks each value itself, naming where the bad
		// text is; everything else is checked as one JSON text.
		if f.Type != FieldChangeList {
			if err := CheckJSONText("details."+f.Name, raw); err != nil {
				return err
			}
		}
		if err := checkField(f, raw); err != nil {
			return err
		}
	}
	for name := range fields {
		if !declared[name] {
			return BadInput("details."+name, "is not a field of %s", t)
		}
	}
	return nil
}

func checkField(f Field, raw json.RawMessage) error {
	path := "details." + f.Name
	switch f.Type {
	case FieldString, FieldEmail, FieldTime:
		s, plain := textcheck.PlainString(raw)
		if !plain && json.Unmarshal(raw, &s) != nil {
			return BadInput(path, "must be a string")
		}
		if err := checkString(path, s, f.Required, MaxStringLen); err != nil {
			return err
		}
		if f.Type == FieldEmail {
			return checkEmail(path, s)
		}
		if f.Type == FieldTime {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return BadInput(path, "must be an RFC 3339 time")
			}
		}
	case FieldBoolean:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return BadInput(path, "must be a boolean")
		}
	case FieldInt:
		var n int64
		if json.Unmarshal(raw, &n) != nil {
			return BadInput(path, "must be an integer")
		}
	case FieldStringList:
		var ss []string
		if json.Unmarshal(raw, &ss) != nil {
			return BadInput(path, "must be a list of strings")
		}
		for i, s := range ss {
			// The element's path is made for its error only.
			if checkString(path, s, true, MaxStringLen) != nil {
				return checkString(fmt.Sprintf("%s[%d]", path, i), s, true, MaxStringLen)
			}
		}
	case FieldChangeList:
		var cs []map[string]json.RawMessage
		if json.Unmarshal(raw, &cs) != nil {
			return BadInput(path, "must be a list of {field, before, after} objects")
		}
		if f.Required && len(cs) == 0 {
			return BadInput(path, "must name at least one change")
		}
		for i, c := range cs {
			p := fmt.Sprintf("%s[%d]", path, i)
			var name string
			if json.Unmarshal(c["field"], &name) != nil || name == "" {
				return BadInput(p+".field", "is required and must be a string")
			}
			if err := checkString(p+".field", name, true, MaxStringLen); err != nil {
				return err
			}
			for k, v := range c {
				if k != "field" && k != "before" && k != "after" {
					return BadInput(p+"."+k, "is not a field of a change")
				}
				if err := CheckJSONValue(p+"."+k, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkString(field, s string, required bool, max int) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return BadInput(field, "is required")
	case len(s) > max:
		return BadInput(field, "is longer than %d bytes", max)
	}
	return CheckText(field, s)
}

func checkEmail(field, s string) error {
	if err := CheckText(field, s); err != nil {
		return err
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return BadInput(field, "must be a plain email address")
	}
	return nil
}

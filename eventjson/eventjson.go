// Package eventjson writes and reads a domain.Event as JSON without
// reflection: Append is json.Marshal of an event and Decode is
// json.Unmarshal into one, byte for byte and field for field, for the
// events the audit log stores every second. An event is written once by
// ingest and read once by the projector (and once by NATS ingest from its
// producer), so these two sit on the path from accept to queryable.
//
// Each takes a fast path for the common form (strings that need no escape,
// times in UTC, details a JSON object) and hands anything else to
// encoding/json, whose result is the definition both must meet.
package eventjson

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

// Append appends json.Marshal(e) to dst: the same bytes, or the same error.
func Append(dst []byte, e *domain.Event) ([]byte, error) {
	if out, ok := appendFast(dst, e); ok {
		return out, nil
	}
	data, err := json.Marshal(e)
	if err != nil {
		return dst, err
	}
	return append(dst, data...), nil
}

// Marshal is json.Marshal(e).
func Marshal(e *domain.Event) ([]byte, error) {
	return Append(make([]byte, 0, 384+len(e.Details)), e)
}

func appendFast(dst []byte, e *domain.Event) ([]byte, bool) {
	start := len(dst)
	ok := true
	str := func(key, s string) {
		dst = append(dst, key...)
		dst, ok = appendString(dst, s, ok)
	}
	opt := func(key, s string) {
		if s != "" {
			str(key, s)
		}
	}
	tm := func(key string, t time.Time) {
		dst = append(dst, key...)
		dst, ok = appendTime(dst, t, ok)
	}
	str(`{"id":`, e.ID)
	str(`,"orgId":`, e.OrgID)
	str(`,"source":`, string(e.Source))
	str(`,"type":`, string(e.Type))
	tm(`,"occurredAt":`, e.OccurredAt)
	tm(`,"recordedAt":`, e.RecordedAt)
	str(`,"actor":{"kind":`, string(e.Actor.Kind))
	str(`,"id":`, e.Actor.ID)
	opt(`,"name":`, e.Actor.Name)
	opt(`,"email":`, e.Actor.Email)
	dst = append(dst, '}')
	if e.Target != nil {
		str(`,"target":{"kind":`, e.Target.Kind)
		str(`,"id":`, e.Target.ID)
		opt(`,"name":`, e.Target.Name)
		dst = append(dst, '}')
	}
	opt(`,"ipAddress":`, e.IPAddress)
	opt(`,"userAgent":`, e.UserAgent)
	opt(`,"requestId":`, e.RequestID)
	dst = append(dst, `,"details":`...)
	if !ok {
		return dst[:start], false
	}
	if e.Details == nil {
		dst = append(dst, "null"...)
	} else {
		// encoding/json compacts a RawMessage and escapes <, >, &, U+2028
		// and U+2029 in it; json.Compact does the first only.
		d := e.Details
		if bytes.ContainsAny(d, "<>&") || bytes.Contains(d, lineSep) || bytes.Contains(d, paraSep) {
			return dst[:start], false
		}
		buf := bytes.NewBuffer(dst)
		if json.Compact(buf, d) != nil {
			return dst[:start], false
		}
		dst = buf.Bytes()
	}
	return append(dst, '}'), true
}

var (
	lineSep = []byte("\u2028")
	paraSep = []byte("\u2029")
)

// appendString appends s quoted as encoding/json writes it, if that is s
// between quotes: no byte that it escapes (controls, ", \, <, >, &),
// valid UTF-8 without U+2028 or U+2029. Otherwise it reports false.
func appendString(dst []byte, s string, ok bool) ([]byte, bool) {
	if !ok {
		return dst, false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			return dst, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && (!utf8.ValidString(s) || bytes.Contains([]byte(s), lineSep) || bytes.Contains([]byte(s), paraSep)) {
		return dst, false
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// appendTime appends t as time.Time's MarshalJSON writes it, for a time in
// UTC within the years it writes.
func appendTime(dst []byte, t time.Time, ok bool) ([]byte, bool) {
	if !ok {
		return dst, false
	}
	if _, off := t.Zone(); off != 0 {
		return dst, false
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// Decode is json.Unmarshal(data, e) for an e that holds nothing yet: the
// same event, or the same error.
func Decode(data []byte, e *domain.Event) error {
	if d, ok := decodeFast(data); ok {
		*e = d
		return nil
	}
	return json.Unmarshal(data, e)
}

// DecodeEvent is domain.DecodeEvent: one event as a producer sent it, read
// without reflection when it is in the common form. It gives the same
// event or the same error.
func DecodeEvent(raw []byte) (domain.Event, error) {
	// DecodeEvent checks the text first; the fast path is taken only for
	// a text that check passes, and then gives the event the rest of
	// DecodeEvent would: every key is an event's, read once.
	if domain.CheckJSON("", raw) == nil {
		if e, ok := decodeFast(raw); ok {
			return e, nil
		}
	}
	return domain.DecodeEvent(raw)
}

// decodeFast reads an event object whose strings need no unescaping, in
// any key order and spacing, each key an event's (spelled exactly) at most
// once, times as time.Time reads them, target absent or an object and
// details a JSON object. Anything else gives false.
func decodeFast(data []byte) (domain.Event, bool) {
	var e domain.Event
	r := reader{b: data}
	var seen uint16
	ok := r.object(func(key []byte) bool {
		i := eventKey(key)
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		switch i {
		case kID:
			return r.str(&e.ID)
		case kOrgID:
			return r.str(&e.OrgID)
		case kSource:
			return r.str((*string)(&e.Source))
		case kType:
			return r.str((*string)(&e.Type))
		case kOccurredAt:
			return r.time(&e.OccurredAt)
		case kRecordedAt:
			return r.time(&e.RecordedAt)
		case kActor:
			return r.actor(&e.Actor)
		case kTarget:
			e.Target = new(domain.Target)
			return r.target(e.Target)
		case kIPAddress:
			return r.str(&e.IPAddress)
		case kUserAgent:
			return r.str(&e.UserAgent)
		case kRequestID:
			return r.str(&e.RequestID)
		case kDetails:
			return r.details(&e.Details)
		}
		return false
	})
	r.ws()
	if !ok || len(r.b) != 0 {
		return domain.Event{}, false
	}
	return e, true
}

// The keys of an event, as bits of decodeFast's seen.
const (
	kID = iota
	kOrgID
	kSource
	kType
	kOccurredAt
	kRecordedAt
	kActor
	kTarget
	kIPAddress
	kUserAgent
	kRequestID
	kDetails
)

func eventKey(k []byte) int {
	switch string(k) {
	case "id":
		return kID
	case "orgId":
		return kOrgID
	case "source":
		return kSource
	case "type":
		return kType
	case "occurredAt":
		return kOccurredAt
	case "recordedAt":
		return kRecordedAt
	case "actor":
		return kActor
	case "target":
		return kTarget
	case "ipAddress":
		return kIPAddress
	case "userAgent":
		return kUserAgent
	case "requestId":
		return kRequestID
	case "details":
		return kDetails
	}
	return -1
}

// reader consumes JSON from the front of b.
type reader struct{ b []byte }

func (r *reader) ws() {
	for len(r.b) > 0 && (r.b[0] == ' ' || r.b[0] == '\t' || r.b[0] == '\n' || r.b[0] == '\r') {
		r.b = r.b[1:]
	}
}

func (r *reader) byte(c byte) bool {
	r.ws()
	if len(r.b) == 0 || r.b[0] != c {
		return false
	}
	r.b = r.b[1:]
	return true
}

// object reads an object, calling field after each key and its colon to
// read the value.
func (r *reader) object(field func(key []byte) bool) bool {
	if !r.byte('{') {
		return false
	}
	if r.byte('}') {
		return true
	}
	for {
		var key []byte
		if !r.raw(&key) || !r.byte(':') || !field(key) {
			return false
		}
		if r.byte('}') {
			return true
		}
		if !r.byte(',') {
			return false
		}
	}
}

// raw reads a string that decodes to its own bytes: no escape, no control
// character, valid UTF-8 (encoding/json replaces invalid bytes). It sets
// *out to the bytes between the quotes.
func (r *reader) raw(out *[]byte) bool {
	r.ws()
	if len(r.b) == 0 || r.b[0] != '"' {
		return false
	}
	ascii := true
	for i := 1; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			s := r.b[1:i]
			if !ascii && !utf8.Valid(s) {
				return false
			}
			*out, r.b = s, r.b[i+1:]
			return true
		case c < 0x20 || c == '\\':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return false
}

func (r *reader) str(out *string) bool {
	var s []byte
	if !r.raw(&s) {
		return false
	}
	*out = string(s)
	return true
}

// time reads a time as time.Time's UnmarshalJSON does.
func (r *reader) time(out *time.Time) bool {
	r.ws()
	start := r.b
	var s []byte
	if !r.raw(&s) {
		return false
	}
	return out.UnmarshalJSON(start[:len(s)+2]) == nil
}

func (r *reader) actor(a *domain.Actor) bool {
	return r.strings([]string{"kind", "id", "name", "email"}, (*string)(&a.Kind), &a.ID, &a.Name, &a.Email)
}

func (r *reader) target(t *domain.Target) bool {
	return r.strings([]string{"kind", "id", "name"}, &t.Kind, &t.ID, &t.Name)
}

// strings reads an object of string members, each named in names at most
// once, into the dst of the same position; any other key leaves the fast
// path.
func (r *reader) strings(names []string, dst ...*string) bool {
	var seen uint8
	return r.object(func(key []byte) bool {
		for i, name := range names {
			if string(key) != name {
				continue
			}
			if seen&(1<<i) != 0 {
				return false
			}
			seen |= 1 << i
			return r.str(dst[i])
		}
		return false
	})
}

// details reads a JSON object as encoding/json keeps a RawMessage: its
// bytes, copied.
func (r *reader) details(out *json.RawMessage) bool {
	r.ws()
	if len(r.b) == 0 || r.b[0] != '{' {
		return false
	}
	n := objectEnd(r.b)
	if n < 0 || !json.Valid(r.b[:n]) {
		return false
	}
	*out = append(json.RawMessage(nil), r.b[:n]...)
	r.b = r.b[n:]
	return true
}

// objectEnd is the length of the object b starts with, by its brackets
// and strings, or -1.
func objectEnd(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

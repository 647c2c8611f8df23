package ndjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

// appendLine appends to dst the event line encodeLine writes for the same
// n, leaf, record and org, byte for byte, without decoding the record into
// an Event and encoding the line through reflection. It handles the records
// ingest stores, json.Marshal of a domain.Event: the fields in their order,
// each omitempty field present only when not empty, strings that decode to
// themselves and re-encode to themselves. Anything else (an escaped or
// HTML-significant character in a string, an unknown or duplicated field,
// details that are not an object) gives ok false and dst unchanged, and the
// caller writes the line with encodeLine, whose output is the format's
// definition. The line leaves the record out when the record is what
// json.Marshal makes of the line's event in org: times in UTC as the line
// shows them, details compact. compact is scratch space for the details.
func appendLine(dst []byte, compact *bytes.Buffer, n, leaf int64, record []byte, org string) (_ []byte, ok bool) {
	r := recordScanner{b: record}
	var f struct {
		id, org, source, typ, occurred, recorded, actor, target, ip, ua, req []byte
	}
	if !r.lit(`{"id":`) || !r.str(&f.id) ||
		!r.lit(`,"orgId":`) || !r.str(&f.org) ||
		!r.lit(`,"source":`) || !r.str(&f.source) ||
		!r.lit(`,"type":`) || !r.str(&f.typ) ||
		!r.lit(`,"occurredAt":`) || !r.str(&f.occurred) ||
		!r.lit(`,"recordedAt":`) || !r.str(&f.recorded) ||
		!r.lit(`,"actor":`) || !r.actor(&f.actor) {
		return dst, false
	}
	if r.lit(`,"target":`) && !r.target(&f.target) {
		return dst, false
	}
	if !r.optStr(`,"ipAddress":`, &f.ip) || !r.optStr(`,"userAgent":`, &f.ua) || !r.optStr(`,"requestId":`, &f.req) {
		return dst, false
	}
	// details is the record's last field: what lies between it and the
	// record's closing brace must be one JSON object.
	if !r.lit(`,"details":`) || len(r.b) < 2 || r.b[0] != '{' || r.b[len(r.b)-1] != '}' {
		return dst, false
	}
	details := r.b[:len(r.b)-1]
	// encoding/json compacts a RawMessage and escapes <, >, &, U+2028 and
	// U+2029 in it; json.Compact does the first only, so those are left to
	// encodeLine.
	if bytes.ContainsAny(details, "<>&") || bytes.Contains(details, lineSep) || bytes.Contains(details, paraSep) {
		return dst, false
	}
	compact.Reset()
	if json.Compact(compact, details) != nil {
		return dst, false
	}
	// The record can be left out when a verifier rebuilds it from the line:
	// every string is copied as it is, so only the org, the times and the
	// details may differ from what json.Marshal writes.
	rebuilt := string(f.org[1:len(f.org)-1]) == org && bytes.Equal(compact.Bytes(), details)
	start := len(dst)
	dst = append(dst, `{"id":`...)
	dst = append(dst, f.id...)
	dst = append(dst, `,"type":`...)
	dst = append(dst, f.typ...)
	dst = append(dst, ',')
	dst = appendCategory(dst, domain.EventType(f.typ[1:len(f.typ)-1]))
	dst = append(dst, `,"source":`...)
	dst = append(dst, f.source...)
	dst = append(dst, `,"occurredAt":`...)
	at := len(dst)
	if dst, ok = appendTime(dst, f.occurred); !ok {
		return dst[:start], false
	}
	rebuilt = rebuilt && bytes.Equal(dst[at:], f.occurred)
	dst = append(dst, `,"recordedAt":`...)
	at = len(dst)
	if dst, ok = appendTime(dst, f.recorded); !ok {
		return dst[:start], false
	}
	rebuilt = rebuilt && bytes.Equal(dst[at:], f.recorded)
	dst = append(dst, `,"actor":`...)
	dst = append(dst, f.actor...)
	if f.target != nil {
		dst = append(dst, `,"target":`...)
		dst = append(dst, f.target...)
	}
	if f.ip != nil {
		dst = append(dst, `,"ipAddress":`...)
		dst = append(dst, f.ip...)
	}
	if f.ua != nil {
		dst = append(dst, `,"userAgent":`...)
		dst = append(dst, f.ua...)
	}
	if f.req != nil {
		dst = append(dst, `,"requestId":`...)
		dst = append(dst, f.req...)
	}
	dst = append(dst, `,"details":`...)
	dst = append(dst, compact.Bytes()...)
	dst = append(dst, `,"n":`...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `,"leafIndex":`...)
	dst = strconv.AppendInt(dst, leaf, 10)
	if !rebuilt {
		dst = append(dst, `,"record":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, record)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...), true
}

var (
	lineSep = []byte("\u2028")
	paraSep = []byte("\u2029")
)

// appendTime appends the JSON of a record's time as the line shows it: in
// UTC, RFC 3339 with nanoseconds, as time.Time's JSON methods parse and
// write it.
func appendTime(dst, quoted []byte) ([]byte, bool) {
	var t time.Time
	if t.UnmarshalJSON(quoted) != nil {
		return dst, false
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, false // MarshalJSON refuses it: encodeLine reports the error
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// categoryJSON holds, for each catalog type, its line's category and
// description fields as encoding/json writes them.
var categoryJSON = func() map[domain.EventType][]byte {
	m := make(map[domain.EventType][]byte)
	for _, info := range domain.Catalog() {
		m[info.Type] = categoryFields(nil, info.Type)
	}
	return m
}()

func appendCategory(dst []byte, t domain.EventType) []byte {
	if b, ok := categoryJSON[t]; ok {
		return append(dst, b...)
	}
	return categoryFields(dst, t)
}

func categoryFields(dst []byte, t domain.EventType) []byte {
	c, _ := json.Marshal(t.Category())
	d, _ := json.Marshal(t.Description())
	dst = append(dst, `"category":`...)
	dst = append(dst, c...)
	dst = append(dst, `,"description":`...)
	return append(dst, d...)
}

// recordScanner reads a record from its start, field by field.
type recordScanner struct{ b []byte }

// lit consumes s if the record continues with it.
func (r *recordScanner) lit(s string) bool {
	if len(r.b) < len(s) || string(r.b[:len(s)]) != s {
		return false
	}
	r.b = r.b[len(s):]
	return true
}

// str consumes a JSON string that decodes to its own bytes and that
// encoding/json writes back the same way: no escapes, no control
// characters, none of < > & U+2028 U+2029, and valid UTF-8. It sets *out
// to the string with its quotes.
func (r *recordScanner) str(out *[]byte) bool {
	if len(r.b) == 0 || r.b[0] != '"' {
		return false
	}
	ascii := true
	for i := 1; i < len(r.b); i++ {
		switch c := r.b[i]; {
		case c == '"':
			s := r.b[:i+1]
			if !ascii && (!utf8.Valid(s) || bytes.Contains(s, lineSep) || bytes.Contains(s, paraSep)) {
				return false
			}
			*out, r.b = s, r.b[i+1:]
			return true
		case c < 0x20 || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return false
}

// optStr consumes an omitempty string field, which is present only when
// not empty.
func (r *recordScanner) optStr(key string, out *[]byte) bool {
	if !r.lit(key) {
		return true
	}
	return r.str(out) && len(*out) > 2
}

// actor consumes a domain.Actor object as json.Marshal writes it.
func (r *recordScanner) actor(out *[]byte) bool {
	start := r.b
	var s []byte
	if !r.lit(`{"kind":`) || !r.str(&s) || !r.lit(`,"id":`) || !r.str(&s) ||
		!r.optStr(`,"name":`, &s) || !r.optStr(`,"email":`, &s) || !r.lit(`}`) {
		return false
	}
	*out = start[:len(start)-len(r.b)]
	return true
}

// target consumes a domain.Target object as json.Marshal writes it.
func (r *recordScanner) target(out *[]byte) bool {
	start := r.b
	var s []byte
	if !r.lit(`{"kind":`) || !r.str(&s) || !r.lit(`,"id":`) || !r.str(&s) ||
		!r.optStr(`,"name":`, &s) || !r.lit(`}`) {
		return false
	}
	*out = start[:len(start)-len(r.b)]
	return true
}

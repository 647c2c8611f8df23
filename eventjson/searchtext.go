package eventjson

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

// SearchText is domain.SearchText(e), the text a search matches, read
// from the details' bytes rather than from their decoding into maps and
// interfaces. Details whose keys or strings carry escapes, or that give a
// key twice, take domain.SearchText itself.
func SearchText(e *domain.Event) string {
	if len(e.Details) == 0 || !json.Valid(e.Details) {
		return domain.SearchText(e)
	}
	b := make([]byte, 0, 128+len(e.Details))
	for _, s := range []string{e.Actor.Name, e.Actor.Email, e.Actor.ID} {
		b = append(b, s...)
		b = append(b, '\n')
	}
	if t := e.Target; t != nil {
		for _, s := range []string{t.Kind, t.ID, t.Name} {
			b = append(b, s...)
			b = append(b, '\n')
		}
	}
	r := reader{b: e.Details}
	var ok bool
	if b, ok = r.values(b); !ok {
		return domain.SearchText(e)
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return strings.ToLower(string(b))
		}
	}
	for i, c := range b { // ASCII: strings.ToLower's own fast path, in place
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// values appends the scalar values of the JSON value r starts with, one a
// line, as domain.SearchText writes a decoded document: object members by
// key, strings as they read, numbers as fmt prints a float64, booleans,
// nothing for null. r's value must be valid JSON.
func (r *reader) values(dst []byte) ([]byte, bool) {
	r.ws()
	if len(r.b) == 0 {
		return dst, false
	}
	switch c := r.b[0]; {
	case c == '{':
		type member struct{ key, value []byte }
		var members []member
		ok := r.object(func(key []byte) bool {
			r.ws()
			n := valueEnd(r.b)
			if n < 0 {
				return false
			}
			members = append(members, member{key, r.b[:n]})
			r.b = r.b[n:]
			return true
		})
		if !ok {
			return dst, false
		}
		slices.SortFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
		for i, m := range members {
			if i > 0 && bytes.Equal(m.key, members[i-1].key) {
				return dst, false // a decoded map keeps only the last
			}
			sub := reader{b: m.value}
			if dst, ok = sub.values(dst); !ok {
				return dst, false
			}
		}
		return dst, true
	case c == '[':
		r.b = r.b[1:]
		if r.byte(']') {
			return dst, true
		}
		for {
			var ok bool
			if dst, ok = r.values(dst); !ok {
				return dst, false
			}
			if r.byte(']') {
				return dst, true
			}
			if !r.byte(',') {
				return dst, false
			}
		}
	case c == '"':
		var s []byte
		if !r.raw(&s) {
			return dst, false
		}
		dst = append(dst, s...)
		return append(dst, '\n'), true
	case c == 'n':
		r.b = r.b[min(4, len(r.b)):]
		return dst, true
	case c == 't' || c == 'f':
		n := 4
		if c == 'f' {
			n = 5
		}
		dst = append(dst, r.b[:min(n, len(r.b))]...)
		r.b = r.b[min(n, len(r.b)):]
		return append(dst, '\n'), true
	default:
		n := valueEnd(r.b)
		if n < 0 {
			return dst, false
		}
		f, err := strconv.ParseFloat(string(r.b[:n]), 64)
		if err != nil {
			return dst, false
		}
		r.b = r.b[n:]
		dst = strconv.AppendFloat(dst, f, 'g', -1, 64) // fmt's %v of a float64
		return append(dst, '\n'), true
	}
}

// valueEnd is the length of the JSON value b starts with, or -1; b must
// hold valid JSON.
func valueEnd(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	switch b[0] {
	case '{', '[':
		return objectEnd(b)
	case '"':
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	}
	for i, c := range b {
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			return i
		}
	}
	return len(b)
}

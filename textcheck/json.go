package textcheck

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// One reading of the bytes. Go's decoder keeps the last of two equal keys
// and turns a lone surrogate escape into U+FFFD; PostgreSQL's jsonb keeps
// the last key too but refuses \u0000 and lone surrogates. A text that two
// readers can read differently was validated as one thing and stored as
// another, so every path (HTTP, websocket, NATS) and the projector refuse
// such text before decoding it: CheckJSON is that check.

// maxScanDepth bounds nesting in a checked text: an event with the deepest
// change value (maxJSONDepth) fits with room to spare inside a request.
const maxScanDepth = 64

// JSON reports why raw is not a JSON text every decoder reads the same
// way, or nil: it must be valid UTF-8 and valid JSON, with no key twice in
// an object (after unescaping), no \u0000 and no lone UTF-16 surrogate
// escape anywhere, keys included, nested at most 64 deep. The error is
// an *Error naming the path of the offending value below field.
func JSON(field string, raw []byte) error {
	return checkJSON(field, raw, true)
}

// JSONRequest is JSON but for NUL: it refuses what is not JSON,
// too deep, a key given twice or a lone surrogate escape. A GraphQL request
// body uses it, so that a NUL is refused later, per event, naming the
// event's field.
func JSONRequest(field string, raw []byte) error {
	return checkJSON(field, raw, false)
}

func checkJSON(field string, raw []byte, nul bool) error {
	if !utf8.Valid(raw) {
		return bad(field, "is not valid UTF-8 (first bad byte at %d)", firstInvalidUTF8(raw))
	}
	s := scanner{data: raw, nul: nul, field: field}
	s.space()
	if err := s.value(0); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.data) {
		return s.syntax()
	}
	return nil
}

// step is one step of the path to a value below the checked field: a
// member's key or an element's index. The scanner keeps the steps to the
// value it reads and makes them text (where) only for an error, so a text
// that passes builds no strings.
type step struct {
	key   []byte // a member's key, unescaped
	index int    // an element's index
	elem  bool
}

// where is the path to the value the scanner reads, as text below the
// checked field.
func (s *scanner) where() string {
	p := s.field
	for _, st := range s.path {
		if st.elem {
			p = fmt.Sprintf("%s[%d]", p, st.index)
		} else {
			p = join(p, string(st.key))
		}
	}
	return p
}

// scanner walks a JSON text once, without building values.
type scanner struct {
	data []byte
	i    int
	nul  bool // refuse \u0000 too
	// field is the checked text's own name, the root of every path, and
	// path the steps from it to the value being read.
	field string
	path  []step
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) syntax() error {
	return bad(s.where(), "is not valid JSON (at byte %d)", s.i)
}

func (s *scanner) value(depth int) error {
	if depth > maxScanDepth {
		return bad(s.where(), "is nested deeper than %d levels", maxScanDepth)
	}
	if s.i >= len(s.data) {
		return s.syntax()
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.data[s.i:], []byte(lit)) {
				s.i += len(lit)
				return nil
			}
		}
		return s.syntax()
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (s *scanner) object(depth int) error {
	s.i++ // {
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return nil
	}
	var small [16][]byte
	keys := small[:0]
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return s.syntax()
		}
		key, err := s.str(true)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if bytes.Equal(k, key) {
				s.path = append(s.path, step{key: key})
				return bad(s.where(), "is given twice in one object; a key may appear once")
			}
		}
		keys = append(keys, key)
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return s.syntax()
		}
		s.i++
		s.space()
		s.path = append(s.path, step{key: key})
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.i >= len(s.data) {
			return s.syntax()
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax()
		}
	}
}

func (s *scanner) array(depth int) error {
	s.i++ // [
	s.space()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		s.space()
		s.path = append(s.path, step{index: n, elem: true})
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.i >= len(s.data) {
			return s.syntax()
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.syntax()
		}
	}
}

// str reads the string at s.i; for a key (want) it returns its unescaped
// value, which is what decoders compare: the text's own bytes when it has
// no escape.
func (s *scanner) str(want bool) ([]byte, error) {
	start := s.i
	s.i++ // "
	var buf []byte
	plain := s.i
	what := "contains"
	if want {
		what = "has a key that contains"
	}
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			if !want {
				return nil, nil
			}
			if buf == nil {
				return s.data[plain : s.i-1], nil
			}
			return append(buf, s.data[plain:s.i-1]...), nil
		case c < 0x20:
			return nil, bad(s.where(), "is not valid JSON: a control character in a string at byte %d", s.i)
		case c != '\\':
			s.i++
			continue
		}
		// An escape.
		at := s.i
		if want && buf == nil {
			buf = make([]byte, 0, s.i-start+8)
		}
		if want {
			buf = append(buf, s.data[plain:s.i]...)
		}
		if s.i+1 >= len(s.data) {
			return nil, s.syntax()
		}
		e := s.data[s.i+1]
		if e != 'u' {
			r, ok := simpleEscape(e)
			if !ok {
				return nil, bad(s.where(), "is not valid JSON: an invalid escape at byte %d", at)
			}
			if want {
				buf = append(buf, r)
			}
			s.i += 2
			plain = s.i
			continue
		}
		r, ok := hex4(s.data, s.i+2)
		if !ok {
			return nil, bad(s.where(), "is not valid JSON: an invalid \\u escape at byte %d", at)
		}
		s.i += 6
		switch {
		case r == 0 && s.nul:
			return nil, bad(s.where(), "%s a NUL character (\\u0000) at byte %d", what, at)
		case r >= 0xDC00 && r <= 0xDFFF:
			return nil, bad(s.where(), "%s a lone UTF-16 surrogate escape at byte %d", what, at)
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(-1), false
			if s.i+1 < len(s.data) && s.data[s.i] == '\\' && s.data[s.i+1] == 'u' {
				lo, ok = hex4(s.data, s.i+2)
			}
			if ok && lo >= 0xDC00 && lo <= 0xDFFF {
				s.i += 6
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			} else {
				return nil, bad(s.where(), "%s a lone UTF-16 surrogate escape at byte %d", what, at)
			}
		}
		if want {
			buf = utf8.AppendRune(buf, r)
		}
		plain = s.i
	}
	return nil, s.syntax()
}

func simpleEscape(e byte) (byte, bool) {
	switch e {
	case '"', '\\', '/':
		return e, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

func (s *scanner) number() error {
	digits := func() int {
		n := 0
		for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.data[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.data) && s.data[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.syntax()
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.syntax()
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.syntax()
		}
	}
	return nil
}

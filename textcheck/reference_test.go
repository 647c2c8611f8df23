package textcheck

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// The scanner as it was before it built paths only for errors: the
// reference TestPathsAsBefore and FuzzPathsAsBefore compare with.

func refCheckJSON(field string, raw []byte, nul bool) error {
	if !utf8.Valid(raw) {
		return bad(field, "is not valid UTF-8 (first bad byte at %d)", firstInvalidUTF8(raw))
	}
	s := refScanner{data: raw, nul: nul}
	s.space()
	if err := s.value(field, 0); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.data) {
		return s.syntax(field)
	}
	return nil
}

// refScanner walks a JSON text once, without building values.
type refScanner struct {
	data []byte
	i    int
	nul  bool // refuse \u0000 too
}

func (s *refScanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *refScanner) syntax(path string) error {
	return bad(path, "is not valid JSON (at byte %d)", s.i)
}

func (s *refScanner) value(path string, depth int) error {
	if depth > maxScanDepth {
		return bad(path, "is nested deeper than %d levels", maxScanDepth)
	}
	if s.i >= len(s.data) {
		return s.syntax(path)
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(path, depth)
	case c == '[':
		return s.array(path, depth)
	case c == '"':
		_, err := s.str(path, false)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(path)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.data[s.i:], []byte(lit)) {
				s.i += len(lit)
				return nil
			}
		}
		return s.syntax(path)
	}
}

func refJoin(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (s *refScanner) object(path string, depth int) error {
	s.i++ // {
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return nil
	}
	var keys []string
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return s.syntax(path)
		}
		key, err := s.str(path, true)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k == key {
				return bad(refJoin(path, key), "is given twice in one object; a key may appear once")
			}
		}
		keys = append(keys, key)
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return s.syntax(path)
		}
		s.i++
		s.space()
		if err := s.value(refJoin(path, key), depth+1); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.data) {
			return s.syntax(path)
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax(path)
		}
	}
}

func (s *refScanner) array(path string, depth int) error {
	s.i++ // [
	s.space()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		s.space()
		if err := s.value(fmt.Sprintf("%s[%d]", path, n), depth+1); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.data) {
			return s.syntax(path)
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.syntax(path)
		}
	}
}

// str reads the string at s.i; for a key (want) it returns its unescaped
// value, which is what decoders compare.
func (s *refScanner) str(path string, want bool) (string, error) {
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
				return "", nil
			}
			if buf == nil {
				return string(s.data[plain : s.i-1]), nil
			}
			return string(append(buf, s.data[plain:s.i-1]...)), nil
		case c < 0x20:
			return "", bad(path, "is not valid JSON: a control character in a string at byte %d", s.i)
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
			return "", s.syntax(path)
		}
		e := s.data[s.i+1]
		if e != 'u' {
			r, ok := refSimpleEscape(e)
			if !ok {
				return "", bad(path, "is not valid JSON: an invalid escape at byte %d", at)
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
			return "", bad(path, "is not valid JSON: an invalid \\u escape at byte %d", at)
		}
		s.i += 6
		switch {
		case r == 0 && s.nul:
			return "", bad(path, "%s a NUL character (\\u0000) at byte %d", what, at)
		case r >= 0xDC00 && r <= 0xDFFF:
			return "", bad(path, "%s a lone UTF-16 surrogate escape at byte %d", what, at)
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(-1), false
			if s.i+1 < len(s.data) && s.data[s.i] == '\\' && s.data[s.i+1] == 'u' {
				lo, ok = hex4(s.data, s.i+2)
			}
			if ok && lo >= 0xDC00 && lo <= 0xDFFF {
				s.i += 6
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			} else {
				return "", bad(path, "%s a lone UTF-16 surrogate escape at byte %d", what, at)
			}
		}
		if want {
			buf = utf8.AppendRune(buf, r)
		}
		plain = s.i
	}
	return "", s.syntax(path)
}

func refSimpleEscape(e byte) (byte, bool) {
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

func (s *refScanner) number(path string) error {
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
		return s.syntax(path)
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.syntax(path)
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.syntax(path)
		}
	}
	return nil
}

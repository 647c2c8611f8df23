package textcheck

import "unicode/utf8"

// PlainString is the string the JSON string raw decodes to, when that is
// raw's own bytes between its quotes: no escape, no control character,
// valid UTF-8. Otherwise ok is false and a decoder must read raw.
func PlainString(raw []byte) (s string, ok bool) {
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' {
		return "", false
	}
	ascii := true
	for _, c := range raw[1 : n-1] {
		switch {
		case c < 0x20 || c == '"' || c == '\\':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(raw[1:n-1]) {
		return "", false
	}
	return string(raw[1 : n-1]), true
}

// PlainMembers calls fn with the key and the value's bytes of each member
// of the JSON object raw, in order, as a decoder into a map of raw values
// gives them, when every key is plain (see PlainString). raw must be a
// valid JSON object with no key twice (JSON accepted it). Otherwise ok is
// false, fn may have been called for some members, and a decoder must
// read raw.
func PlainMembers(raw []byte, fn func(key string, value []byte)) (ok bool) {
	s := scanner{data: raw}
	s.space()
	if s.i >= len(raw) || raw[s.i] != '{' {
		return false
	}
	s.i++
	s.space()
	if s.i < len(raw) && raw[s.i] == '}' {
		return true
	}
	for {
		s.space()
		start := s.i
		if _, err := s.str(false); err != nil {
			return false
		}
		key, ok := PlainString(raw[start:s.i])
		if !ok {
			return false
		}
		s.space()
		if s.i >= len(raw) || raw[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		at := s.i
		if s.value(0) != nil {
			return false
		}
		fn(key, raw[at:s.i])
		s.space()
		if s.i >= len(raw) {
			return false
		}
		switch raw[s.i] {
		case ',':
			s.i++
		case '}':
			return true
		default:
			return false
		}
	}
}

package textcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The read model is PostgreSQL, whose text and jsonb cannot hold a NUL
// character, invalid UTF-8 or a lone UTF-16 surrogate. An event that carried
// one would be acknowledged and then stop its region's projection, so ingest
// refuses them here, naming the field, before anything is appended.

// Limits on free-form JSON values (a policy change's before and after).
const (
	maxJSONDepth     = 32
	maxNumberLiteral = 64
	// maxNumberExponent keeps numbers inside what float64 and Postgres
	// numeric both hold.
	maxNumberExponent = 308
)

// Text reports why s cannot be stored as text, or nil: it must be valid
// UTF-8 without NUL characters.
func Text(field, s string) error {
	if !utf8.ValidString(s) {
		return bad(field, "is not valid UTF-8")
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return bad(field, "contains a NUL character at byte %d", i)
	}
	return nil
}

// JSONText reports why raw, a syntactically valid JSON text, cannot be
// stored as jsonb: invalid UTF-8, an escaped NUL (\u0000) or an escaped lone
// surrogate anywhere in it, keys included. JSON decoders replace the last
// two silently, so the check reads the bytes as they came.
func JSONText(field string, raw []byte) error {
	if !utf8.Valid(raw) {
		return bad(field, "is not valid UTF-8")
	}
	if at, problem := badEscape(raw); problem != "" {
		return bad(field, "contains %s at byte %d", problem, at)
	}
	return nil
}

// Body reports whether a request body is text the service can take:
// valid UTF-8 without escaped lone surrogates. It runs on the raw bytes
// before any decoder replaces what it cannot represent with U+FFFD.
func Body(body []byte) error {
	if !utf8.Valid(body) {
		return bad("", "the request body is not valid UTF-8 (first bad byte at %d)", firstInvalidUTF8(body))
	}
	if at, problem := badEscape(body); problem == "a lone UTF-16 surrogate escape" {
		return bad("", "the request body contains %s at byte %d", problem, at)
	}
	return nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

// badEscape finds the first \u escape inside a JSON string of raw that
// stands for NUL or for half of a surrogate pair.
func badEscape(raw []byte) (at int, problem string) {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(raw) {
				return i, "an unfinished escape"
			}
			if raw[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(raw, i+2)
			if !ok {
				return i, "an invalid \\u escape"
			}
			switch {
			case r == 0:
				return i, "a NUL character (\\u0000)"
			case r >= 0xDC00 && r <= 0xDFFF:
				return i, "a lone UTF-16 surrogate escape"
			case r >= 0xD800 && r <= 0xDBFF:
				// A high surrogate must be followed at once by a low one.
				lo := rune(-1)
				if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					if v, ok := hex4(raw, i+8); ok {
						lo = v
					}
				}
				if lo < 0xDC00 || lo > 0xDFFF {
					return i, "a lone UTF-16 surrogate escape"
				}
				i += 11
				continue
			}
			i += 5
		}
	}
	return 0, ""
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 32)
	return rune(v), err == nil
}

// JSONValue bounds a free-form JSON value: nesting at most 32 deep and
// numbers that both float64 and Postgres numeric hold, besides JSONText.
func JSONValue(field string, raw json.RawMessage) error {
	if err := JSONText(field, raw); err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return bad(field, "is not valid JSON")
	}
	return walkJSON(field, v, 0)
}

var errNumber = errors.New("number out of range")

func walkJSON(field string, v any, depth int) error {
	if depth > maxJSONDepth {
		return bad(field, "is nested deeper than %d levels", maxJSONDepth)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if err := walkJSON(field+"."+k, e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := walkJSON(fmt.Sprintf("%s[%d]", field, i), e, depth+1); err != nil {
				return err
			}
		}
	case json.Number:
		if checkNumber(string(x)) != nil {
			return bad(field, "is a number out of range (at most %d characters, magnitude 1e±%d)",
				maxNumberLiteral, maxNumberExponent)
		}
	}
	return nil
}

// checkNumber refuses number literals that overflow float64 or whose
// exponent Postgres numeric would refuse.
func checkNumber(lit string) error {
	if len(lit) > maxNumberLiteral {
		return errNumber
	}
	if _, err := strconv.ParseFloat(lit, 64); err != nil {
		return errNumber
	}
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
		if err != nil || exp > maxNumberExponent || exp < -maxNumberExponent {
			return errNumber
		}
	}
	return nil
}

// GraphQLQuery reports a lone UTF-16 surrogate escape (\uD800 without its
// pair) in a GraphQL query's text: the GraphQL lexer turns it into U+FFFD,
// so an inline literal would store what the client never wrote. NUL is left
// to the checks of each field. The whole text is read as string content;
// outside strings a backslash is not GraphQL anyway.
func GraphQLQuery(query string) error {
	q := []byte(query)
	for i := 0; i+1 < len(q); i++ {
		if q[i] != '\\' {
			continue
		}
		if q[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		r, ok := hex4(q, i+2)
		if !ok {
			i++
			continue
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return bad("query", "contains a lone UTF-16 surrogate escape at byte %d", i)
		case r >= 0xD800 && r <= 0xDBFF:
			if i+11 < len(q) && q[i+6] == '\\' && q[i+7] == 'u' {
				if lo, ok := hex4(q, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return bad("query", "contains a lone UTF-16 surrogate escape at byte %d", i)
		}
		i += 5
	}
	return nil
}

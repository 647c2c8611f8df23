package query

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

type tokenKind int

const (
	tEOF    tokenKind = iota
	tLParen           // (
	tRParen           // )
	tAnd              // AND
	tOr               // OR
	tNot              // NOT
	tNeg              // - before a term or group
	tText             // a free-text word or quoted phrase
	tTerm             // field:value
)

// token is one lexeme. pos is the byte offset where it starts; a term's
// value starts at vpos.
type token struct {
	kind tokenKind
	pos  int
	// text is a free-text word, or a term's field name.
	text string
	vpos int
	// value is a term's value split at its wildcards; raw is the same text
	// with each wildcard as a star, for values that have no wildcards
	// (dates, addresses).
	value Pattern
	raw   string
}

// lexer splits a query into tokens.
type lexer struct {
	src  string
	pos  int
	toks []token
}

// errAt is the BAD_USER_INPUT error of a query, naming the 1-based column
// (in characters) of byte offset off.
func errAt(src string, off int, format string, args ...any) error {
	col := utf8.RuneCountInString(src[:min(off, len(src))]) + 1
	return domain.BadInput("query", "at column %d: %s", col, fmt.Sprintf(format, args...))
}

func lex(src string) ([]token, error) {
	l := &lexer{src: src}
	for {
		for l.pos < len(src) {
			r, w := utf8.DecodeRuneInString(src[l.pos:])
			if !isSpace(r) {
				break
			}
			l.pos += w
		}
		if l.pos == len(src) {
			return append(l.toks, token{kind: tEOF, pos: l.pos}), nil
		}
		start := l.pos
		switch src[start] {
		case '(':
			l.pos++
			l.toks = append(l.toks, token{kind: tLParen, pos: start})
		case ')':
			l.pos++
			l.toks = append(l.toks, token{kind: tRParen, pos: start})
		case '-':
			l.pos++
			if l.pos == len(src) || src[l.pos] == ')' || l.spaceAt(l.pos) {
				return nil, errAt(src, start, "- must be followed at once by the term or group it negates")
			}
			l.toks = append(l.toks, token{kind: tNeg, pos: start})
		case '"':
			s, err := l.quoted(false)
			if err != nil {
				return nil, err
			}
			if err := l.boundary(); err != nil {
				return nil, err
			}
			l.toks = append(l.toks, token{kind: tText, pos: start, text: s[0]})
		default:
			if err := l.word(); err != nil {
				return nil, err
			}
		}
	}
}

func (l *lexer) spaceAt(i int) bool {
	r, _ := utf8.DecodeRuneInString(l.src[i:])
	return isSpace(r)
}

// boundary checks that a closing quote ends its token.
func (l *lexer) boundary() error {
	if l.pos < len(l.src) && l.src[l.pos] != '(' && l.src[l.pos] != ')' && !l.spaceAt(l.pos) {
		return errAt(l.src, l.pos, "expected a space after the closing quote")
	}
	return nil
}

// word lexes a bare word: field:value when it starts with a field name and
// a colon, else free text or an operator.
func (l *lexer) word() error {
	start := l.pos
	i := start
	for i < len(l.src) && isNameByte(l.src[i], i == start) {
		i++
	}
	if i > start && i < len(l.src) && l.src[i] == ':' {
		tok := token{kind: tTerm, pos: start, text: l.src[start:i], vpos: i + 1}
		l.pos = i + 1
		var err error
		switch {
		case l.pos == len(l.src) || l.spaceAt(l.pos) || l.src[l.pos] == '(' || l.src[l.pos] == ')':
			tok.value = Pattern{""}
		case l.src[l.pos] == '"':
			if tok.value, err = l.quoted(true); err == nil {
				err = l.boundary()
			}
		default:
			tok.value, err = l.bare(true)
		}
		if err != nil {
			return err
		}
		tok.raw = strings.Join(tok.value, "*")
		l.toks = append(l.toks, tok)
		return nil
	}
	p, err := l.bare(false)
	if err != nil {
		return err
	}
	tok := token{kind: tText, pos: start, text: p[0]}
	if raw := l.src[start:l.pos]; keyword(raw) {
		tok.kind = map[string]tokenKind{"AND": tAnd, "OR": tOr, "NOT": tNot}[raw]
	}
	l.toks = append(l.toks, tok)
	return nil
}

// isNameByte reports whether c may be part of a field name: a letter or
// underscore first, then letters, digits, underscores, dots and hyphens.
func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case first:
		return false
	}
	return c >= '0' && c <= '9' || c == '.' || c == '-'
}

// bare lexes unquoted text up to a space or parenthesis. A backslash makes
// the next character literal; with wild, an unescaped * is a wildcard.
func (l *lexer) bare(wild bool) (Pattern, error) {
	var b strings.Builder
	var parts Pattern
	for l.pos < len(l.src) {
		r, w := utf8.DecodeRuneInString(l.src[l.pos:])
		switch {
		case isSpace(r) || r == '(' || r == ')':
			return append(parts, b.String()), nil
		case r == '"':
			return nil, errAt(l.src, l.pos, `a quote inside a word; quote the whole value, or write \" for a literal quote`)
		case r == '\\':
			if l.pos+1 == len(l.src) {
				return nil, errAt(l.src, l.pos, "the query ends with a backslash")
			}
			r, w = utf8.DecodeRuneInString(l.src[l.pos+1:])
			b.WriteRune(r)
			l.pos += 1 + w
			continue
		case r == '*' && wild:
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteRune(r)
		}
		l.pos += w
	}
	return append(parts, b.String()), nil
}

// quoted lexes a quoted string starting at l.pos; \" and \\ (any escaped
// character) are literal, and with wild an unescaped * is a wildcard.
func (l *lexer) quoted(wild bool) (Pattern, error) {
	start := l.pos
	l.pos++
	var b strings.Builder
	var parts Pattern
	for l.pos < len(l.src) {
		r, w := utf8.DecodeRuneInString(l.src[l.pos:])
		switch {
		case r == '"':
			l.pos++
			return append(parts, b.String()), nil
		case r == '\\' && l.pos+1 < len(l.src):
			r, w = utf8.DecodeRuneInString(l.src[l.pos+1:])
			b.WriteRune(r)
			l.pos += 1 + w
			continue
		case r == '*' && wild:
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteRune(r)
		}
		l.pos += w
	}
	return nil, errAt(l.src, start, "the quote is never closed")
}

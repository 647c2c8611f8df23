package query

import (
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
)

// Parse reads a query. Terms side by side must all match (implicit AND); OR
// binds less tightly than AND; NOT or a leading - negates a term or a
// parenthesized group. A query of only spaces matches every event. A
// mistake is a BAD_USER_INPUT *domain.Error on field query whose message
// names the column where it is.
func Parse(src string) (*Query, error) {
	if len(src) > MaxLen {
		return nil, domain.BadInput("query", "is %d bytes long; a query may have at most %d", len(src), MaxLen)
	}
	for i, r := range src {
		if _, w := utf8.DecodeRuneInString(src[i:]); r == utf8.RuneError && w == 1 {
			return nil, errAt(src, i, "invalid UTF-8")
		}
	}
	if i := strings.IndexByte(src, 0); i >= 0 {
		return nil, errAt(src, i, "a NUL character")
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return &Query{}, nil
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		// or stops only at the end or at a ) it did not open.
		return nil, errAt(src, t.pos, "a ) without its (")
	}
	return &Query{root: root}, nil
}

// parser is a recursive-descent parser over the tokens of one query.
type parser struct {
	src   string
	toks  []token
	i     int
	depth int
	terms int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// startsTerm reports whether a token can begin a term, group or negation.
func startsTerm(k tokenKind) bool {
	return k == tLParen || k == tNot || k == tNeg || k == tText || k == tTerm
}

// or = and { OR and }
func (p *parser) or() (Node, error) {
	n, err := p.and()
	if err != nil {
		return nil, err
	}
	nodes := []Node{n}
	for p.peek().kind == tOr {
		op := p.next()
		if !startsTerm(p.peek().kind) {
			return nil, errAt(p.src, op.pos, "OR must be followed by a term")
		}
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return newOr(nodes), nil
}

// and = unary { [AND] unary }
func (p *parser) and() (Node, error) {
	if t := p.peek(); !startsTerm(t.kind) {
		return nil, p.unexpected(t)
	}
	var nodes []Node
	for {
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		t := p.peek()
		if t.kind == tAnd {
			p.next()
			if !startsTerm(p.peek().kind) {
				return nil, errAt(p.src, t.pos, "AND must be followed by a term")
			}
			continue
		}
		if !startsTerm(t.kind) {
			return newAnd(nodes), nil
		}
	}
}

// unexpected explains a token found where a term must start.
func (p *parser) unexpected(t token) error {
	switch t.kind {
	case tOr:
		return errAt(p.src, t.pos, "OR must follow a term")
	case tAnd:
		return errAt(p.src, t.pos, "AND must follow a term")
	case tRParen:
		if p.i > 0 && p.toks[p.i-1].kind == tLParen {
			return errAt(p.src, p.toks[p.i-1].pos, "empty parentheses")
		}
		return errAt(p.src, t.pos, "a ) without its (")
	}
	return errAt(p.src, t.pos, "the query ends where a term was expected")
}

// deeper counts one more level of nesting at t, refusing one too many.
func (p *parser) deeper(t token) error {
	p.depth++
	if p.depth > MaxDepth {
		return errAt(p.src, t.pos, "parentheses and negations are nested more than %d deep", MaxDepth)
	}
	return nil
}

// unary = (NOT | -) unary | "(" or ")" | term
func (p *parser) unary() (Node, error) {
	t := p.next()
	switch t.kind {
	case tNot, tNeg:
		if err := p.deeper(t); err != nil {
			return nil, err
		}
		if !startsTerm(p.peek().kind) {
			return nil, errAt(p.src, t.pos, "%s must be followed by a term", map[tokenKind]string{tNot: "NOT", tNeg: "-"}[t.kind])
		}
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		p.depth--
		if inner, ok := n.(Not); ok {
			return inner.Node, nil
		}
		return Not{Node: n}, nil
	case tLParen:
		if err := p.deeper(t); err != nil {
			return nil, err
		}
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next().kind != tRParen {
			return nil, errAt(p.src, t.pos, "this ( is never closed")
		}
		p.depth--
		return n, nil
	}
	p.terms++
	if p.terms > MaxTerms {
		return nil, errAt(p.src, t.pos, "a query may have at most %d terms", MaxTerms)
	}
	if t.kind == tText {
		if t.text == "" {
			return nil, errAt(p.src, t.pos, "an empty phrase")
		}
		return Text(t.text), nil
	}
	return p.term(t)
}

// newAnd flattens nested Ands into one; a single node stands alone.
func newAnd(nodes []Node) Node {
	var out And
	for _, n := range nodes {
		if a, ok := n.(And); ok {
			out = append(out, a...)
		} else {
			out = append(out, n)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// newOr flattens nested Ors into one; a single node stands alone.
func newOr(nodes []Node) Node {
	var out Or
	for _, n := range nodes {
		if o, ok := n.(Or); ok {
			out = append(out, o...)
		} else {
			out = append(out, n)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// term builds the node of field:value, checking the value for its field.
func (p *parser) term(t token) (Node, error) {
	name, path := t.text, []string(nil)
	f, ok := lookup(name)
	if rest, isDetails := strings.CutPrefix(name, "details."); isDetails {
		name, path = "details", strings.Split(rest, ".")
		f, ok = lookup("details.")
	}
	if !ok {
		return nil, errAt(p.src, t.pos, "unknown field %q; fields are %s", t.text, fieldList)
	}
	if t.raw == "" {
		return nil, errAt(p.src, t.vpos, "%s: needs a value", t.text)
	}
	value := compact(t.value)
	switch f.kind {
	case kindDetails:
		if len(path) > maxPath {
			return nil, errAt(p.src, t.pos, "details keys may be nested at most %d deep", maxPath)
		}
		if slices.Contains(path, "") {
			return nil, errAt(p.src, t.pos, "%q has an empty key; write details.<key>, e.g. details.policyId", t.text)
		}
		if !slices.Contains(detailsFields(), path[0]) {
			return nil, errAt(p.src, t.pos, "no event type has a details field %q", path[0])
		}
		return Term{Field: name, Path: path, Value: value}, nil
	case kindEnum:
		for i := range value {
			value[i] = strings.ToUpper(value[i])
		}
		if len(f.values(value)) == 0 {
			if _, lit := value.literal(); lit {
				return nil, errAt(p.src, t.vpos, "unknown %s %q; %s", f.noun, value[0], f.known)
			}
			return nil, errAt(p.src, t.vpos, "no %s matches %q; %s", f.noun, value.String(), f.known)
		}
	case kindTime:
		return p.occurred(t)
	case kindIP:
		return p.ip(t)
	}
	return Term{Field: name, Value: value}, nil
}

// compact merges adjacent wildcards: a** is a*.
func compact(p Pattern) Pattern {
	out := Pattern{p[0]}
	for i := 1; i < len(p); i++ {
		if p[i] == "" && i < len(p)-1 {
			continue
		}
		out = append(out, p[i])
	}
	return out
}

func (p *parser) ip(t token) (Node, error) {
	var (
		prefix netip.Prefix
		err    error
	)
	if strings.Contains(t.raw, "/") {
		prefix, err = netip.ParsePrefix(t.raw)
		prefix = prefix.Masked()
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(t.raw); err == nil && a.Zone() == "" {
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil || !prefix.IsValid() {
		return nil, errAt(p.src, t.vpos, "%q is not an IP address or a CIDR network such as 10.0.0.0/8 or 2001:db8::/32", t.raw)
	}
	return IP{Prefix: prefix}, nil
}

// occurred reads a time qualifier: a date or RFC 3339 time, alone (the
// whole day, or that instant), after >=, >, < or <=, or as a range a..b
// inclusive of both ends, with * for an open end.
func (p *parser) occurred(t token) (Node, error) {
	n, err := p.bounds(t)
	if err != nil {
		return nil, err
	}
	bounds, ok := n.(And)
	if !ok {
		bounds = And{n}
	}
	for _, b := range bounds {
		// Times print as RFC 3339, whose years have four digits.
		if y := b.(Occurred).At.Year(); y < 0 || y > 9999 {
			return nil, errAt(p.src, t.vpos, "%q is outside the years 0000 to 9999", t.raw)
		}
	}
	return n, nil
}

func (p *parser) bounds(t token) (Node, error) {
	v := t.raw
	if p.src[t.vpos] == '"' {
		t.vpos++ // columns count from inside the quotes
	}
	bound := func(s string, at int) (time.Time, bool, error) {
		if d, err := time.Parse(time.DateOnly, s); err == nil {
			return d, true, nil
		}
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return ts.UTC().Truncate(time.Microsecond), false, nil
		}
		return time.Time{}, false, errAt(p.src, at,
			"%q is not a date or time; write 2026-11-01 or an RFC 3339 time such as 2026-11-01T10:00:00Z", s)
	}
	for _, op := range []string{">=", "<=", ">", "<"} {
		if rest, ok := strings.CutPrefix(v, op); ok {
			at, day, err := bound(rest, t.vpos+len(op))
			if err != nil {
				return nil, err
			}
			switch {
			case day && op == ">":
				op, at = ">=", at.AddDate(0, 0, 1)
			case day && op == "<=":
				op, at = "<", at.AddDate(0, 0, 1)
			}
			return Occurred{Op: op, At: at}, nil
		}
	}
	lo, hi, isRange := strings.Cut(v, "..")
	if !isRange {
		at, day, err := bound(v, t.vpos)
		if err != nil {
			return nil, err
		}
		if !day {
			return Occurred{Op: "=", At: at}, nil
		}
		return And{Occurred{Op: ">=", At: at}, Occurred{Op: "<", At: at.AddDate(0, 0, 1)}}, nil
	}
	if lo == "*" && hi == "*" {
		return nil, errAt(p.src, t.vpos, "a range needs at least one end")
	}
	var nodes []Node
	var from, to Occurred
	if lo != "*" {
		at, _, err := bound(lo, t.vpos)
		if err != nil {
			return nil, err
		}
		from = Occurred{Op: ">=", At: at}
		nodes = append(nodes, from)
	}
	if hi != "*" {
		at, day, err := bound(hi, t.vpos+len(lo)+2)
		if err != nil {
			return nil, err
		}
		to = Occurred{Op: "<=", At: at}
		if day {
			to = Occurred{Op: "<", At: at.AddDate(0, 0, 1)}
		}
		nodes = append(nodes, to)
	}
	if len(nodes) == 2 && (to.At.Before(from.At) || to.Op == "<" && to.At.Equal(from.At)) {
		return nil, errAt(p.src, t.vpos, "the range %s ends before it starts", v)
	}
	return newAnd(nodes), nil
}

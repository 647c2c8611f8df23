package query

import (
	"net/netip"
	"strings"
	"time"

	"github.com/auditlog/auditlog/domain"
)

// Node is one node of a query's syntax tree: And, Or, Not, Text, Term,
// Occurred or IP. Only this package implements it, so every node has one
// meaning in memory and in SQL.
type Node interface {
	// String is the node's canonical text.
	String() string
	match(e *event) bool
	sql(arg func(any) string) string
}

// And matches events every one of its nodes matches; the parser flattens
// nested Ands, so none of its nodes is an And.
type And []Node

// Or matches events at least one of its nodes matches; none of its nodes
// is an Or.
type Or []Node

// Not matches the events its node does not; its node is never a Not.
type Not struct{ Node Node }

// Text is a free-text word or quoted phrase: a case-insensitive substring of
// the event's search text or of its type's name or description, exactly as
// domain.Filter.Search.
type Text string

// Term compares a field of the event with a Pattern: Field is a qualifier
// name such as actor.email, or "details" with the keys in Path.
type Term struct {
	Field string
	Path  []string
	Value Pattern
}

// Pattern is a qualifier's value: literal text between wildcards. One part
// is a literal value; ["", "@example.com"] is *@example.com.
type Pattern []string

// Occurred compares the event's occurredAt with At: Op is one of >=, >, <,
// <= or = (an exact instant).
type Occurred struct {
	Op string
	At time.Time
}

// IP matches events whose IP address lies in Prefix; an exact address is a
// prefix of all its bits.
type IP struct{ Prefix netip.Prefix }

// String joins the nodes with spaces, the implicit AND; an Or among them is
// parenthesized.
func (a And) String() string {
	parts := make([]string, len(a))
	for i, n := range a {
		parts[i] = n.String()
		if _, ok := n.(Or); ok {
			parts[i] = "(" + parts[i] + ")"
		}
	}
	return strings.Join(parts, " ")
}

// String joins the nodes with OR, which binds less tightly than AND.
func (o Or) String() string {
	parts := make([]string, len(o))
	for i, n := range o {
		parts[i] = n.String()
	}
	return strings.Join(parts, " OR ")
}

// String is -term, or -(group) for an And or an Or.
func (n Not) String() string {
	switch n.Node.(type) {
	case And, Or:
		return "-(" + n.Node.String() + ")"
	}
	return "-" + n.Node.String()
}

// String is the word bare when it reads back as the same word, else quoted.
func (t Text) String() string {
	s := string(t)
	if s == "" || keyword(s) || s[0] == '-' || strings.ContainsAny(s, `():"\`) || strings.IndexFunc(s, isSpace) >= 0 {
		return quote(s)
	}
	return s
}

// String is field:value, with details keys joined by dots.
func (t Term) String() string {
	name := t.Field
	if len(t.Path) > 0 {
		name += "." + strings.Join(t.Path, ".")
	}
	return name + ":" + t.Value.String()
}

// String writes the pattern with * for its wildcards and \ before literal
// stars, quotes and backslashes, in quotes when it holds a space or a
// parenthesis.
func (p Pattern) String() string {
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `*`, `\*`)
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = esc.Replace(s)
	}
	s := strings.Join(parts, "*")
	if s == "" || strings.ContainsAny(s, "()") || strings.IndexFunc(s, isSpace) >= 0 {
		return `"` + s + `"`
	}
	return s
}

// literal reports whether p has no wildcard, and its text.
func (p Pattern) literal() (string, bool) { return p[0], len(p) == 1 }

// matches reports whether s matches p, each * standing for any text.
func (p Pattern) matches(s string) bool {
	if len(p) == 1 {
		return s == p[0]
	}
	if !strings.HasPrefix(s, p[0]) {
		return false
	}
	s = s[len(p[0]):]
	last := p[len(p)-1]
	for _, part := range p[1 : len(p)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// like is p as a LIKE pattern whose escape character is the backslash.
func (p Pattern) like() string {
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = escapeLike(s)
	}
	return strings.Join(parts, "%")
}

// String renders a bound at midnight UTC as a date (>= and < only, whose
// date form means that instant) and any other as an RFC 3339 time.
func (o Occurred) String() string {
	op := o.Op
	if op == "=" {
		op = ""
	}
	if (op == ">=" || op == "<") && o.At.Equal(time.Date(o.At.Year(), o.At.Month(), o.At.Day(), 0, 0, 0, 0, time.UTC)) {
		return "occurred:" + op + o.At.Format(time.DateOnly)
	}
	return "occurred:" + op + o.At.Format(time.RFC3339Nano)
}

// String is ip: and the address, or the network in CIDR notation.
func (ip IP) String() string {
	if ip.Prefix.IsSingleIP() {
		return "ip:" + ip.Prefix.Addr().String()
	}
	return "ip:" + ip.Prefix.String()
}

// event is an event being matched, with what several terms may need
// computed once.
type event struct {
	*domain.Event
	text     *string
	details  any
	decoded  bool
	ipParsed bool
	ip       netip.Addr
	ipOK     bool
}

func (e *event) searchText() string {
	if e.text == nil {
		s := domain.SearchText(e.Event)
		e.text = &s
	}
	return *e.text
}

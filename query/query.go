// Package query is the audit log's one-line search language, as an
// investigator types it: `type:USER_* actor:*@example.com -source:PLATFORM
// occurred:>=2026-11-01`. Parse turns the text into a Query, which matches
// events in memory (live feeds) and compiles to a Postgres condition over the
// read model's events table, with the same meaning both ways.
//
// It imports only domain: no database, stream or API code.
package query

import (
	"strings"

	"github.com/auditlog/auditlog/domain"
)

// Limits on a query's text and shape; they keep one search from costing the
// database or the parser more than a person could mean.
const (
	// MaxLen bounds the query text in bytes.
	MaxLen = 1024
	// MaxDepth bounds nested parentheses and negations.
	MaxDepth = 16
	// MaxTerms bounds the qualifiers and free-text words of one query.
	MaxTerms = 64
	// maxPath bounds the keys of one details.<key> qualifier.
	maxPath = 8
)

// Query is a parsed query. Its zero value, and a nil *Query, match every
// event: an empty search box filters nothing.
type Query struct {
	root Node
}

// Root is the query's syntax tree, nil for the empty query; callers inspect
// it to show or explain a search.
func (q *Query) Root() Node {
	if q == nil {
		return nil
	}
	return q.root
}

// String is the canonical text of q: Parse(q.String()) gives an equal Query,
// so a search can be stored, shown and sent again as text.
func (q *Query) String() string {
	if q == nil || q.root == nil {
		return ""
	}
	return q.root.String()
}

// Match reports whether e satisfies q; it is the in-memory twin of SQL, used
// where events are filtered as they arrive rather than read from Postgres.
func (q *Query) Match(e *domain.Event) bool {
	if q == nil || q.root == nil {
		return true
	}
	return q.root.match(&event{Event: e})
}

// SQL renders q as a Postgres boolean condition over the events table, for
// the read model to AND with its own conditions. arg appends a bind argument
// and returns its placeholder; no value of the query is ever spliced into
// the text. The empty query renders TRUE.
func (q *Query) SQL(arg func(any) string) string {
	if q == nil || q.root == nil {
		return "TRUE"
	}
	return q.root.sql(arg)
}

// fieldList names the qualifiers for error messages, in the order the
// documentation lists them.
const fieldList = "type, category, source, actor, actor.id, actor.name, actor.email, actor.kind, " +
	"target, target.kind, target.id, target.name, ip, occurred, id, request, agent, details.<key>"

// keyword reports whether s is one of the language's operators.
func keyword(s string) bool { return s == "AND" || s == "OR" || s == "NOT" }

// isSpace is the separator between terms, for the lexer and the printer alike.
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
}

// quote writes s as a quoted string of the language.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

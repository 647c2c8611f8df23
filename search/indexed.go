package search

import (
	"slices"
	"unicode/utf8"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/query"
)

// Indexed reports whether a selective index of the read model serves f
// with its query q, so that one query finds the page within the budget:
// then the search runs as one query and slices only if that query runs out
// of time. Everything else is walked in slices from the start, since one
// query would read the organization's rows until it had a page.
//
// A condition is selective when an index led by org_id has the value as
// its next column (types and categories, actor ids, target kinds, the
// indexed details keys), when its trigrams can be looked up (free text of
// three characters or more), or for a network (the GiST inet index). A
// conjunction is selective when one of its terms is, a disjunction when
// all are; negations, wildcards on text, other details keys and time
// ranges are not.
func Indexed(f domain.Filter, q *query.Query) bool {
	if len(f.Types) > 0 || len(f.Categories) > 0 || f.ActorID != "" || utf8.RuneCountInString(f.Search) >= 3 {
		return true
	}
	return q.Root() != nil && selective(q.Root())
}

func selective(n query.Node) bool {
	switch n := n.(type) {
	case query.And:
		return slices.ContainsFunc(n, selective)
	case query.Or:
		return !slices.ContainsFunc(n, func(n query.Node) bool { return !selective(n) })
	case query.Text:
		return utf8.RuneCountInString(string(n)) >= 3
	case query.IP:
		return true
	case query.Term:
		return selectiveTerm(n)
	}
	return false // Not, Occurred
}

func selectiveTerm(t query.Term) bool {
	switch t.Field {
	case "type", "category":
		return true // enums: wildcards expand to a list of types
	case "actor.id", "target.kind":
		return len(t.Value) == 1
	case "details":
		return len(t.Value) == 1 && len(t.Path) == 1 && slices.Contains(query.IndexedDetails(), t.Path[0])
	}
	return false
}

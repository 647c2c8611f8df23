package query

import (
	"errors"

	"github.com/auditlog/auditlog/domain"
)

// FromFilter parses f.Query, the query-language part of a filter, reporting
// a bad query as a BAD_USER_INPUT error on field filter.query.
func FromFilter(f domain.Filter) (*Query, error) {
	q, err := Parse(f.Query)
	var de *domain.Error
	if errors.As(err, &de) {
		e := *de
		e.Field = "filter.query"
		return nil, &e
	}
	return q, err
}

// ValidateFilter checks a whole filter: its typed fields, as f.Validate
// does, and its query text, which domain cannot parse.
func ValidateFilter(f domain.Filter) error {
	if err := f.Validate(); err != nil {
		return err
	}
	_, err := FromFilter(f)
	return err
}

// Search is the query of domain.Filter.Search: the one phrase term, as free
// text, so a search and a bare word of a query mean the same thing.
func Search(term string) *Query { return &Query{root: Text(term)} }

// Conditions renders a whole filter as Postgres conditions over the events
// table, for the read model to AND with its own (the organization, a
// cursor): its typed fields, its search and its query. Each is written to
// use the events table's indexes, all led by org_id: the source, type and
// actor indexes, the occurred_at order and the search text's trigrams.
func Conditions(f domain.Filter, arg func(any) string) ([]string, error) {
	var conds []string
	if len(f.Sources) > 0 {
		conds = append(conds, "source = ANY("+arg(strings2(f.Sources))+")")
	}
	// Categories become their types, so one index serves both filters.
	if len(f.Categories) > 0 {
		conds = append(conds, "type = ANY("+arg(strings2(domain.CategoryTypes(f.Categories)))+")")
	}
	if len(f.Types) > 0 {
		conds = append(conds, "type = ANY("+arg(strings2(f.Types))+")")
	}
	if len(f.ExcludeTypes) > 0 {
		conds = append(conds, "type <> ALL("+arg(strings2(f.ExcludeTypes))+")")
	}
	if f.ActorID != "" {
		conds = append(conds, "actor_id = "+arg(f.ActorID))
	}
	if f.From != nil {
		conds = append(conds, "occurred_at >= "+arg(*f.From))
	}
	if f.To != nil {
		conds = append(conds, "occurred_at < "+arg(*f.To))
	}
	if f.Search != "" {
		conds = append(conds, Search(f.Search).SQL(arg))
	}
	if f.Query != "" {
		q, err := FromFilter(f)
		if err != nil {
			return nil, err
		}
		conds = append(conds, q.SQL(arg))
	}
	return conds, nil
}

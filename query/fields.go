package query

import (
	"slices"
	"strings"

	"github.com/auditlog/auditlog/domain"
)

type fieldKind int

const (
	kindText    fieldKind = iota // compared as text, with wildcards
	kindEnum                     // one of a known list; wildcards expand to the list
	kindTime                     // occurred
	kindIP                       // ip
	kindDetails                  // details.<key>
)

// fieldDef is what a qualifier compares.
type fieldDef struct {
	kind fieldKind
	// cols are the columns a text or enum qualifier compares, any of which
	// may match.
	cols []string
	// get gives the values of those columns for e, leaving out the ones
	// the read model stores as NULL: an absent value matches nothing.
	get func(e *domain.Event) []string
	// For enums: every value, what one is called, and a hint listing them.
	all   []string
	noun  string
	known string
}

// values lists the enum values p matches.
func (f fieldDef) values(p Pattern) []string {
	var out []string
	for _, v := range f.all {
		if p.matches(v) {
			out = append(out, v)
		}
	}
	return out
}

// lookup is the definition of a qualifier; "details." stands for every
// details.<key>.
func lookup(name string) (fieldDef, bool) {
	text := func(cols ...string) func(get func(e *domain.Event) []string) (fieldDef, bool) {
		return func(get func(e *domain.Event) []string) (fieldDef, bool) {
			return fieldDef{kind: kindText, cols: cols, get: get}, true
		}
	}
	switch name {
	case "type":
		var all []string
		for _, t := range domain.Catalog() {
			all = append(all, string(t.Type))
		}
		return fieldDef{kind: kindEnum, cols: []string{"type"}, all: all, noun: "event type",
			known: "the auditEventTypes query lists them",
			get:   func(e *domain.Event) []string { return []string{string(e.Type)} }}, true
	case "category":
		all := strings2(domain.Categories)
		return fieldDef{kind: kindEnum, cols: []string{"type"}, all: all, noun: "category",
			known: "categories are " + strings.Join(all, ", ")}, true
	case "source":
		all := strings2(domain.Sources)
		return fieldDef{kind: kindEnum, cols: []string{"source"}, all: all, noun: "source",
			known: "sources are " + strings.Join(all, ", "),
			get:   func(e *domain.Event) []string { return []string{string(e.Source)} }}, true
	case "actor.kind":
		all := strings2([]domain.ActorKind{domain.ActorUser, domain.ActorAPIKey, domain.ActorSystem})
		return fieldDef{kind: kindEnum, cols: []string{"actor_kind"}, all: all, noun: "actor kind",
			known: "kinds are " + strings.Join(all, ", "),
			get:   func(e *domain.Event) []string { return []string{string(e.Actor.Kind)} }}, true
	case "id":
		return text("id")(func(e *domain.Event) []string { return []string{e.ID} })
	case "actor":
		return text("actor_id", "actor_name", "actor_email")(func(e *domain.Event) []string {
			return present([]string{e.Actor.ID}, e.Actor.Name, e.Actor.Email)
		})
	case "actor.id":
		return text("actor_id")(func(e *domain.Event) []string { return []string{e.Actor.ID} })
	case "actor.name":
		return text("actor_name")(func(e *domain.Event) []string { return present(nil, e.Actor.Name) })
	case "actor.email":
		return text("actor_email")(func(e *domain.Event) []string { return present(nil, e.Actor.Email) })
	case "target":
		return text("target_id", "target_name")(func(e *domain.Event) []string {
			if e.Target == nil {
				return nil
			}
			return present([]string{e.Target.ID}, e.Target.Name)
		})
	case "target.kind":
		return text("target_kind")(func(e *domain.Event) []string {
			if e.Target == nil {
				return nil
			}
			return []string{e.Target.Kind}
		})
	case "target.id":
		return text("target_id")(func(e *domain.Event) []string {
			if e.Target == nil {
				return nil
			}
			return []string{e.Target.ID}
		})
	case "target.name":
		return text("target_name")(func(e *domain.Event) []string {
			if e.Target == nil {
				return nil
			}
			return present(nil, e.Target.Name)
		})
	case "request":
		return text("request_id")(func(e *domain.Event) []string { return present(nil, e.RequestID) })
	case "agent":
		return text("user_agent")(func(e *domain.Event) []string { return present(nil, e.UserAgent) })
	case "ip":
		return fieldDef{kind: kindIP}, true
	case "occurred":
		return fieldDef{kind: kindTime}, true
	case "details.":
		return fieldDef{kind: kindDetails}, true
	}
	return fieldDef{}, false
}

// present appends to vs those of more that are not empty: the read model
// stores an empty optional value as NULL.
func present(vs []string, more ...string) []string {
	for _, s := range more {
		if s != "" {
			vs = append(vs, s)
		}
	}
	return vs
}

func strings2[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// categoryTypes lists the event types of the named categories.
func categoryTypes(categories []string) []string {
	cats := make([]domain.Category, len(categories))
	for i, c := range categories {
		cats[i] = domain.Category(c)
	}
	return strings2(domain.CategoryTypes(cats))
}

// detailsFields lists every payload field name of the catalog.
func detailsFields() []string {
	var out []string
	for _, t := range domain.Catalog() {
		for _, f := range t.Fields {
			if !slices.Contains(out, f.Name) {
				out = append(out, f.Name)
			}
		}
	}
	return out
}

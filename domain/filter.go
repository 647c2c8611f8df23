package domain

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxSearchLen bounds the free-text search term.
const MaxSearchLen = 256

// Filter selects events of one organization. Empty lists mean "all".
type Filter struct {
	Sources    []Source    `json:"sources,omitempty"`
	Categories []Category  `json:"categories,omitempty"`
	Types      []EventType `json:"types,omitempty"`
	// ExcludeTypes leaves these types out, e.g. AUDIT_LOG_VIEWED to hide
	// the reads of the log among what was done.
	ExcludeTypes []EventType `json:"excludeTypes,omitempty"`
	ActorID      string      `json:"actorId,omitempty"`
	Search       string      `json:"search,omitempty"`
	From         *time.Time  `json:"from,omitempty"` // inclusive
	To           *time.Time  `json:"to,omitempty"`   // exclusive
	// Query is query-language text: package query parses and matches it.
	Query string `json:"query,omitempty"`
}

// Text is f as JSON, as a read or an export records it in its details:
// cut to fit a details string when longer (a filter naming every type),
// with the whole text's length and SHA-256, so no read fails for its size.
func (f Filter) Text() (string, error) {
	b, err := json.Marshal(f)
	if err != nil || len(b) <= MaxStringLen {
		return string(b), err
	}
	sum := sha256.Sum256(b)
	tail := fmt.Sprintf("… (%d bytes, sha256:%x)", len(b), sum)
	cut := MaxStringLen - len(tail)
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + tail, nil
}

// Validate reports the first filter field a client got wrong.
func (f Filter) Validate() error {
	for _, s := range f.Sources {
		if !s.Valid() {
			return BadInput("filter.sources", "unknown source %q", s)
		}
	}
	for _, c := range f.Categories {
		if !c.Valid() {
			return BadInput("filter.categories", "unknown category %q", c)
		}
	}
	for _, t := range f.Types {
		if !t.Valid() {
			return BadInput("filter.types", "unknown event type %q", t)
		}
	}
	for _, t := range f.ExcludeTypes {
		if !t.Valid() {
			return BadInput("filter.excludeTypes", "unknown event type %q", t)
		}
	}
	if len(f.ActorID) > MaxIDLen {
		return BadInput("filter.actorId", "is longer than %d bytes", MaxIDLen)
	}
	if err := CheckText("filter.actorId", f.ActorID); err != nil {
		return err
	}
	if len(f.Search) > MaxSearchLen {
		return BadInput("filter.search", "is longer than %d bytes", MaxSearchLen)
	}
	if err := CheckText("filter.search", f.Search); err != nil {
		return err
	}
	if f.From != nil && f.From.Before(EarliestOccurredAt) {
		return BadInput("filter.from", "is before %s", EarliestOccurredAt.Format(time.RFC3339))
	}
	if f.From != nil && f.To != nil && f.To.Before(*f.From) {
		return BadInput("filter.to", "is before filter.from")
	}
	return nil
}

// Matches reports whether e passes the filter; it is the in-memory twin of the
// SQL the read model runs, used where events are filtered as they arrive.
func (f Filter) Matches(e *Event) bool {
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, e.Source) {
		return false
	}
	if len(f.Categories) > 0 && !slices.Contains(f.Categories, e.Category()) {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if slices.Contains(f.ExcludeTypes, e.Type) {
		return false
	}
	if f.ActorID != "" && e.Actor.ID != f.ActorID {
		return false
	}
	if f.From != nil && e.OccurredAt.Before(*f.From) {
		return false
	}
	if f.To != nil && !e.OccurredAt.Before(*f.To) {
		return false
	}
	if f.Search != "" {
		term := strings.ToLower(f.Search)
		if !slices.Contains(TypesMatching(term), e.Type) && !strings.Contains(SearchText(e), term) {
			return false
		}
	}
	return true
}

// TypesMatching lists the event types whose name or description contains
// the lower-cased term. Search matches them by type rather than by text:
// a type's name and description are the same for all its events, so the
// stored search text need not repeat them, which keeps its index small.
func TypesMatching(term string) []EventType {
	var out []EventType
	for _, t := range catalog {
		if strings.Contains(strings.ToLower(string(t.Type)), term) || strings.Contains(strings.ToLower(t.Description), term) {
			out = append(out, t.Type)
		}
	}
	return out
}

// CategoryTypes lists the event types of the given categories.
func CategoryTypes(categories []Category) []EventType {
	var out []EventType
	for _, t := range catalog {
		if slices.Contains(categories, t.Category) {
			out = append(out, t.Type)
		}
	}
	return out
}

// SearchText is the lower-cased text free-text search looks in besides the
// type (see TypesMatching): the actor's name, email and id, the target and
// the payload. The read model stores the same text so both agree.
func SearchText(e *Event) string {
	var b strings.Builder
	for _, s := range []string{e.Actor.Name, e.Actor.Email, e.Actor.ID} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	if e.Target != nil {
		b.WriteString(e.Target.Kind + "\n" + e.Target.ID + "\n" + e.Target.Name + "\n")
	}
	var details any
	if json.Unmarshal(e.Details, &details) == nil {
		writeValues(&b, details)
	}
	return strings.ToLower(b.String())
}

// writeValues writes the scalar values of a decoded JSON document, one per
// line: people search for what a payload says, not for its JSON escaping.
func writeValues(b *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) { // deterministic, so rebuilds agree
			writeValues(b, v[k])
		}
	case []any:
		for _, x := range v {
			writeValues(b, x)
		}
	case string:
		b.WriteString(v)
		b.WriteByte('\n')
	case float64, bool:
		fmt.Fprint(b, v)
		b.WriteByte('\n')
	}
}

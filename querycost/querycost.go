// Package querycost measures what a GraphQL request will cost from its
// syntax tree alone, in time linear in the size of the document, so that a
// server can refuse an expensive request before validating, planning or
// executing it.
//
// Every fragment definition is measured once and its measure reused at each
// spread: a fragment spread three times by a fragment itself spread three
// times costs nine times its fields, but is walked once. Walking the
// expansion instead (as gqlgen's complexity calculation and field collection
// do) takes time exponential in the length of such a chain.
package querycost

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"
)

// Cost is the measure of one operation with its fragments expanded, as the
// executor will see it.
type Cost struct {
	// Weight estimates the values in the response: every field is 1, and
	// the fields under a list count once per item it is expected to hold
	// (see Weights), so nested lists multiply.
	Weight int
	// Fields is the number of fields selected, bounding the work of
	// planning and collecting fields whatever the data.
	Fields int
	// Aliases is the number of fields selected under an alias: each is
	// resolved and answered again, where a repeated field is merged.
	Aliases int
	// Depth is the deepest nesting of fields.
	Depth int
}

// add combines the costs of two selections of the same selection set.
func (c Cost) add(o Cost) Cost {
	return Cost{
		Weight:  add(c.Weight, o.Weight),
		Fields:  add(c.Fields, o.Fields),
		Aliases: add(c.Aliases, o.Aliases),
		Depth:   max(c.Depth, o.Depth),
	}
}

// Weights says how many items each list field is expected to hold; a
// server knows its data, the document does not.
type Weights struct {
	// PageArgument names the Int argument that bounds a paged field's
	// items, e.g. "first": its value, or its default when it is absent,
	// null or below 1, is the field's number of items.
	PageArgument string
	// Lists holds the number of items of list fields without a page
	// argument, keyed "Type.field", e.g. the size of a catalog. A
	// connection's edges list should weigh 1: its page is counted at the
	// connection field.
	Lists map[string]int
	// List is the number of items of any other list field, or of the
	// values of its enum type when they are more.
	List int
	// Fields holds the weight of one call of a field whose cost is not its
	// answer's size, keyed "Type.field", e.g. an integrity check that reads
	// a whole stream: it is added to the field's weight.
	Fields map[string]int
}

// CycleError reports a fragment that spreads itself, directly or not.
type CycleError struct{ Fragment string }

func (e *CycleError) Error() string {
	return fmt.Sprintf("fragment %s spreads itself", e.Fragment)
}

// Measure returns the cost of op, a definition of doc, with variable values
// vars. It only reads doc, which need not have been validated: a field
// unknown to schema costs 1 and a spread of an unknown fragment nothing,
// leaving it to validation to refuse them.
func Measure(schema *ast.Schema, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, w Weights) (Cost, error) {
	c, _, err := measure(schema, doc, op, vars, w, nil)
	return c, err
}

// measure is Measure that also counts the calls of the fields named in
// watch ("Type.field"), fragments expanded.
func measure(schema *ast.Schema, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, w Weights, watch map[string]int) (Cost, map[string]int, error) {
	m := measurer{
		schema:    schema,
		doc:       doc,
		op:        op,
		vars:      vars,
		w:         w,
		fragments: make(map[string]Cost, len(doc.Fragments)),
		active:    make(map[string]bool),
		watch:     watch,
		calls:     map[string]int{},
		fragCalls: map[string]map[string]int{},
	}
	c, err := m.set(op.SelectionSet, rootType(schema, op.Operation))
	return c, m.calls, err
}

func rootType(schema *ast.Schema, op ast.Operation) *ast.Definition {
	switch op {
	case ast.Mutation:
		return schema.Mutation
	case ast.Subscription:
		return schema.Subscription
	default:
		return schema.Query
	}
}

type measurer struct {
	schema    *ast.Schema
	doc       *ast.QueryDocument
	op        *ast.OperationDefinition
	vars      map[string]any
	w         Weights
	fragments map[string]Cost // measured fragment definitions
	active    map[string]bool // fragments being measured, to find cycles
	// watch names the fields whose calls are counted into calls; fragCalls
	// holds each measured fragment's own counts, added at every spread.
	watch     map[string]int
	calls     map[string]int
	fragCalls map[string]map[string]int
}

// addCalls adds the counts of from to the current counts.
func (m *measurer) addCalls(from map[string]int) {
	for k, v := range from {
		m.calls[k] = add(m.calls[k], v)
	}
}

func (m *measurer) set(set ast.SelectionSet, parent *ast.Definition) (Cost, error) {
	var total Cost
	for _, sel := range set {
		var (
			c   Cost
			err error
		)
		switch s := sel.(type) {
		case *ast.Field:
			c, err = m.field(s, parent)
		case *ast.InlineFragment:
			t := parent
			if s.TypeCondition != "" {
				t = m.schema.Types[s.TypeCondition]
			}
			c, err = m.set(s.SelectionSet, t)
		case *ast.FragmentSpread:
			c, err = m.fragment(s.Name)
		}
		if err != nil {
			return Cost{}, err
		}
		total = total.add(c)
	}
	return total, nil
}

// fragment measures the named fragment the first time it is spread.
func (m *measurer) fragment(name string) (Cost, error) {
	if c, ok := m.fragments[name]; ok {
		m.addCalls(m.fragCalls[name])
		return c, nil
	}
	if m.active[name] {
		return Cost{}, &CycleError{Fragment: name}
	}
	def := m.doc.Fragments.ForName(name)
	if def == nil {
		return Cost{}, nil
	}
	m.active[name] = true
	outer := m.calls
	m.calls = map[string]int{}
	c, err := m.set(def.SelectionSet, m.schema.Types[def.TypeCondition])
	own := m.calls
	m.calls = outer
	delete(m.active, name)
	if err != nil {
		return Cost{}, err
	}
	m.fragments[name] = c
	m.fragCalls[name] = own
	m.addCalls(own)
	return c, nil
}

func (m *measurer) field(f *ast.Field, parent *ast.Definition) (Cost, error) {
	var def *ast.FieldDefinition
	if parent != nil {
		def = parent.Fields.ForName(f.Name)
	}
	var typ *ast.Definition
	if def != nil {
		typ = m.schema.Types[def.Type.Name()]
	}
	children, err := m.set(f.SelectionSet, typ)
	if err != nil {
		return Cost{}, err
	}
	c := Cost{Fields: add(children.Fields, 1), Aliases: children.Aliases, Depth: children.Depth + 1}
	if f.Alias != "" && f.Alias != f.Name {
		c.Aliases = add(c.Aliases, 1)
	}
	each := children.Weight
	if len(f.SelectionSet) == 0 {
		each = 1 // a leaf: one value per item
	}
	if n := m.items(f, def, parent, typ); n > 1 || len(f.SelectionSet) > 0 {
		c.Weight = add(1, mul(n, each))
	} else {
		c.Weight = 1
	}
	if def != nil && parent != nil {
		key := parent.Name + "." + f.Name
		c.Weight = add(c.Weight, m.w.Fields[key])
		if _, ok := m.watch[key]; ok {
			m.calls[key] = add(m.calls[key], 1)
		}
	}
	return c, nil
}

// items is the number of items field f, of type typ, is expected to
// return: 1 unless it is a paged field or a list.
func (m *measurer) items(f *ast.Field, def *ast.FieldDefinition, parent, typ *ast.Definition) int {
	if def == nil || strings.HasPrefix(parent.Name, "__") || strings.HasPrefix(f.Name, "__") {
		// Introspection is bounded by the schema; like gqlgen's
		// complexity, do not multiply it.
		return 1
	}
	if m.w.PageArgument != "" {
		if arg := def.Arguments.ForName(m.w.PageArgument); arg != nil {
			return m.page(f, arg)
		}
	}
	if def.Type.Elem == nil {
		return 1
	}
	if n, ok := m.w.Lists[parent.Name+"."+f.Name]; ok {
		return n
	}
	if typ != nil && typ.Kind == ast.Enum && len(typ.EnumValues) > m.w.List {
		return len(typ.EnumValues) // a list of enum values, e.g. a filter's types
	}
	return m.w.List
}

// page is the value of the page argument arg of f, or its default.
func (m *measurer) page(f *ast.Field, arg *ast.ArgumentDefinition) int {
	fallback := 1
	if arg.DefaultValue != nil {
		if n, ok := intValue(arg.DefaultValue.Raw); ok && n >= 1 {
			fallback = n
		}
	}
	v := f.Arguments.ForName(arg.Name)
	if v == nil || v.Value == nil {
		return fallback
	}
	var n int
	ok := false
	switch v.Value.Kind {
	case ast.IntValue:
		n, ok = intValue(v.Value.Raw)
	case ast.Variable:
		n, ok = m.variable(v.Value.Raw)
	}
	if !ok || n < 1 {
		return fallback
	}
	return n
}

// variable is the Int value of the named variable, given or by default.
func (m *measurer) variable(name string) (int, bool) {
	if v, given := m.vars[name]; given {
		switch v := v.(type) {
		case int:
			return v, true
		case int64:
			return clampInt(float64(v)), true
		case float64:
			return clampInt(v), true
		case json.Number:
			return intValue(v.String())
		}
		return 0, false
	}
	if d := m.op.VariableDefinitions.ForName(name); d != nil && d.DefaultValue != nil {
		return intValue(d.DefaultValue.Raw)
	}
	return 0, false
}

// intValue parses an Int literal, saturating one too large for int: a
// larger page is refused as too costly, not misread.
func intValue(raw string) (int, bool) {
	n, err := strconv.Atoi(raw)
	if err == nil {
		return n, true
	}
	if errors.Is(err, strconv.ErrRange) {
		if strings.HasPrefix(raw, "-") {
			return math.MinInt, true
		}
		return math.MaxInt, true
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return 0, false
	}
	return clampInt(f), true
}

func clampInt(f float64) int {
	switch {
	case f >= math.MaxInt:
		return math.MaxInt
	case f <= math.MinInt:
		return math.MinInt
	default:
		return int(f)
	}
}

// add and mul saturate at math.MaxInt so that no query can wrap its cost
// around to a small number.
func add(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func mul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// Repeats counts the fields of doc whose response name is already taken in
// the same selection set (inline fragments included), over every operation
// and fragment definition. Validation compares every pair of such fields,
// so their number must stay small; execution merges them.
func Repeats(doc *ast.QueryDocument) int {
	n := 0
	var walk func(set ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		seen := make(map[string]bool)
		var collect func(set ast.SelectionSet)
		collect = func(set ast.SelectionSet) {
			for _, sel := range set {
				switch s := sel.(type) {
				case *ast.Field:
					name := s.Alias
					if name == "" {
						name = s.Name
					}
					if seen[name] {
						n++
					}
					seen[name] = true
					if len(s.SelectionSet) > 0 {
						walk(s.SelectionSet)
					}
				case *ast.InlineFragment:
					collect(s.SelectionSet)
				}
			}
		}
		collect(set)
	}
	for _, op := range doc.Operations {
		walk(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		walk(f.SelectionSet)
	}
	return n
}

// Limits bounds a request. A zero limit is no limit.
type Limits struct {
	// Bytes bounds the query text, checked first, before it is read.
	Bytes int
	// Tokens bounds the lexical tokens of the query text, counted before
	// it is parsed.
	Tokens int
	// Definitions bounds the operations and fragments of the document.
	Definitions int
	// Repeats bounds the fields repeating a response name (see Repeats).
	Repeats int
	// Fields, Aliases, Depth and Weight bound the Cost of the operation
	// to run.
	Fields  int
	Aliases int
	Depth   int
	Weight  int
	// Calls bounds how many times one operation may call a field, keyed
	// "Type.field", aliases and fragments counted: a field whose one call
	// is costly (an integrity check) runs at most this often per request.
	Calls map[string]int
}

// Limit names a limit of Limits.
type Limit string

// The limits of Limits, as LimitError names them.
const (
	LimitBytes       Limit = "bytes"
	LimitTokens      Limit = "tokens"
	LimitDefinitions Limit = "definitions"
	LimitRepeats     Limit = "repeated fields"
	LimitFields      Limit = "fields"
	LimitAliases     Limit = "aliases"
	LimitDepth       Limit = "depth"
	LimitWeight      Limit = "weight"
	LimitCalls       Limit = "calls"
)

// LimitError reports the first limit a request exceeds, in the order of
// Limits' fields, weight before the other limits of the operation. Value is a lower
// bound for the limits counted before parsing (bytes, tokens).
type LimitError struct {
	Limit Limit
	Value int
	Max   int
	// Field is the field called too often, for LimitCalls.
	Field string
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitWeight:
		return fmt.Sprintf("operation has complexity %d, which exceeds the limit of %d", e.Value, e.Max)
	case LimitDepth:
		return fmt.Sprintf("operation is nested deeper than %d levels", e.Max)
	case LimitBytes:
		return fmt.Sprintf("query text of %d bytes exceeds the limit of %d", e.Value, e.Max)
	case LimitTokens:
		return fmt.Sprintf("query text exceeds the limit of %d tokens", e.Max)
	case LimitCalls:
		return fmt.Sprintf("operation calls %s %d times; a request may call it at most %d times", e.Field, e.Value, e.Max)
	default:
		return fmt.Sprintf("query has %d %s, which exceeds the limit of %d", e.Value, e.Limit, e.Max)
	}
}

// Check refuses query when it exceeds a limit of l, in time linear in its
// length: it returns a *LimitError, a *CycleError, the parser's
// *gqlerror.Error for a query that does not parse, or nil. The operation
// measured is the one named operationName, or the only one; when there is
// no such operation Check leaves it to the executor to say so.
func (l Limits) Check(schema *ast.Schema, query, operationName string, vars map[string]any, w Weights) error {
	if l.Bytes > 0 && len(query) > l.Bytes {
		return &LimitError{Limit: LimitBytes, Value: len(query), Max: l.Bytes}
	}
	if l.Tokens > 0 {
		if err := countTokens(query, l.Tokens); err != nil {
			return err
		}
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return err
	}
	if d := len(doc.Operations) + len(doc.Fragments); l.Definitions > 0 && d > l.Definitions {
		return &LimitError{Limit: LimitDefinitions, Value: d, Max: l.Definitions}
	}
	if r := Repeats(doc); l.Repeats > 0 && r > l.Repeats {
		return &LimitError{Limit: LimitRepeats, Value: r, Max: l.Repeats}
	}
	op := doc.Operations.ForName(operationName)
	if op == nil {
		return nil
	}
	c, calls, err := measure(schema, doc, op, vars, w, l.Calls)
	if err != nil {
		return err
	}
	if err := l.exceeded(c); err != nil {
		return err
	}
	for _, field := range slices.Sorted(maps.Keys(l.Calls)) {
		if max := l.Calls[field]; calls[field] > max {
			return &LimitError{Limit: LimitCalls, Value: calls[field], Max: max, Field: field}
		}
	}
	return nil
}

func (l Limits) exceeded(c Cost) error {
	for _, x := range []struct {
		limit      Limit
		value, max int
	}{
		{LimitWeight, c.Weight, l.Weight},
		{LimitFields, c.Fields, l.Fields},
		{LimitAliases, c.Aliases, l.Aliases},
		{LimitDepth, c.Depth, l.Depth},
	} {
		if x.max > 0 && x.value > x.max {
			return &LimitError{Limit: x.limit, Value: x.value, Max: x.max}
		}
	}
	return nil
}

// countTokens refuses query once it has more than limit tokens; a query that
// does not lex is left to the parser to report.
func countTokens(query string, limit int) error {
	lx := lexer.New(&ast.Source{Input: query})
	for n := 0; ; n++ {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			return nil
		}
		if n >= limit {
			return &LimitError{Limit: LimitTokens, Value: n + 1, Max: limit}
		}
	}
}

package querycost_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/auditlog/auditlog/querycost"
)

const sdl = `
type Query {
  verify: Entry
  items(first: Int = 50): ItemConnection!
  catalog: [Entry!]!
  colors: [Color!]!
  one: Entry
  tags: [String!]!
}
type ItemConnection { edges: [Edge!]! total: Int! }
type Edge { node: Item! }
interface Item { id: ID! name: String }
type Thing implements Item { id: ID! name: String size: Int }
type Entry { name: String! fields: [String!]! }
enum Color { RED GREEN BLUE }
`

var weights = querycost.Weights{
	PageArgument: "first",
	Lists:        map[string]int{"Query.catalog": 40, "Entry.fields": 5, "ItemConnection.edges": 1},
	List:         2,
	Fields:       map[string]int{"Query.verify": 100},
}

// chain is a fragment chain: each fragment spreads the previous one three
// times, so F<n> expands to 3^n fields.
func chain(n int) string {
	var b strings.Builder
	b.WriteString("fragment F0 on Item { id }\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "fragment F%d on Item { ...F%d ...F%d ...F%d }\n", i, i-1, i-1, i-1)
	}
	fmt.Fprintf(&b, "{ items(first: 1) { edges { node { ...F%d } } } }", n)
	return b.String()
}

func pow3(n int) int {
	p := 1
	for range n {
		p *= 3
	}
	return p
}

func TestMeasure(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: sdl})
	aliases := func(n int, sel string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "a%d: %s ", i, sel)
		}
		return "{ " + b.String() + "}"
	}
	tests := []struct {
		name  string
		query string
		vars  map[string]any
		want  querycost.Cost
	}{
		{"leaf", `{ one { name } }`, nil, querycost.Cost{Weight: 2, Fields: 2, Depth: 2}},
		{"page by literal", `{ items(first: 10) { edges { node { id name } } } }`, nil,
			querycost.Cost{Weight: 1 + 10*(1+1*(1+2)), Fields: 5, Depth: 4}},
		{"page by default", `{ items { total } }`, nil, querycost.Cost{Weight: 1 + 50, Fields: 2, Depth: 2}},
		{"page by variable", `query($n: Int) { items(first: $n) { total } }`, map[string]any{"n": float64(7)},
			querycost.Cost{Weight: 1 + 7, Fields: 2, Depth: 2}},
		{"page by variable default", `query($n: Int = 3) { items(first: $n) { total } }`, nil,
			querycost.Cost{Weight: 1 + 3, Fields: 2, Depth: 2}},
		{"page of zero is the default page", `{ items(first: 0) { total } }`, nil, querycost.Cost{Weight: 1 + 50, Fields: 2, Depth: 2}},
		{"huge page saturates", `{ items(first: 99999999999999999999999) { total } }`, nil,
			querycost.Cost{Weight: 1<<63 - 1, Fields: 2, Depth: 2}},
		{"weighted lists multiply", `{ catalog { name fields } }`, nil,
			querycost.Cost{Weight: 1 + 40*(1+(1+5)), Fields: 3, Depth: 2}},
		{"enum list weighs its values", `{ colors }`, nil, querycost.Cost{Weight: 1 + 3, Fields: 1, Depth: 1}},
		{"other list", `{ tags }`, nil, querycost.Cost{Weight: 1 + 2, Fields: 1, Depth: 1}},
		{"aliases add up", aliases(3, "catalog { name }"), nil,
			querycost.Cost{Weight: 3 * (1 + 40), Fields: 6, Aliases: 3, Depth: 2}},
		{"inline fragments", `{ one { ... on Entry { name } ... { fields } } }`, nil,
			querycost.Cost{Weight: 1 + (1 + (1 + 5)), Fields: 3, Depth: 2}},
		{"introspection is not multiplied", `{ __schema { types { fields { name } } } }`, nil,
			querycost.Cost{Weight: 4, Fields: 4, Depth: 4}},
		{"unknown fields cost 1", `{ nope { deeper } }`, nil, querycost.Cost{Weight: 2, Fields: 2, Depth: 2}},
		{"fragment chain 3", chain(3), nil,
			querycost.Cost{Weight: 1 + 1*(1+1*(1+pow3(3))), Fields: 3 + pow3(3), Depth: 4}},
		{"fragment chain 30 saturates", chain(30), nil,
			querycost.Cost{Weight: 1 + 1*(1+1*(1+pow3(30))), Fields: 3 + pow3(30), Depth: 4}},
		{"a costly field weighs its call", `{ a: verify { name } b: verify { name } }`, nil,
			querycost.Cost{Weight: 2 * (1 + 1 + 100), Fields: 4, Aliases: 2, Depth: 2}},
		{"deep nesting", `{ one { ` + strings.Repeat("a { ", 20) + "b" + strings.Repeat(" }", 20) + ` } }`, nil,
			querycost.Cost{Weight: 22, Fields: 22, Depth: 22}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := querycost.Measure(schema, doc, doc.Operations[0], tc.vars, weights)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("took %v: not linear", took)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMeasureFragmentCycle(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: sdl})
	for _, q := range []string{
		`fragment A on Entry { name ...A } { one { ...A } }`,
		`fragment A on Entry { ...B } fragment B on Entry { ... { ...A } } { one { ...A } }`,
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		if err != nil {
			t.Fatal(err)
		}
		var cycle *querycost.CycleError
		if _, err := querycost.Measure(schema, doc, doc.Operations[0], nil, weights); !errors.As(err, &cycle) {
			t.Errorf("%s: got %v, want a cycle", q, err)
		}
	}
}

func TestRepeats(t *testing.T) {
	tests := []struct {
		query string
		want  int
	}{
		{`{ a b c }`, 0},
		{`{ a a a }`, 2},
		{`{ a x: a x: b }`, 1},
		{`{ a ... on T { a } ... { a b } }`, 2},
		{`{ a { b b } c { b } }`, 1},
		{`fragment F on T { b b b } { a }`, 2},
	}
	for _, tc := range tests {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
		if err != nil {
			t.Fatal(err)
		}
		if got := querycost.Repeats(doc); got != tc.want {
			t.Errorf("Repeats(%s) = %d, want %d", tc.query, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: sdl})
	limits := querycost.Limits{Bytes: 4096, Tokens: 500, Definitions: 8, Repeats: 3, Fields: 100, Aliases: 4, Depth: 5, Weight: 1000,
		Calls: map[string]int{"Query.verify": 1}}
	tests := []struct {
		name  string
		query string
		op    string
		want  querycost.Limit // "" for none
	}{
		{"within every limit", `{ items(first: 20) { edges { node { id name } } } }`, "", ""},
		{"bytes", `{ one { name } }` + strings.Repeat(" ", 4096), "", querycost.LimitBytes},
		{"tokens", `{ one { ` + strings.Repeat("name ", 600) + `} }`, "", querycost.LimitTokens},
		{"definitions", strings.Repeat("fragment X on Entry { name } ", 8) + `{ one { name } }`, "", querycost.LimitDefinitions},
		{"repeats", `{ one { name name name name name } }`, "", querycost.LimitRepeats},
		{"fields", chain(5), "", querycost.LimitFields},
		{"aliases", `{ a: one { name } b: one { name } c: one { name } d: one { name } e: one { name } }`, "", querycost.LimitAliases},
		{"depth", `{ one { a { b { c { d { e } } } } } }`, "", querycost.LimitDepth},
		{"weight", `{ items(first: 500) { edges { node { id } } } }`, "", querycost.LimitWeight},
		{"one call of a limited field", `{ verify { name } }`, "", ""},
		{"a limited field aliased twice", `{ a: verify { name } b: verify { name } }`, "", querycost.LimitCalls},
		{"a limited field twice through a fragment", `fragment V on Query { verify { name } } { ...V x: one { ...E } } fragment E on Entry { name }
		  query Q { ...V ... on Query { ...V } }`, "Q", querycost.LimitCalls},
		{"a limited field in a fragment spread once", `fragment V on Query { verify { name } } { ...V ...V2 } fragment V2 on Query { one { name } }`, "", ""},
		{"a limited field in a nested fragment spread twice", `fragment V on Query { verify { name } } fragment W on Query { ...V } { ...W ... { ...W } }`, "", querycost.LimitCalls},
		{"only the named operation is measured", `query A { items(first: 500) { total } } query B { one { name } }`, "B", ""},
		{"an unknown operation is left to the executor", `query A { one { name } }`, "C", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := limits.Check(schema, tc.query, tc.op, nil, weights)
			var le *querycost.LimitError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (!errors.As(err, &le) || le.Limit != tc.want):
				t.Fatalf("got %v, want the %s limit", err, tc.want)
			}
		})
	}
	if err := limits.Check(schema, `{ one { `, "", nil, weights); err == nil || errors.As(err, new(*querycost.LimitError)) {
		t.Errorf("unparsable query: got %v, want the parser's error", err)
	}
}

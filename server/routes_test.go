package server

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func TestDepth(t *testing.T) {
	tests := []struct {
		query string
		want  int
	}{
		{`{ a }`, 1},
		{`{ a { b { c } } d }`, 3},
		{`{ a { ... on T { b { c } } } }`, 3},
		{`{ ` + strings.Repeat("a { ", 20) + "b" + strings.Repeat(" }", 20) + ` }`, 13}, // stops counting past the limit
	}
	for _, tc := range tests {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
		if err != nil {
			t.Fatal(err)
		}
		if got := depth(doc.Operations[0].SelectionSet, 0, 12); got != tc.want {
			t.Errorf("depth(%s) = %d, want %d", tc.query, got, tc.want)
		}
	}
}

package model

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/auditlog/auditlog/domain"
)

// TestCatalogFieldsAreTyped keeps the catalog and the schema in step: every
// payload field of every type is a field of its category's GraphQL type, and
// decodes into it.
func TestCatalogFieldsAreTyped(t *testing.T) {
	src, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	for _, info := range domain.Catalog() {
		v := NewAuditEvent(&domain.Event{Type: info.Type, Details: []byte("{}")})
		name := reflect.TypeOf(v).Elem().Name()
		def := schema.Types[name]
		if def == nil || !slices.Contains(schema.GetPossibleTypes(schema.Types["AuditEvent"]), def) {
			t.Fatalf("%s maps to %s, which is not an AuditEvent type", info.Type, name)
		}
		for _, f := range info.Fields {
			if def.Fields.ForName(f.Name) == nil {
				t.Errorf("%s.%s (payload of %s) is missing from the schema", name, f.Name, info.Type)
			}
			if _, ok := reflect.TypeOf(v).Elem().FieldByNameFunc(func(n string) bool { return equalFold(n, f.Name) }); !ok {
				t.Errorf("%s has no Go field for %s", name, f.Name)
			}
		}
	}
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }

package query

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every example the documentation gives parses.
func TestDocumentedExamplesParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/query-language.md")
	if err != nil {
		t.Fatal(err)
	}
	_, examples, ok := strings.Cut(string(doc), "## Examples")
	if !ok {
		t.Fatal("no Examples section")
	}
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(examples, -1)
	if len(rows) < 5 {
		t.Fatalf("found %d examples", len(rows))
	}
	for _, r := range rows {
		if _, err := Parse(r[1]); err != nil {
			t.Errorf("documented example %q: %v", r[1], err)
		}
	}
	for _, q := range []string{"type:USER_CREATED actor:*@example.com -source:PLATFORM occurred:>=2026-11-01",
		"-target:*", "actor.email:*", `target.name:"Prod (eu)"`, "occurred:2026-11-01T10:00:00Z..2026-11-01T11:00:00Z",
		"occurred:*..2026-11-30", "occurred:>2026-11-01T10:00:00Z", "ip:2001:db8::7", "details.userName.first:x",
		"-(type:USER_LOGOUT OR actor.kind:SYSTEM)", `"OR"`, `a\ b`} {
		if _, err := Parse(q); err != nil {
			t.Errorf("documented query %q: %v", q, err)
		}
	}
}

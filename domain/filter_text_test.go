package domain

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// A filter's recorded text fits a details string whatever the filter's
// size, and a short one is its JSON unchanged.
func TestFilterTextFitsADetailsString(t *testing.T) {
	var all []EventType
	for _, d := range Catalog() {
		all = append(all, d.Type)
	}
	tests := []struct {
		name string
		f    Filter
		cut  bool
	}{
		{"short", Filter{Types: []EventType{"USER_CREATED"}, Search: "ann"}, false},
		{"every type", Filter{Types: all, ExcludeTypes: all}, true},
		{"long query of multibyte text", Filter{Query: strings.Repeat("é", 900)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.Text()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > MaxStringLen || !utf8.ValidString(got) {
				t.Fatalf("%d bytes (valid UTF-8: %v), want at most %d", len(got), utf8.ValidString(got), MaxStringLen)
			}
			if strings.Contains(got, "sha256:") != tc.cut {
				t.Fatalf("cut = %v, want %v: %s", !tc.cut, tc.cut, got)
			}
			quoted, _ := json.Marshal(got)
			if err := ValidateDetails(TypeAuditLogViewed, []byte(`{"action":"search","filter":`+string(quoted)+`}`)); err != nil {
				t.Fatalf("the recorded text does not validate: %v", err)
			}
		})
	}
}

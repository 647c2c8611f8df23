package live

import (
	"reflect"
	"testing"

	"github.com/auditlog/auditlog/domain"
)

func TestSubjectsNarrowToTheFilter(t *testing.T) {
	all := []string{"audit.eu.acme.>"}
	tests := []struct {
		name   string
		filter domain.Filter
		want   []string
	}{
		{"no filter", domain.Filter{}, all},
		{"search only", domain.Filter{Search: "x", ActorID: "u1"}, all},
		{"sources", domain.Filter{Sources: []domain.Source{"INSIGHT_VM", "PLATFORM"}},
			[]string{"audit.eu.acme.INSIGHT_VM.*", "audit.eu.acme.INSIGHT_VM.*.>", "audit.eu.acme.PLATFORM.*", "audit.eu.acme.PLATFORM.*.>"}},
		{"types", domain.Filter{Types: []domain.EventType{"USER_CREATED"}}, []string{"audit.eu.acme.*.USER_CREATED", "audit.eu.acme.*.USER_CREATED.>"}},
		{"category", domain.Filter{Categories: []domain.Category{"POLICY"}, Sources: []domain.Source{"INSIGHT_VM"}},
			[]string{"audit.eu.acme.INSIGHT_VM.POLICY_CREATED", "audit.eu.acme.INSIGHT_VM.POLICY_CREATED.>",
				"audit.eu.acme.INSIGHT_VM.POLICY_DELETED", "audit.eu.acme.INSIGHT_VM.POLICY_DELETED.>",
				"audit.eu.acme.INSIGHT_VM.POLICY_UPDATED", "audit.eu.acme.INSIGHT_VM.POLICY_UPDATED.>"}},
		{"type outside the category", domain.Filter{Categories: []domain.Category{"POLICY"}, Types: []domain.EventType{"USER_CREATED"}},
			[]string{"audit.eu.acme.*._NONE_", "audit.eu.acme.*._NONE_.>"}},
		{"too many to list", domain.Filter{Sources: domain.Sources, Categories: []domain.Category{"USER", "USER_ACCESS", "API_KEY"}}, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Subjects(domain.RegionEU, "acme", tt.filter); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

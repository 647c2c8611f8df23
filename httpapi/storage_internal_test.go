package httpapi

import (
	"strings"
	"testing"
)

// TestStorageAssess: JetStream storage warns at StorageWarnFraction and is
// a problem at StorageFullFraction; a full persisted query
// bucket only warns; an unknown limit says nothing.
func TestStorageAssess(t *testing.T) {
	tests := []struct {
		name         string
		h            StorageHealth
		problem      string // a substring, "" for none
		warnings     int
		warningMatch string
	}{
		{"plenty of room", StorageHealth{JetStreamUsedBytes: 10, JetStreamLimitBytes: 100}, "", 0, ""},
		{"unknown limit", StorageHealth{JetStreamUsedBytes: 1 << 40}, "", 0, ""},
		{"near the limit", StorageHealth{JetStreamUsedBytes: 91, JetStreamLimitBytes: 100}, "", 1, "91% used"},
		{"full", StorageHealth{JetStreamUsedBytes: 98, JetStreamLimitBytes: 100}, "jetstream storage is full", 0, ""},
		{"bucket full", StorageHealth{JetStreamUsedBytes: 1, JetStreamLimitBytes: 100, PersistedQueriesFull: true,
			PersistedQueryBytes: 60, PersistedQueryMaxBytes: 64}, "", 1, "AUDIT_APQ is full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			problem, warnings := tc.h.assess()
			if (tc.problem == "") != (problem == "") || !strings.Contains(problem, tc.problem) {
				t.Errorf("problem %q, want one containing %q", problem, tc.problem)
			}
			if len(warnings) != tc.warnings || (tc.warnings > 0 && !strings.Contains(warnings[0], tc.warningMatch)) {
				t.Errorf("warnings %q, want %d containing %q", warnings, tc.warnings, tc.warningMatch)
			}
		})
	}
}

package natsx_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// A regional stream keeps its messages the retention plus the margin, so
// it always holds what the read model shows; declaring the streams again
// updates the maximum age of existing ones.
func TestStreamsMaxAgeIsRetentionPlusMargin(t *testing.T) {
	ctx := context.Background()
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	tests := []struct {
		name      string
		retention map[domain.Region]time.Duration
		want      map[domain.Region]time.Duration
	}{
		{"forever", nil, map[domain.Region]time.Duration{domain.RegionUS: 0, domain.RegionEU: 0}},
		{"400 days in US", map[domain.Region]time.Duration{domain.RegionUS: 400 * domain.Day},
			map[domain.Region]time.Duration{domain.RegionUS: 433 * domain.Day, domain.RegionEU: 0}},
		{"back to forever", map[domain.Region]time.Duration{}, map[domain.Region]time.Duration{domain.RegionUS: 0}},
	}
	for _, tc := range tests {
		if err := (natsx.Streams{DuplicateWindow: time.Minute, Retention: tc.retention}).Ensure(ctx, js); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for r, want := range tc.want {
			s, err := js.Stream(ctx, natsx.AuditStream(r))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.MaxAge; got != want {
				t.Errorf("%s: %s keeps messages %s, want %s", tc.name, r, got, want)
			}
			if cfg := s.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
				t.Errorf("%s: %s allows delete or purge", tc.name, r)
			}
		}
	}
}

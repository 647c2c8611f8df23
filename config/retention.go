package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/auditlog/auditlog/domain"
)

// ParseRetention reads the retention setting: comma-separated entries,
// each REGION=period, plus at most one bare period for every region not
// named. A period is whole days ("400d"), a Go duration, or 0 / forever.
// "400d" keeps every region's events 400 days; "US=400d,EU=730d" two
// regions' and the rest for ever; "400d,EU=730d" EU's 730 days and the
// others' 400. Empty keeps everything for ever.
func ParseRetention(spec string) (map[domain.Region]time.Duration, error) {
	out := map[domain.Region]time.Duration{}
	if strings.TrimSpace(spec) == "" {
		return out, nil
	}
	var def *time.Duration
	named := map[domain.Region]bool{}
	for entry := range strings.SplitSeq(spec, ",") {
		region, period, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			if def != nil {
				return nil, fmt.Errorf("retention %q: more than one period for every region", spec)
			}
			d, err := domain.ParsePeriod(region)
			if err != nil {
				return nil, err
			}
			def = &d
			continue
		}
		r := domain.Region(strings.ToUpper(strings.TrimSpace(region)))
		if !r.Valid() {
			return nil, fmt.Errorf("retention %q: unknown region %q", spec, region)
		}
		if named[r] {
			return nil, fmt.Errorf("retention %q: region %s given twice", spec, r)
		}
		d, err := domain.ParsePeriod(period)
		if err != nil {
			return nil, err
		}
		named[r], out[r] = true, d
	}
	if def != nil {
		for _, r := range domain.Regions {
			if !named[r] {
				out[r] = *def
			}
		}
	}
	return out, nil
}

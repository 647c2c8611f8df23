package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/auditlog/auditlog/onlyone"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditlog/auditlog/config"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/retention"
)

// DefaultRetentionFloor is the shortest retention auditd accepts unless
// told otherwise. A year is the shortest retention common audit
// requirements ask of audit logs (PCI DSS keeps them 12 months; SOC 2 and
// ISO 27001 audits look back a year), so anything shorter is far more
// likely a typo ("40d", "400h") than a decision, and what it would remove
// nothing can bring back.
const DefaultRetentionFloor = config.DefaultRetentionFloor

// DefaultRetentionEvery is how often expired months are dropped. Months
// expire once a month; a daily run removes each within a day, which the
// stream's retention margin allows for.
const DefaultRetentionEvery = 24 * time.Hour

// ParseRetention reads a --retention value: config.ParseRetention.
func ParseRetention(spec string) (map[domain.Region]time.Duration, error) {
	return config.ParseRetention(spec)
}

// checkRetention refuses a configuration that names an unknown region or
// keeps a region's events for less than the floor, before anything starts.
func checkRetention(cfg Config) error {
	for r, p := range cfg.Retention {
		if !r.Valid() {
			return fmt.Errorf("retention: unknown region %q", r)
		}
		ret := domain.Retention{Period: p, Floor: retentionFloor(cfg)}
		if err := ret.Check(); err != nil {
			return fmt.Errorf("retention of %s: %w (the floor is --retention-floor)", r, err)
		}
	}
	return nil
}

func retentionFloor(cfg Config) time.Duration {
	if cfg.RetentionFloor < 0 {
		return 0
	}
	if cfg.RetentionFloor == 0 {
		return DefaultRetentionFloor
	}
	return cfg.RetentionFloor
}

// Retention is how long region r keeps its events.
func (s *Server) Retention(r domain.Region) domain.Retention {
	return domain.Retention{Period: s.cfg.Retention[r], Floor: retentionFloor(s.cfg)}
}

// DefaultClockTolerance is how far the host's clock may stray from the
// trusted clock (the region's Postgres) before retention refuses to act on
// either: more than NTP ever leaves between two synchronized hosts, far
// less than the day a month's expiry could be misjudged by.
const DefaultClockTolerance = time.Minute

// ErrClockSkew is returned by retention when the host's clock and the
// trusted clock disagree beyond the tolerance: nothing is dropped then.
var ErrClockSkew = errors.New("host clock disagrees with the database clock")

// retentionLoop drops expired months once at start, then every period,
// each region on its own schedule and by one instance at a time.
func (s *Server) retentionLoop(ctx context.Context, period time.Duration) {
	s.regionLoops(ctx, taskRetention, period, true, func(ctx context.Context, r domain.Region) error {
		if s.Retention(r).Forever() {
			return nil
		}
		st := s.events[r]
		_, err := onlyone.Run(ctx, st.Pool(), "retention:"+st.Schema(), func() error {
			_, err := s.enforceRetention(ctx, r)
			return err
		})
		return err
	})
}

// EnforceRetention drops the expired months of every region now, whatever
// the schedule, and returns them by region. The regions run at once and a
// failing one does not stop the others; the error joins the failures.
// Another instance enforcing at the same time removes each month once
// between them.
func (s *Server) EnforceRetention(ctx context.Context) (map[domain.Region][]retention.Drop, error) {
	var mu sync.Mutex
	out := map[domain.Region][]retention.Drop{}
	err := s.eachRegion(ctx, taskRetention, func(ctx context.Context, r domain.Region) error {
		drops, err := s.enforceRetention(ctx, r)
		if len(drops) > 0 {
			mu.Lock()
			out[r] = drops
			mu.Unlock()
		}
		return err
	})
	return out, err
}

// trustedNow is the time retention decides by: the region's Postgres
// clock, which the host cannot skew on its own. It also checks the host's
// clock against it and reports (gauge auditlog_clock_skew_seconds) a
// disagreement beyond the tolerance as ErrClockSkew.
func (s *Server) trustedNow(ctx context.Context, r domain.Region) (time.Time, error) {
	db, err := retention.DatabaseNow(ctx, s.events[r])
	if err != nil {
		return time.Time{}, err
	}
	skew := s.cfg.Now().Sub(db)
	s.metrics.clockSkew.WithLabelValues(string(r)).Set(skew.Seconds())
	if skew > s.cfg.ClockTolerance || skew < -s.cfg.ClockTolerance {
		return db, fmt.Errorf("%w: host %s, database %s (skew %s, tolerance %s); retention waits until they agree",
			ErrClockSkew, s.cfg.Now().UTC().Format(time.RFC3339), db.UTC().Format(time.RFC3339),
			skew.Round(time.Second), s.cfg.ClockTolerance)
	}
	return db, nil
}

// enforceRetention drops region r's expired months, judged by the trusted
// clock, and logs each drop and the run.
func (s *Server) enforceRetention(ctx context.Context, r domain.Region) ([]retention.Drop, error) {
	ret := s.Retention(r)
	if ret.Forever() {
		return nil, nil
	}
	now, err := s.trustedNow(ctx, r)
	if err != nil {
		return nil, err
	}
	drops, err := retention.Enforce(ctx, s.events[r], ret, now)
	var events int64
	for _, d := range drops {
		events += d.Events
		s.log.Info().Str("region", string(r)).Str("stream", natsx.AuditStream(r)).
			Str("partition", d.Table).Time("from", d.Month).Time("to", d.End()).
			Int64("events", d.Events).Int64("event_ids", d.IDs).Str("retention", domain.FormatPeriod(ret.Period)).
			Msg("retention dropped an expired month")
	}
	if err != nil {
		return drops, err
	}
	s.log.Info().Str("region", string(r)).Str("retention", domain.FormatPeriod(ret.Period)).
		Time("oldest_kept", ret.Horizon(now)).Int("months", len(drops)).Int64("events", events).
		Msg("retention enforced")
	return drops, nil
}

// retentionCollector serves what retention has removed from each regional
// read model, read from the read model itself so every instance reports
// the same whichever one dropped the months.
type retentionCollector struct {
	stores             map[domain.Region]*readmodel.EventStore
	partitions, events *prometheus.Desc
}

func newRetentionCollector(stores map[domain.Region]*readmodel.EventStore) *retentionCollector {
	labels := []string{"stream"}
	return &retentionCollector{
		stores: stores,
		partitions: prometheus.NewDesc("auditlog_retention_partitions_dropped_total",
			"Month partitions of the read model dropped because the whole month was past retention.", labels, nil),
		events: prometheus.NewDesc("auditlog_retention_events_dropped_total",
			"Events removed from the read model with their expired month.", labels, nil),
	}
}

func (c *retentionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.partitions
	ch <- c.events
}

// Collect leaves out a region it cannot read rather than report a guess.
func (c *retentionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for r, st := range c.stores {
		t, err := retention.ReadTotals(ctx, st)
		if err != nil {
			continue
		}
		name := natsx.AuditStream(r)
		ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.CounterValue, float64(t.Partitions), name)
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(t.Events), name)
	}
}

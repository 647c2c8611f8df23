package delivery

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditlog/auditlog/logstream/streamstore"
)

// Collector reports every log stream's state from the store at each
// scrape: every instance reports the same figures, whichever delivers.
// Series are labeled by stream id and kind, never by organization.
type Collector struct {
	store                                *streamstore.Store
	delivered, failed, lag, status, last *prometheus.Desc
	skipped                              *prometheus.Desc
}

// NewCollector returns the log streams' metrics, read from store.
func NewCollector(store *streamstore.Store) *Collector {
	labels := []string{"stream_id", "kind"}
	return &Collector{
		store:     store,
		delivered: prometheus.NewDesc("auditlog_log_stream_delivered_events_total", "Events a log stream delivered.", labels, nil),
		failed:    prometheus.NewDesc("auditlog_log_stream_failed_sends_total", "Sends of a log stream that failed.", labels, nil),
		lag:       prometheus.NewDesc("auditlog_log_stream_lag_events", "Events of the organization waiting after a log stream's position, as its deliverer last saw.", labels, nil),
		status:    prometheus.NewDesc("auditlog_log_stream_status", "1 for a log stream's status (ACTIVE, ERROR, PAUSED, DISABLED).", append(labels, "status"), nil),
		last:      prometheus.NewDesc("auditlog_log_stream_last_delivered_timestamp_seconds", "When a log stream last delivered an event.", labels, nil),
		skipped: prometheus.NewDesc("auditlog_log_stream_skipped_events_total",
			"Messages of the region's stream that retention removed before a log stream delivered them (an upper bound on the organization's lost events; alert on any increase).", labels, nil),
	}
}

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.delivered, c.failed, c.lag, c.status, c.last, c.skipped} {
		ch <- d
	}
}

// collectTimeout bounds a scrape's read of the store.
const collectTimeout = 2 * time.Second

// Collect reports nothing when the store cannot be read rather than a guess.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	streams, err := c.store.All(ctx)
	if err != nil {
		return
	}
	for _, s := range streams {
		l := []string{s.ID, s.Kind}
		ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(s.Delivered), l...)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(s.Failed), l...)
		ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(s.Skipped), l...)
		if s.Lag != nil {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(*s.Lag), l...)
		}
		if s.LastDeliveredAt != nil {
			ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, float64(s.LastDeliveredAt.Unix()), l...)
		}
		ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, 1, append(l, string(s.Status))...)
	}
}

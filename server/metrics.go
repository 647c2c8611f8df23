package server

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
)

// metrics is what GET /metrics serves in the Prometheus text format,
// besides httpapi's series. No
// series is labelled with an organization, so the endpoint reveals no
// tenant's activity and its size does not grow with the number of tenants.
type metrics struct {
	registry *prometheus.Registry
	ingested *prometheus.CounterVec
	// refused counts events of calls refused as overloaded, by reason.
	refused *prometheus.CounterVec
	// dropped counts NATS ingest requests left unanswered; restricted is 1
	// while NATS itself confines the ingest responder to _INBOX.
	dropped    *prometheus.CounterVec
	restricted prometheus.Gauge
	// regionFailures counts failed runs of per-region tasks, so one
	// region's trouble shows while the others go on.
	regionFailures *prometheus.CounterVec
	// clockSkew is the host's clock minus each region's database clock,
	// as retention last read them.
	clockSkew *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_ingest_events_total",
			Help: "Events submitted for recording, by outcome (RECORDED, DUPLICATE, DROPPED_DISABLED, REJECTED).",
		}, []string{"status"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_ingest_refused_events_total",
			Help: "Events of calls refused UNAVAILABLE with retryAfter because appends were backed up: org_share (the organization's appends filled its share of the publish window) or window (the whole window stayed full).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_ingest_requests_dropped_total",
			Help: "NATS ingest requests dropped unanswered: no reply subject (no_reply), or one outside _INBOX (reply_subject).",
		}, []string{"reason"}),
		restricted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditlog_nats_responder_restricted",
			Help: "1 when NATS refuses the connection answering ingest requests any publish outside _INBOX (checked at start); 0 is a misconfigured NATS user.",
		}),
		regionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_region_task_failures_total",
			Help: "Failed runs of a per-region task (checkpoints, retention, reconcile); the region is retried and the others go on.",
		}, []string{"task", "region"}),
		clockSkew: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditlog_clock_skew_seconds",
			Help: "Host clock minus the region's Postgres clock, as retention last read them; beyond the tolerance retention does nothing.",
		}, []string{"region"}),
	}
	for _, reason := range []string{ingest.DropNoReply, ingest.DropReplySubject} {
		m.dropped.WithLabelValues(reason)
	}
	for _, reason := range []string{"org_share", "window"} {
		m.refused.WithLabelValues(reason)
	}
	// Every region's failure series exists from the start, at 0, so an
	// alert on its increase sees the first failure.
	for _, task := range []string{taskCheckpoints, taskRetention, taskReconcile} {
		for _, r := range domain.Regions {
			m.regionFailures.WithLabelValues(task, string(r))
		}
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ingested, m.refused, m.dropped, m.restricted, m.regionFailures, m.clockSkew,
	)
	return m
}

// Count implements ingest.Tally.
func (m *metrics) Count(status ingest.Status, n int) {
	m.ingested.WithLabelValues(string(status)).Add(float64(n))
}

// Refused implements ingest.Tally.
func (m *metrics) Refused(reason string, n int) { m.refused.WithLabelValues(reason).Add(float64(n)) }

// Dropped implements ingest.DropCounter.
func (m *metrics) Dropped(reason string) { m.dropped.WithLabelValues(reason).Inc() }

// projectionCollector reports, when scraped, how far each regional read
// model is behind its stream. It reads the read model's own checkpoint, so
// every instance reports the same lag whichever one runs the projector.
type projectionCollector struct {
	js                     jetstream.JetStream
	stores                 map[domain.Region]*readmodel.EventStore
	stored, projected, lag *prometheus.Desc
}

func newProjectionCollector(js jetstream.JetStream, stores map[domain.Region]*readmodel.EventStore) *projectionCollector {
	labels := []string{"stream"}
	return &projectionCollector{
		js: js, stores: stores,
		stored:    prometheus.NewDesc("auditlog_stream_last_sequence", "Last sequence stored in a regional audit stream.", labels, nil),
		projected: prometheus.NewDesc("auditlog_projection_checkpoint_sequence", "Last stream sequence its read model holds.", labels, nil),
		lag:       prometheus.NewDesc("auditlog_projection_lag_messages", "Messages stored in a regional stream and not yet in its read model.", labels, nil),
	}
}

// scrapeTimeout bounds the stream and checkpoint reads of one scrape.
const scrapeTimeout = 2 * time.Second

func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stored
	ch <- c.projected
	ch <- c.lag
}

// Collect leaves out a region it cannot read rather than report a guess.
func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for r, store := range c.stores {
		name := natsx.AuditStream(r)
		stream, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		last := stream.CachedInfo().State.LastSeq
		checkpoint, err := store.Position(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.stored, prometheus.GaugeValue, float64(last), name)
		ch <- prometheus.MustNewConstMetric(c.projected, prometheus.GaugeValue, float64(checkpoint), name)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(last-min(checkpoint, last)), name)
	}
}

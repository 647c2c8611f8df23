package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP surface's series. No series is labelled with an
// organization, so /metrics reveals no tenant's activity and its size does
// not grow with the number of tenants.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// bodies counts /query bodies refused before they were decoded;
	// persisted counts persisted queries refused or not stored.
	bodies, persisted *prometheus.CounterVec
	// storageReadings counts reads of JetStream's storage for /readyz and
	// the storage metrics, which probes share (httpapi.storageEvery).
	storageReadings prometheus.Counter
}

func newMetrics(registry *prometheus.Registry) *metrics {
	m := &metrics{
		registry: registry,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditlog_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern; websocket connections count their whole life.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		bodies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_http_bodies_refused_total",
			Help: "/query request bodies refused before decoding, by caller (anonymous, authenticated) and reason (too_large, budget).",
		}, []string{"caller", "reason"}),
		persisted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditlog_persisted_queries_refused_total",
			Help: "Persisted queries not stored, by reason (anonymous: run but not stored; too_large, full, unavailable: refused).",
		}, []string{"reason"}),
		storageReadings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditlog_storage_readings_total",
			Help: "Reads of JetStream's storage and the persisted query bucket for /readyz and the storage metrics; probes within two seconds share one.",
		}),
	}
	registry.MustRegister(m.requests, m.duration, m.bodies, m.persisted, m.storageReadings)
	return m
}

// registerBudget exposes the body budget: its size, what is held now,
// and the most ever held at once, which never exceeds the size.
func (m *metrics) registerBudget(b *bodyBudget) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "auditlog_http_body_budget_bytes",
			Help: "Bytes of /query request bodies all requests may hold in memory at once.",
		}, func() float64 { return float64(b.size) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "auditlog_http_body_budget_in_use_bytes",
			Help: "Bytes of /query request bodies held in memory now.",
		}, func() float64 { return float64(b.inUse.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "auditlog_http_body_budget_peak_bytes",
			Help: "The most bytes of /query request bodies held in memory at once since the start.",
		}, func() float64 { return float64(b.peak.Load()) }),
	)
}

// bodyRefused counts a /query body refused for reason.
func (m *metrics) bodyRefused(anonymous bool, reason string) {
	caller := "authenticated"
	if anonymous {
		caller = "anonymous"
	}
	m.bodies.WithLabelValues(caller, reason).Inc()
}

// PersistedRefused counts a persisted query refused or not stored for
// reason (gqlguard.RefusalCounter).
func (m *metrics) PersistedRefused(reason string) {
	m.persisted.WithLabelValues(reason).Inc()
}

// observe records one HTTP request under its route pattern, never its raw
// path, which would let clients create series at will.
func (m *metrics) observe(route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

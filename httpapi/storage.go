package httpapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditlog/auditlog/natsx"
)

// Storage thresholds. At StorageWarnFraction of JetStream's storage
// /readyz lists a cluster problem: room is running out for events. At
// StorageFullFraction appends are about to fail and ingest would answer
// UNAVAILABLE. Storage is shared by every instance, so neither makes this
// instance unready.
const (
	StorageWarnFraction = 0.90
	StorageFullFraction = 0.98
)

// StorageHealth is what /readyz shows of JetStream's storage and of the
// persisted query bucket.
type StorageHealth struct {
	// JetStreamUsedBytes and JetStreamLimitBytes are the file storage in
	// use and its limit: the account's, else the embedded server's; 0 when
	// neither is known (an external NATS without account limits).
	JetStreamUsedBytes  uint64 `json:"jetstreamUsedBytes"`
	JetStreamLimitBytes uint64 `json:"jetstreamLimitBytes"`
	// PersistedQueryBytes, PersistedQueries and PersistedQueryMaxBytes are
	// the persisted query bucket's size, count and byte cap.
	PersistedQueryBytes    uint64 `json:"persistedQueryBytes"`
	PersistedQueries       uint64 `json:"persistedQueries"`
	PersistedQueryMaxBytes int64  `json:"persistedQueryMaxBytes"`
	// PersistedQueriesFull says the bucket has no room for a query of the
	// largest size: new ones may be refused (PERSISTED_QUERY_STORE_FULL).
	PersistedQueriesFull bool `json:"persistedQueriesFull"`
}

// storageEvery bounds how often storage is read from JetStream. /readyz
// answers anyone, so a flood of probes must cost at most one reading per
// interval, not two JetStream API requests each.
const storageEvery = 2 * time.Second

// storageReading is the last storage reading and when it was taken.
type storageReading struct {
	mu sync.Mutex
	at time.Time
	h  StorageHealth
	// reading is closed when the reading in flight ends; nil when none is.
	reading chan struct{}
}

// storage is the storage reading of at most storageEvery ago, read anew
// when older.
func (s *API) storage(ctx context.Context) StorageHealth {
	return s.stored.get(ctx, s.readStorage, s.metrics.storageReadings.Inc)
}

// get returns the reading of at most storageEvery ago, or takes one with
// read (counted by counted). One caller reads at a time and never under
// the lock: while it does, the others answer at once with the reading
// before, so a JetStream that hangs holds up one probe, not every probe
// queued behind it. Only the very first reading is waited for, as long as
// the caller's ctx allows. A reading cut short by its caller's ctx is not
// kept, and that caller gets the reading before.
func (c *storageReading) get(ctx context.Context, read func(context.Context) StorageHealth, counted func()) (h StorageHealth) {
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < storageEvery {
		defer c.mu.Unlock()
		return c.h
	}
	if done := c.reading; done != nil {
		if !c.at.IsZero() {
			defer c.mu.Unlock()
			return c.h
		}
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.h
	}
	done := make(chan struct{})
	c.reading = done
	c.mu.Unlock()
	finished := false
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if finished && ctx.Err() == nil {
			c.h, c.at = h, time.Now()
		} else {
			// Cut short (or failed): what it read is partial; the reading
			// before is not, and the next caller reads again.
			h = c.h
		}
		c.reading = nil
		close(done)
	}()
	counted()
	h = read(ctx)
	finished = true
	return h
}

// readStorage reads the JetStream account (and embedded server) and the
// persisted query bucket; what cannot be read is left zero.
func (s *API) readStorage(ctx context.Context) StorageHealth {
	var h StorageHealth
	if st, err := s.apq.Status(ctx); err == nil {
		h.PersistedQueryBytes, h.PersistedQueries = st.Bytes(), st.Values()
		if kv, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			h.PersistedQueryMaxBytes = kv.StreamInfo().Config.MaxBytes
		}
		h.PersistedQueriesFull = h.PersistedQueryMaxBytes > 0 &&
			h.PersistedQueryBytes+natsx.MaxAPQQueryBytes > uint64(h.PersistedQueryMaxBytes)
	}
	if ai, err := s.js.AccountInfo(ctx); err == nil {
		h.JetStreamUsedBytes = ai.Store
		if ai.Limits.MaxStore > 0 {
			h.JetStreamLimitBytes = uint64(ai.Limits.MaxStore)
		}
	}
	if h.JetStreamLimitBytes == 0 && s.cfg.EmbeddedStorage != nil {
		if used, limit, ok := s.cfg.EmbeddedStorage(); ok && limit > 0 {
			h.JetStreamUsedBytes, h.JetStreamLimitBytes = used, limit
		}
	}
	return h
}

// assess says whether storage is full (problem: appends fail) and what is
// running out (warnings); /readyz lists both among the cluster's problems.
func (h StorageHealth) assess() (problem string, warnings []string) {
	if h.JetStreamLimitBytes > 0 {
		used := float64(h.JetStreamUsedBytes) / float64(h.JetStreamLimitBytes)
		switch {
		case used >= StorageFullFraction:
			problem = fmt.Sprintf("jetstream storage is full: %d of %d bytes used; appends fail", h.JetStreamUsedBytes, h.JetStreamLimitBytes)
		case used >= StorageWarnFraction:
			warnings = append(warnings, fmt.Sprintf("jetstream storage is %.0f%% used (%d of %d bytes)", 100*used, h.JetStreamUsedBytes, h.JetStreamLimitBytes))
		}
	}
	if h.PersistedQueriesFull {
		warnings = append(warnings, fmt.Sprintf("persisted query bucket %s is full (%d of %d bytes): new persisted queries are refused until stored ones expire",
			natsx.APQBucket, h.PersistedQueryBytes, h.PersistedQueryMaxBytes))
	}
	return problem, warnings
}

// storageCollector reports StorageHealth when scraped.
type storageCollector struct {
	s                                       *API
	jsUsed, jsLimit, apqBytes, apqMax, apqN *prometheus.Desc
	apqFull                                 *prometheus.Desc
}

func newStorageCollector(s *API) *storageCollector {
	return &storageCollector{
		s:        s,
		jsUsed:   prometheus.NewDesc("auditlog_jetstream_storage_used_bytes", "JetStream file storage in use.", nil, nil),
		jsLimit:  prometheus.NewDesc("auditlog_jetstream_storage_limit_bytes", "JetStream file storage limit (account, else embedded server); absent when unknown.", nil, nil),
		apqBytes: prometheus.NewDesc("auditlog_persisted_query_bucket_bytes", "Bytes stored in the persisted query bucket.", nil, nil),
		apqMax:   prometheus.NewDesc("auditlog_persisted_query_bucket_max_bytes", "Byte cap of the persisted query bucket.", nil, nil),
		apqN:     prometheus.NewDesc("auditlog_persisted_query_bucket_queries", "Persisted queries stored.", nil, nil),
		apqFull:  prometheus.NewDesc("auditlog_persisted_query_bucket_full", "1 when the persisted query bucket has no room for a query of the largest size.", nil, nil),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jsUsed, c.jsLimit, c.apqBytes, c.apqMax, c.apqN, c.apqFull} {
		ch <- d
	}
}

// scrapeTimeout bounds the reads of one scrape.
const scrapeTimeout = 2 * time.Second

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	h := c.s.storage(ctx)
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(c.jsUsed, float64(h.JetStreamUsedBytes))
	if h.JetStreamLimitBytes > 0 {
		gauge(c.jsLimit, float64(h.JetStreamLimitBytes))
	}
	gauge(c.apqBytes, float64(h.PersistedQueryBytes))
	gauge(c.apqMax, float64(h.PersistedQueryMaxBytes))
	gauge(c.apqN, float64(h.PersistedQueries))
	full := 0.0
	if h.PersistedQueriesFull {
		full = 1
	}
	gauge(c.apqFull, full)
}

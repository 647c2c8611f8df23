// Package health watches every read model against its stream, so that a
// stalled projection, a quarantined message, a gap or slots nobody projects
// show on /readyz (the cluster's problems) and in the metrics.
package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auditlog/auditlog/projector"

	integ "github.com/auditlog/auditlog/integrity"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/repeat"
)

const (
	// watchEvery is how often the watch reads every read model.
	watchEvery = 2 * time.Second
	// readTimeout bounds the stream and checkpoint reads of one pass.
	readTimeout = 2 * time.Second
)

// ProjectionHealth is what /readyz tells of one read model.
type ProjectionHealth struct {
	Stream     string `json:"stream"`
	Stored     uint64 `json:"stored"`
	Checkpoint uint64 `json:"checkpoint"`
	Lag        uint64 `json:"lag"`
	// Stalled is set when the read model is behind its stream and its
	// checkpoint has not moved for the stall timeout.
	Stalled     bool  `json:"stalled"`
	Quarantined int64 `json:"quarantined"`
	// Gaps are acknowledged events the last reconciliation found missing
	// and could not repair.
	Gaps          int64      `json:"gaps"`
	LastReconcile *time.Time `json:"lastReconcile,omitempty"`
	// Partitions is how many partitions project a regional stream, and
	// Held those this instance projects; another instance holds the rest.
	Partitions int   `json:"partitions,omitempty"`
	Held       []int `json:"held,omitempty"`
	// Unheld counts the slots of a regional stream no projector of any
	// instance holds the lock of: 0 while the region is projected.
	Unheld int `json:"unheld"`
	// NewestCheckpoint is when the region's newest signed checkpoint was
	// stored, if it has one.
	NewestCheckpoint *time.Time `json:"newestCheckpoint,omitempty"`
	// unheldTooLong says slots have been unheld for the stall timeout.
	unheldTooLong bool
}

// Partitions is what the watch needs of a regional stream's partitioned
// projection (projector.Partitioned).
type Partitions interface {
	Stream() string
	HeldSlots(ctx context.Context) (int, error)
	Status() projector.PartitionStatus
	Resyncs() uint64
	Takeovers() uint64
	Fenced() uint64
}

// Config is what the watch needs: explicit dependencies, nothing shared.
type Config struct {
	JS jetstream.JetStream
	// Control is the settings read model, projected from ControlStream by
	// the projector ControlResyncs counts; Events the regions' read models,
	// projected by Partitioned.
	Control        ReadModel
	ControlResyncs func() uint64
	Events         map[domain.Region]*readmodel.EventStore
	Partitioned    map[domain.Region]Partitions
	// StallAfter is how long a read model behind its stream, or slots
	// unheld, may stay so before it is a problem.
	StallAfter time.Duration
	Now        func() time.Time
	Log        zerolog.Logger
}

// Watch watches every read model against its stream so that a stalled
// projection, a quarantined message or a gap is visible on /readyz and in
// the metrics.
type Watch struct {
	cfg        Config
	stallAfter time.Duration

	mu     sync.Mutex
	health map[string]*ProjectionHealth
	moved  map[string]time.Time // when each checkpoint last moved or caught up
	// held is when each regional stream last had every slot held: slots
	// are unheld for a moment at start and on a takeover, which is no
	// problem until it lasts the stall timeout.
	held map[string]time.Time
}

// New is the watch of cfg; Run runs it.
func New(cfg Config) *Watch {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Watch{cfg: cfg, stallAfter: cfg.StallAfter, health: map[string]*ProjectionHealth{}, moved: map[string]time.Time{}, held: map[string]time.Time{}}
}

// Run refreshes the health of every read model until ctx ends.
func (in *Watch) Run(ctx context.Context) {
	in.Refresh(ctx)
	repeat.Every(ctx, watchEvery, func() { in.Refresh(ctx) })
}

// ReadModel is what the watch needs of a read model.
type ReadModel interface {
	Position(ctx context.Context) (uint64, error)
	QuarantineCount(ctx context.Context) (int64, error)
}

// Refresh reads the health of every read model now.
func (in *Watch) Refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	models := map[string]ReadModel{natsx.ControlStream: in.cfg.Control}
	for r, st := range in.cfg.Events {
		models[natsx.AuditStream(r)] = st
	}
	now := in.cfg.Now()
	for name, rm := range models {
		h, err := in.read(ctx, name, rm)
		if err != nil {
			if ctx.Err() == nil {
				in.cfg.Log.Warn().Err(err).Str("stream", name).Msg("projection health unknown")
			}
			continue
		}

		if pp := in.partitioned(name); pp != nil {
			held, err := pp.HeldSlots(ctx)
			if err != nil {
				in.cfg.Log.Warn().Err(err).Str("stream", name).Msg("projection health unknown")
				continue
			}
			h.Unheld = natsx.Slots - held
		}

		in.mu.Lock()
		prev := in.health[name]
		if prev == nil || h.Lag == 0 || h.Checkpoint != prev.Checkpoint {
			in.moved[name] = now
		}

		h.Stalled = h.Lag > 0 && now.Sub(in.moved[name]) > in.stallAfter
		if _, seen := in.held[name]; !seen || h.Unheld == 0 {
			in.held[name] = now
		}
		h.unheldTooLong = h.Unheld > 0 && now.Sub(in.held[name]) > in.stallAfter
		if h.Stalled && (prev == nil || !prev.Stalled) {
			in.cfg.Log.Error().Str("stream", name).Uint64("checkpoint", h.Checkpoint).Uint64("lag", h.Lag).
				Msg("projection stalled: its checkpoint has not moved while the stream is ahead")
		}
		in.health[name] = h
		in.mu.Unlock()
	}
}

func (in *Watch) read(ctx context.Context, name string, rm ReadModel) (*ProjectionHealth, error) {
	stream, err := in.cfg.JS.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	h := &ProjectionHealth{Stream: name, Stored: stream.CachedInfo().State.LastSeq}
	if h.Checkpoint, err = rm.Position(ctx); err != nil {
		return nil, err
	}
	h.Lag = h.Stored - min(h.Checkpoint, h.Stored)
	if h.Quarantined, err = rm.QuarantineCount(ctx); err != nil {
		return nil, err
	}
	if r, ok := regionOf(name); ok {
		cs, err := in.cfg.JS.Stream(ctx, natsx.CheckpointStream)
		if err != nil {
			return nil, err
		}
		m, err := cs.GetLastMsgForSubject(ctx, natsx.CheckpointSubjects(r))
		switch {
		case err == nil:
			h.NewestCheckpoint = &m.Time
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, err
		}
	}
	if st, ok := rm.(*readmodel.EventStore); ok {
		last, err := integ.LastReconcile(ctx, st)
		if err != nil {
			return nil, err
		}
		if last != nil {
			h.Gaps, h.LastReconcile = last.Gaps, &last.At
		}
	}
	return h, nil
}

// Snapshot is the health of every read model read so far, with the
// partitions this instance holds now.
func (in *Watch) Snapshot() []ProjectionHealth {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]ProjectionHealth, 0, len(in.health))
	for _, name := range append([]string{natsx.ControlStream}, auditStreams()...) {
		if h := in.health[name]; h != nil {
			out = append(out, *h)
		}
	}
	for i := range out {
		if pp := in.partitioned(out[i].Stream); pp != nil {
			st := pp.Status()
			out[i].Partitions, out[i].Held = st.Partitions, st.Held
		}
	}
	return out
}

// regionOf is the region whose stream name is.
func regionOf(name string) (domain.Region, bool) {
	for _, r := range domain.Regions {
		if natsx.AuditStream(r) == name {
			return r, true
		}
	}
	return "", false
}

func auditStreams() []string {
	out := make([]string, len(domain.Regions))
	for i, r := range domain.Regions {
		out[i] = natsx.AuditStream(r)
	}
	return out
}

// Problems say why the read models, shared by every instance, cannot be
// trusted now: a projection stalled, acknowledged events missing, messages
// quarantined, slots nobody projects. They are the deployment's health, not
// this instance's: /readyz reports them beside its own readiness.
func (in *Watch) Problems() []string {
	var out []string
	for _, h := range in.Snapshot() {
		if h.Stalled {
			out = append(out, fmt.Sprintf("projection of %s stalled at %d with %d messages behind", h.Stream, h.Checkpoint, h.Lag))
		}
		if h.Gaps > 0 {
			out = append(out, fmt.Sprintf("read model of %s is missing %d acknowledged events (run auditd projections reconcile --repair)", h.Stream, h.Gaps))
		}
		if h.Quarantined > 0 {
			out = append(out, fmt.Sprintf("%d messages of %s are quarantined (auditd projections quarantine)", h.Quarantined, h.Stream))
		}
		if h.unheldTooLong {
			out = append(out, fmt.Sprintf("%d slots of %s are projected by no instance", h.Unheld, h.Stream))
		}
	}
	return out
}

// integrityCollector serves the integrity of every read model as metrics,
// as the watch last read it.
type integrityCollector struct {
	in                                              *Watch
	quarantined, gaps, stalled, reconciled, resyncs *prometheus.Desc
	partitions, takeovers, unheld, fenced           *prometheus.Desc
	problems, checkpointAge                         *prometheus.Desc
}

// Collector serves the integrity of every read model as metrics, as the
// watch last read it.
func (in *Watch) Collector() prometheus.Collector { return newIntegrityCollector(in) }

func newIntegrityCollector(in *Watch) *integrityCollector {
	labels := []string{"stream"}
	return &integrityCollector{
		in: in,
		quarantined: prometheus.NewDesc("auditlog_projection_quarantined_messages",
			"Stream messages set aside because they can never be applied; alert on any.", labels, nil),
		gaps: prometheus.NewDesc("auditlog_reconcile_gaps",
			"Acknowledged events the last reconciliation found missing from the read model and left unrepaired; alert on any.", labels, nil),
		stalled: prometheus.NewDesc("auditlog_projection_stalled",
			"1 when a read model is behind its stream and its checkpoint has not moved for the stall timeout.", labels, nil),
		reconciled: prometheus.NewDesc("auditlog_reconcile_last_run_timestamp_seconds",
			"When the stream was last reconciled with its read model.", labels, nil),
		resyncs: prometheus.NewDesc("auditlog_projection_resyncs_total",
			"Times this instance's projector found deliveries skipping stored messages and resumed from its checkpoint.", labels, nil),
		partitions: prometheus.NewDesc("auditlog_projection_partitions_held",
			"Partitions of the stream this instance projects; summed over instances it is the layout's partition count.", labels, nil),
		unheld: prometheus.NewDesc("auditlog_projection_unheld_slots",
			"Slots of a regional stream no projector of any instance holds; above 0 for long, part of the region is not projected.", labels, nil),
		takeovers: prometheus.NewDesc("auditlog_projection_partition_starts_total",
			"Partitions of the stream this instance started projecting: at start, after a layout change, and on taking over a dead instance's.", labels, nil),
		problems: prometheus.NewDesc("auditlog_cluster_problems",
			"Problems of the read models every instance shares (stalled, missing events, quarantined messages, unprojected slots), as /readyz lists them under cluster; alert on any.", nil, nil),
		checkpointAge: prometheus.NewDesc("auditlog_checkpoint_newest_age_seconds",
			"Age of the region's newest signed checkpoint; growing past the checkpoint period while the region takes events, checkpoints are not being issued.", labels, nil),
		fenced: prometheus.NewDesc("auditlog_projection_fenced_total",
			"Partitions of this instance whose write was refused because another instance had taken their slots (it was frozen or cut off meanwhile).", labels, nil),
	}
}

func (c *integrityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.quarantined, c.gaps, c.stalled, c.reconciled, c.resyncs, c.partitions, c.takeovers, c.unheld, c.fenced, c.problems, c.checkpointAge} {
		ch <- d
	}
}

func (c *integrityCollector) Collect(ch chan<- prometheus.Metric) {
	for _, h := range c.in.Snapshot() {
		ch <- prometheus.MustNewConstMetric(c.quarantined, prometheus.GaugeValue, float64(h.Quarantined), h.Stream)
		ch <- prometheus.MustNewConstMetric(c.stalled, prometheus.GaugeValue, boolValue(h.Stalled), h.Stream)
		if h.Stream != natsx.ControlStream {
			ch <- prometheus.MustNewConstMetric(c.gaps, prometheus.GaugeValue, float64(h.Gaps), h.Stream)
			ch <- prometheus.MustNewConstMetric(c.unheld, prometheus.GaugeValue, float64(h.Unheld), h.Stream)
		}
		if h.NewestCheckpoint != nil {
			ch <- prometheus.MustNewConstMetric(c.checkpointAge, prometheus.GaugeValue, time.Since(*h.NewestCheckpoint).Seconds(), h.Stream)
		}
		if h.LastReconcile != nil {
			ch <- prometheus.MustNewConstMetric(c.reconciled, prometheus.GaugeValue, float64(h.LastReconcile.Unix()), h.Stream)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.problems, prometheus.GaugeValue, float64(len(c.in.Problems())))
	ch <- prometheus.MustNewConstMetric(c.resyncs, prometheus.CounterValue,
		float64(c.in.cfg.ControlResyncs()), natsx.ControlStream)
	for _, r := range domain.Regions {
		p := c.in.cfg.Partitioned[r]
		ch <- prometheus.MustNewConstMetric(c.resyncs, prometheus.CounterValue, float64(p.Resyncs()), p.Stream())
		st := p.Status()
		ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(len(st.Held)), p.Stream())
		ch <- prometheus.MustNewConstMetric(c.takeovers, prometheus.CounterValue, float64(p.Takeovers()), p.Stream())
		ch <- prometheus.MustNewConstMetric(c.fenced, prometheus.CounterValue, float64(p.Fenced()), p.Stream())
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// partitioned is the partitioned projection of the regional stream named
// stream, or nil for any other stream.
func (in *Watch) partitioned(stream string) Partitions {
	for _, pp := range in.cfg.Partitioned {
		if pp.Stream() == stream {
			return pp
		}
	}
	return nil
}

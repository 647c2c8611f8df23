// Package streambench measures log stream delivery for auditbench, against
// a Splunk HTTP Event Collector on loopback (package hectest): one stream's
// throughput, the delay from recorded to delivered at a steady ingest, and
// what 1,000 configured streams with nothing to deliver cost auditd.
package streambench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/measure"
	"github.com/auditlog/auditlog/logstream/splunk/hectest"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// Bench is what the figures need from the benchmark's run: its auditd
// (whose egress allow list admits loopback) and its clients.
type Bench struct {
	Server *server.Server
	// Scale sizes the throughput and lag steps (the idle one keeps 1,000
	// streams at any scale).
	Scale float64
	// GQL posts one GraphQL request as token and returns its data.
	GQL func(ctx context.Context, token, query string, vars map[string]any) (json.RawMessage, error)
	// Admin is a token of an administrator of org.
	Admin func(org string) string
	// Enable turns org's audit log on, in region US.
	Enable func(ctx context.Context, org string) error
	// Preload records n USER_UPDATED events of org through the API.
	Preload func(ctx context.Context, org string, n int) error
	// Offer records rate USER_UPDATED events a second of org through the
	// API for d, and says how many it sent and how many calls were
	// refused as overloaded (each sent again).
	Offer func(ctx context.Context, org string, rate int, d time.Duration) (sent int, refused int64, err error)
	// WaitQueryable waits until the read model holds every event recorded.
	WaitQueryable func(ctx context.Context) error
	// Analyze gathers the read model's statistics, as autovacuum would
	// after the rows the steps before added.
	Analyze func(ctx context.Context) error
}

// hecToken is the bench collector's HEC token.
const hecToken = "0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"

// idleStreams is how many configured streams the idle figure holds, 10
// (streamstore.MaxPerOrg) in each of a hundred orgs, at any scale.
const idleStreams, idlePerOrg = 1000, 10

const createStream = `mutation($in: CreateLogStreamInput!) { createLogStream(input: $in) { id } }`

// createHECStream makes org's stream to h's collector, without indexer
// acknowledgement, delivering only the bench's USER_UPDATED events (not
// the log's own AUDIT_LOG_STREAM_* ones), from start, or from now if nil.
func (b *Bench) createHECStream(ctx context.Context, org, name string, h *hectest.Receiver, start *time.Time) (string, error) {
	in := map[string]any{
		"name":        name,
		"destination": map[string]any{"splunk": map[string]any{"url": h.URL, "token": hecToken, "sourcetype": "auditlog:event"}},
		"filter":      map[string]any{"types": []string{"USER_UPDATED"}},
	}
	if start != nil {
		in["startAt"] = start.UTC().Format(time.RFC3339Nano)
	}
	data, err := b.GQL(ctx, b.Admin(org), createStream, map[string]any{"in": in})
	if err != nil {
		return "", fmt.Errorf("create log stream: %w", err)
	}
	var out struct{ CreateLogStream struct{ ID string } }
	if err := json.Unmarshal(data, &out); err != nil {
		return "", err
	}
	return out.CreateLogStream.ID, nil
}

func (b *Bench) deleteStream(ctx context.Context, org, id string) error {
	_, err := b.GQL(ctx, b.Admin(org), `mutation($id: ID!) { deleteLogStream(id: $id) { id } }`, map[string]any{"id": id})
	return err
}

// waitDeliverers waits until auditd runs n deliverers.
func (b *Bench) waitDeliverers(ctx context.Context, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for b.Server.LogStreamDeliverers() != n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d log stream deliverers after %s, want %d", b.Server.LogStreamDeliverers(), within, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// arrivals counts the envelopes a collector accepted and closes full once
// it has the number expected.
type arrivals struct {
	mu        sync.Mutex
	want, got int
	full      chan struct{}
}

func newArrivals() *arrivals { return &arrivals{full: make(chan struct{})} }

func (a *arrivals) add(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got += n
	a.check()
}

// expect sets how many envelopes make the count full.
func (a *arrivals) expect(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want = n
	a.check()
}

func (a *arrivals) check() {
	if a.want > 0 && a.got >= a.want && a.full != nil {
		close(a.full)
		a.full = nil
	}
}

// wait waits until every envelope expected arrived, at most within.
func (a *arrivals) wait(ctx context.Context, within time.Duration) error {
	a.mu.Lock()
	full := a.full
	a.mu.Unlock()
	if full == nil {
		return nil
	}
	select {
	case <-full:
		return nil
	case <-time.After(within):
		a.mu.Lock()
		defer a.mu.Unlock()
		return fmt.Errorf("the collector received %d of %d events within %s", a.got, a.want, within)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Throughput preloads events into an org through the API, waits
// until they are projected (so the deliverer finds every leaf index, as
// it does for a stream that catches up), then creates a stream to a
// Splunk HEC starting before them and times until the collector has
// them all: delivery's throughput, batched, for one stream.
func (b *Bench) Throughput(ctx context.Context, rep *measure.Report) error {
	n := max(int(200_000*b.Scale), 20_000)
	const org = "bench-stream-rate"
	if err := b.Enable(ctx, org); err != nil {
		return err
	}
	start, err := b.startAfterFirst(ctx)
	if err != nil {
		return err
	}
	if err := b.Preload(ctx, org, n); err != nil {
		return err
	}
	if err := b.WaitQueryable(ctx); err != nil {
		return err
	}
	// Without statistics (autovacuum is off on the bench machine) the
	// planner takes the millions of rows the earlier steps of a full run
	// left for an empty partition, and looks leaf indexes up through an
	// org index instead of the primary key: 450 ms a batch of 500 instead
	// of a few, which measured the planner, not delivery.
	if err := b.Analyze(ctx); err != nil {
		return err
	}
	got := newArrivals()
	got.expect(n)
	var requests atomic.Int64
	h := hectest.New(hecToken)
	defer h.Close()
	h.Set(func(h *hectest.Receiver) {
		h.OnBatch = func(_ time.Time, envs []map[string]any) { requests.Add(1); got.add(len(envs)) }
	})
	cpu := measure.ReadCPU()
	began := time.Now()
	id, err := b.createHECStream(ctx, org, "rate", h, &start)
	if err != nil {
		return err
	}
	if err := got.wait(ctx, 10*time.Minute); err != nil {
		return err
	}
	took := time.Since(began)
	machineCPU, processCPU := cpu.PerEvent(float64(n))
	rate := float64(n) / took.Seconds()
	rep.Check("log stream: delivery to Splunk HEC", rate, "events/s",
		fmt.Sprintf("%d events already recorded, one stream, %d requests (HEC limits: 500 events, 800 kB), no indexer ack, over %.1fs",
			n, requests.Load(), took.Seconds()), "≥ 20,000", rate >= 20_000)
	rep.Add("log stream: CPU per event delivered, whole machine", machineCPU, "µs", "the collector decodes every envelope on the same cores")
	rep.Add("log stream: CPU per event delivered, auditd process", processCPU, "µs", "auditd, embedded NATS and the collector")
	if err := b.deleteStream(ctx, org, id); err != nil {
		return err
	}
	return b.waitDeliverers(ctx, 0, time.Minute)
}

// startAfterFirst waits until the region's stream holds an event (the
// org's AUDIT_LOG_ENABLED is written to it after enableAuditLog answers)
// and returns a start no earlier than its oldest event, which a stream
// may not start before, and no later than events recorded after it
// returns: the next whole second, once it has come.
func (b *Bench) startAfterFirst(ctx context.Context) (time.Time, error) {
	st, err := b.Server.JetStream().Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		return time.Time{}, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := st.Info(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if info.State.Msgs > 0 {
			start := time.Now()
			if info.State.FirstTime.After(start) { // another clock's rounding
				start = info.State.FirstTime
			}
			start = start.Truncate(time.Second).Add(time.Second)
			time.Sleep(time.Until(start))
			return start, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the region's stream is still empty a minute after enableAuditLog")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Lag offers 5,000 events a second through the API to an org with
// a stream to a Splunk HEC and measures each event's delay from being
// recorded (its recordedAt, auditd's clock, which is this process's) to
// its arrival at the collector.
func (b *Bench) Lag(ctx context.Context, rep *measure.Report) error {
	const (
		org  = "bench-stream-lag"
		rate = 5000
	)
	if err := b.Enable(ctx, org); err != nil {
		return err
	}
	var (
		lags    []time.Duration
		badTime error
	)
	h := hectest.New(hecToken)
	defer h.Close()
	duration := max(time.Duration(float64(20*time.Second)*b.Scale), 5*time.Second)
	got := newArrivals()
	h.Set(func(h *hectest.Receiver) {
		h.OnBatch = func(at time.Time, envs []map[string]any) {
			for _, env := range envs {
				ev, _ := env["event"].(map[string]any)
				s, _ := ev["recordedAt"].(string)
				rec, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					badTime = fmt.Errorf("an event's recordedAt %q: %w", s, err)
					continue
				}
				lags = append(lags, at.Sub(rec))
			}
			got.add(len(envs))
		}
	})
	id, err := b.createHECStream(ctx, org, "lag", h, nil)
	if err != nil {
		return err
	}
	if err := b.waitDeliverers(ctx, 1, time.Minute); err != nil {
		return err
	}
	sent, refused, err := b.Offer(ctx, org, rate, duration)
	if err != nil {
		return err
	}
	got.expect(sent)
	if err := got.wait(ctx, 5*time.Minute); err != nil {
		return err
	}
	var sorted []time.Duration
	h.Set(func(*hectest.Receiver) { sorted, err = measure.SortDurations(lags), badTime })
	if err != nil {
		return err
	}
	p99 := measure.Percentile(sorted, 0.99)
	note := fmt.Sprintf("%d events offered over %.0fs, %d calls refused as overloaded", sent, duration.Seconds(), refused)
	rep.Add("log stream at 5,000/s ingest: delivery lag p50", measure.Percentile(sorted, 0.50), "ms", "recorded to arrival at the collector")
	rep.Check("log stream at 5,000/s ingest: delivery lag p99", p99, "ms", note, "< 2 s", p99 < 2000)
	if err := b.deleteStream(ctx, org, id); err != nil {
		return err
	}
	return b.waitDeliverers(ctx, 0, time.Minute)
}

// Idle measures auditd's process CPU with no stream, then with
// idleStreams configured streams (across orgs) that have nothing to
// deliver: the cost of keeping them ready.
func (b *Bench) Idle(ctx context.Context, rep *measure.Report) error {
	// A few percent of a core is a small difference between two
	// readings: at least 30 s each, or the noise of one checkpoint round
	// or one scheduler hiccup decides it.
	window := max(time.Duration(float64(30*time.Second)*b.Scale), 30*time.Second)
	if err := b.waitDeliverers(ctx, 0, time.Minute); err != nil {
		return err
	}
	// The baseline is auditd at rest: not still projecting what earlier
	// steps recorded.
	if err := b.WaitQueryable(ctx); err != nil {
		return err
	}
	busy := func() (float64, float64) {
		cpu := measure.ReadCPU()
		time.Sleep(window)
		machine, process := cpu.Since()
		return 100 * process.Seconds() / window.Seconds(), 100 * machine.Seconds() / window.Seconds()
	}
	base, baseMachine := busy()
	h := hectest.New(hecToken)
	defer h.Close()
	began := time.Now()
	for o := range idleStreams / idlePerOrg {
		org := fmt.Sprintf("bench-idle-%03d", o)
		if err := b.Enable(ctx, org); err != nil {
			return err
		}
		for i := range idlePerOrg {
			if _, err := b.createHECStream(ctx, org, fmt.Sprintf("idle-%d", i), h, nil); err != nil {
				return err
			}
		}
	}
	created := time.Since(began)
	if err := b.waitDeliverers(ctx, idleStreams, 5*time.Minute); err != nil {
		return err
	}
	// Let each deliverer pass over its org's AUDIT_LOG_STREAM_CREATED
	// events and settle.
	time.Sleep(10 * time.Second)
	idle, idleMachine := busy()
	if n := len(h.Received()); n != 0 {
		return errors.New("an idle stream delivered events")
	}
	cost := idle - base
	rep.Add("log streams: auditd process CPU, no stream", base, "% core", fmt.Sprintf("over %.0fs; whole machine %.1f%% of a core", window.Seconds(), baseMachine))
	rep.Add("log streams: auditd process CPU, 1,000 idle streams", idle, "% core", fmt.Sprintf("over %.0fs; whole machine %.1f%% of a core; created in %.0fs", window.Seconds(), idleMachine, created.Seconds()))
	rep.Check("log streams: idle cost of 1,000 streams", cost, "% core", "the difference, auditd and embedded NATS", "< 2% of one core", cost < 2)
	return nil
}

package main

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
)

// hecToken is the bench collector's HEC token.
const hecToken = "0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"

// idleStreams is how many configured streams the idle figure holds, 10
// (streamstore.MaxPerOrg) in each of a hundred orgs, at any scale.
const idleStreams, idlePerOrg = 1000, 10

const createStream = `mutation($in: CreateLogStreamInput!) { createLogStream(input: $in) { id } }`

// createHECStream makes org's stream to h's collector, without indexer
// acknowledgement, delivering only the bench's USER_UPDATED events (not
// the log's own AUDIT_LOG_STREAM_* ones), from start, or from now if nil.
func (b *bench) createHECStream(ctx context.Context, org, name string, h *hectest.Receiver, start *time.Time) (string, error) {
	in := map[string]any{
		"name":        name,
		"destination": map[string]any{"splunk": map[string]any{"url": h.URL, "token": hecToken, "sourcetype": "auditlog:event"}},
		"filter":      map[string]any{"types": []string{"USER_UPDATED"}},
	}
	if start != nil {
		in["startAt"] = start.UTC().Format(time.RFC3339Nano)
	}
	data, err := b.gql(ctx, b.admin(org), createStream, map[string]any{"in": in})
	if err != nil {
		return "", fmt.Errorf("create log stream: %w", err)
	}
	var out struct{ CreateLogStream struct{ ID string } }
	if err := json.Unmarshal(data, &out); err != nil {
		return "", err
	}
	return out.CreateLogStream.ID, nil
}

func (b *bench) deleteStream(ctx context.Context, org, id string) error {
	_, err := b.gql(ctx, b.admin(org), `mutation($id: ID!) { deleteLogStream(id: $id) { id } }`, map[string]any{"id": id})
	return err
}

// waitDeliverers waits until auditd runs n deliverers.
func (b *bench) waitDeliverers(ctx context.Context, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for b.srv.LogStreamDeliverers() != n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d log stream deliverers after %s, want %d", b.srv.LogStreamDeliverers(), within, n)
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

// streamThroughput preloads events into an org through the API, waits
// until they are projected (so the deliverer finds every leaf index, as
// it does for a stream that catches up), then creates a stream to a
// Splunk HEC starting before them and times until the collector has
// them all: delivery's throughput, batched, for one stream.
func (b *bench) streamThroughput(ctx context.Context, rep *measure.Report) error {
	n := max(int(200_000*b.scale), 20_000)
	const org = "bench-stream-rate"
	if err := b.enable(ctx, org); err != nil {
		return err
	}
	// The start is after every event before the org's (the region's stream
	// may begin with them) and before the org's, on a whole second as the
	// API may keep it.
	start := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(start))
	if err := b.preload(ctx, org, n); err != nil {
		return err
	}
	if err := b.waitQueryable(ctx); err != nil {
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

// preload records n events of org through the API, as the ingest step's
// clients do.
func (b *bench) preload(ctx context.Context, org string, n int) error {
	token := b.service()
	send := func(ctx context.Context, evs []domain.Event) (int, error) {
		data, err := b.gql(ctx, token, recordMutation, inputs(evs))
		if err != nil {
			return 0, err
		}
		return countRecorded(data, "RECORDED"), nil
	}
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				k := min(left.Add(-batchSize)+batchSize, batchSize)
				if k <= 0 {
					return
				}
				recorded, _, err := sendRetrying(ctx, events(org, int(k)), send)
				if err == nil && recorded != int(k) {
					err = fmt.Errorf("preload: %d of %d events recorded", recorded, k)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// streamLag offers 5,000 events a second through the API to an org with
// a stream to a Splunk HEC and measures each event's delay from being
// recorded (its recordedAt, auditd's clock, which is this process's) to
// its arrival at the collector.
func (b *bench) streamLag(ctx context.Context, rep *measure.Report) error {
	const (
		org  = "bench-stream-lag"
		rate = 5000
	)
	if err := b.enable(ctx, org); err != nil {
		return err
	}
	var (
		lags    []time.Duration
		badTime error
	)
	h := hectest.New(hecToken)
	defer h.Close()
	duration := max(time.Duration(float64(20*time.Second)*b.scale), 5*time.Second)
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
	sent, refused, err := b.offer(ctx, org, rate, duration)
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

// streamIdle measures auditd's process CPU with no stream, then with
// idleStreams configured streams (across orgs) that have nothing to
// deliver: the cost of keeping them ready.
func (b *bench) streamIdle(ctx context.Context, rep *measure.Report) error {
	window := max(time.Duration(float64(30*time.Second)*b.scale), 10*time.Second)
	if err := b.waitDeliverers(ctx, 0, time.Minute); err != nil {
		return err
	}
	// The baseline is auditd at rest: not still projecting what earlier
	// steps recorded.
	if err := b.waitQueryable(ctx); err != nil {
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
		if err := b.enable(ctx, org); err != nil {
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

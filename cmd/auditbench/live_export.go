package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/measure"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/natsx"
)

// exportRate seeds one organization with rows events and exports them all to
// CSV through the API, timing the job and the process's peak RSS.
func (b *bench) exportRate(ctx context.Context, rep *measure.Report) error {
	const org = "export-000"
	if err := b.enable(ctx, org); err != nil {
		return err
	}
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	if err := synthetic.Seed(ctx, b.srv.EventStore(domain.RegionUS), b.rows, 1, "export-"); err != nil {
		return err
	}
	// Give back what earlier steps left, so the figures are the export's.
	debug.FreeOSMemory()
	rssBefore := procStatus("VmRSS")
	// Resetting the high-water mark makes VmHWM the peak of the export alone.
	hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	stopHeap := make(chan struct{})
	heap := peakLiveHeap(stopHeap)

	token := b.admin(org)
	job, wall, err := b.export(ctx, token, "CSV", map[string]any{"to": time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	close(stopHeap)
	h := <-heap
	run := job.runTime()
	rep.Add("export: rows (CSV)", float64(job.RowCount), "rows", fmt.Sprintf("%.0f MB file", job.SizeBytes/1e6))
	rep.Add("export: rate while running", float64(job.RowCount)/run.Seconds(), "rows/s", fmt.Sprintf("%.1fs run", run.Seconds()))
	rep.Add("export: rate, request to SUCCEEDED", float64(job.RowCount)/wall.Seconds(), "rows/s", "")
	note := "whole process: auditd, embedded NATS, bench client"
	if !hwmReset {
		note += "; peak since process start"
	}
	peak := procStatus("VmHWM")
	rep.Add("export: RSS before", float64(rssBefore)/1024, "MiB", "")
	rep.Add("export: peak RSS during export", float64(peak)/1024, "MiB", note)
	rep.Add("export: RSS growth at peak", float64(peak-rssBefore)/1024, "MiB", "includes garbage awaiting collection (GOGC) and NATS file-store caches")
	if h.cycles == 0 { // nothing was measured; a zero would read as a result
		fmt.Println("export: no collection ran during the export, so the live heap was not read")
	} else {
		rep.Add("export: live heap growth at peak", float64(h.growth)/(1<<20), "MiB", fmt.Sprintf("heap retained after each GC; %d GCs during the export", h.cycles))
	}
	return nil
}

// exportJob is what the bench reads of a finished export.
type exportJob struct {
	Status     string
	RowCount   int
	SizeBytes  float64
	StartedAt  time.Time
	FinishedAt *time.Time
	Error      *string
}

// runTime is how long the job ran on its worker.
func (j exportJob) runTime() time.Duration { return j.FinishedAt.Sub(j.StartedAt) }

// export starts an export in format with filter f and waits until it
// SUCCEEDED, returning the job and the time from request to SUCCEEDED.
func (b *bench) export(ctx context.Context, token, format string, f map[string]any) (exportJob, time.Duration, error) {
	var job exportJob
	start := time.Now()
	data, err := b.gql(ctx, token, `mutation($f: AuditEventFilter, $fmt: ExportFormat) { startAuditExport(filter: $f, format: $fmt) { id } }`,
		map[string]any{"f": f, "fmt": format})
	if err != nil {
		return job, 0, err
	}
	var started struct{ StartAuditExport struct{ ID string } }
	_ = json.Unmarshal(data, &started)
	for {
		data, err := b.gql(ctx, token, `query($id: ID!) { exportJob(id: $id) { status rowCount sizeBytes startedAt finishedAt error } }`,
			map[string]any{"id": started.StartAuditExport.ID})
		if err != nil {
			return job, 0, err
		}
		var out struct{ ExportJob json.RawMessage }
		_ = json.Unmarshal(data, &out)
		_ = json.Unmarshal(out.ExportJob, &job)
		if domain.ExportStatus(job.Status).Final() {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return job, 0, fmt.Errorf("%s export still %s after 10 minutes", format, job.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if job.Status != "SUCCEEDED" || job.FinishedAt == nil {
		return job, 0, fmt.Errorf("%s export ended %s: %v", format, job.Status, job.Error)
	}
	return job, time.Since(start), nil
}

// exportFormats exports the same events, projected through the log with
// their records and hash tree, to CSV and to proved NDJSON in one run, so
// the two rates compare, and times the NDJSON encoder alone over them. It publishes rows/2 events (at least 10,000)
// straight to the region's stream and waits until they are projected.
func (b *bench) exportFormats(ctx context.Context, rep *measure.Report) error {
	const org = "export-nd"
	if err := b.enable(ctx, org); err != nil {
		return err
	}
	n := max(b.rows/2, 10_000)
	js := b.srv.JetStream()
	evs := events(org, n)
	for i := range evs {
		data, err := json.Marshal(&evs[i])
		if err != nil {
			return err
		}
		if _, err := js.PublishAsync(natsx.AuditSubject(domain.RegionUS, &evs[i]), data, jetstream.WithMsgID(org+":"+evs[i].ID)); err != nil {
			return err
		}
		if (i+1)%5000 == 0 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	// Statistics, as synthetic.Seed leaves them and autovacuum soon would:
	// without them the planner takes the just-filled partition for empty,
	// and sorts the export's rows on disk instead of reading them in
	// order from the primary key, which measures the planner, not exports.
	if err := b.analyze(ctx); err != nil {
		return err
	}
	token := b.admin(org)
	// The published events only, not the exports' own AUDIT_LOG_EXPORTED.
	f := map[string]any{"types": []string{"USER_UPDATED"}}
	for _, format := range []string{"CSV", "NDJSON"} {
		job, _, err := b.export(ctx, token, format, f)
		if err != nil {
			return err
		}
		if job.RowCount != n {
			return fmt.Errorf("%s export has %d rows, want %d", format, job.RowCount, n)
		}
		rep.Add("export: rate while running, "+format+", projected events", float64(job.RowCount)/job.runTime().Seconds(), "rows/s",
			fmt.Sprintf("%d rows, %.0f MB file, %.2fs run", job.RowCount, job.SizeBytes/1e6, job.runTime().Seconds()))
	}
	rate, err := encoderRate(evs)
	if err != nil {
		return err
	}
	rep.Add("export: NDJSON encoder alone, same events", rate, "rows/s", "lines, range proof and digest, tree in memory; best of 3")
	return nil
}

// heapPeak is the live heap's highest reading above its starting one, and
// how many collections it was read after.
type heapPeak struct {
	growth uint64
	cycles uint64
}

// peakLiveHeap samples the live heap as of the last collection until stop is
// closed. Unlike RSS it does not count garbage not yet collected, so it shows
// whether the export holds on to what it reads.
func peakLiveHeap(stop <-chan struct{}) <-chan heapPeak {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	read := func() (live, cycles uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64()
	}
	base, firstCycle := read()
	out := make(chan heapPeak, 1)
	go func() {
		peak, cycles := base, firstCycle
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				out <- heapPeak{growth: peak - base, cycles: cycles - firstCycle}
				return
			case <-t.C:
				var live uint64
				live, cycles = read()
				peak = max(peak, live)
			}
		}
	}()
	return out
}

// procStatus reads a kB field of /proc/self/status, 0 when unavailable.
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// Live benchmark shape: subscribers spread over organizations, events spread
// evenly over the same organizations, so each event reaches
// liveSubscribers/liveOrgs subscribers.
const (
	liveSubscribers = 1000
	liveOrgs        = 50
	liveRate        = 1000 // events per second, all organizations together
)

// liveDelay connects liveSubscribers websocket subscribers and records
// liveRate events per second, measuring the delay from the event's
// recordedAt (set when ingest accepts it) to its arrival at each subscriber.
func (b *bench) liveDelay(ctx context.Context, rep *measure.Report) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	orgs := make([]string, liveOrgs)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("live-%03d", i)
		if err := b.enable(ctx, orgs[i]); err != nil {
			return err
		}
	}
	if err := b.waitQueryable(ctx); err != nil { // the opt-in events are out of the way
		return err
	}
	var (
		mu     sync.Mutex
		delays []time.Duration
		wg     sync.WaitGroup
		errs   atomic.Int64
	)
	wsURL := strings.Replace(b.url, "http", "ws", 1) + "/query"
	for i := range liveSubscribers {
		org := orgs[i%liveOrgs]
		c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		init, _ := json.Marshal(map[string]string{"Authorization": "Bearer " + b.admin(org)})
		sub, _ := json.Marshal(map[string]any{
			"query": `subscription { auditEventRecorded(filter: {types: [USER_UPDATED]}) { id recordedAt } }`,
		})
		if err := wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": json.RawMessage(init)}); err != nil {
			return err
		}
		if err := wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": json.RawMessage(sub)}); err != nil {
			return err
		}
		wg.Go(func() {
			for {
				var m struct {
					Type    string
					Payload struct {
						Data struct {
							AuditEventRecorded struct{ RecordedAt time.Time }
						}
					}
				}
				if err := wsjson.Read(ctx, c, &m); err != nil {
					return
				}
				switch m.Type {
				case "next":
					d := time.Since(m.Payload.Data.AuditEventRecorded.RecordedAt)
					mu.Lock()
					delays = append(delays, d)
					mu.Unlock()
				case "ping":
					_ = wsjson.Write(ctx, c, map[string]string{"type": "pong"})
				case "error":
					errs.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for b.srv.Feed().Active() < liveSubscribers {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d subscriptions active after a minute", b.srv.Feed().Active(), liveSubscribers)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Record liveRate events a second in batches of 10, one org per batch.
	duration := time.Duration(float64(30*time.Second) * b.scale)
	duration = max(duration, 5*time.Second)
	const perBatch = 10
	tick := time.NewTicker(time.Second / (liveRate / perBatch))
	defer tick.Stop()
	service := b.service()
	sent := 0
	for end, n := time.Now().Add(duration), 0; time.Now().Before(end); n++ {
		<-tick.C
		if _, err := b.gql(ctx, service, recordMutation, inputs(events(orgs[n%liveOrgs], perBatch))); err != nil {
			return err
		}
		sent += perBatch
	}
	want := sent * liveSubscribers / liveOrgs
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(delays)
		mu.Unlock()
		if n >= want {
			break
		}
	}
	cancel()
	wg.Wait()
	lat := measure.SortDurations(delays)
	rep.Add("live: deliveries", float64(len(lat)), "msgs", fmt.Sprintf("of %d expected; %d subscribers over %d orgs, %d events/s for %.0fs",
		want, liveSubscribers, liveOrgs, liveRate, duration.Seconds()))
	rep.Add("live: dropped subscriptions", float64(errs.Load()), "subs", "")
	b.report(rep, "live: append to delivery", lat)
	return nil
}

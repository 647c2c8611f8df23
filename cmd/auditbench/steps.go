package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/measure"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/server"
)

const (
	batchSize = 500
	clients   = 4
)

type bench struct {
	scale     float64
	ingestFor time.Duration
	rows      int
	orgs      int
	queries   int
	srv       *server.Server
	url       string
	secret    []byte
	natsUser  natsx.User
	dbURL     string
	// pgAdmin reaches the Postgres that holds the scratch databases, and
	// dedupe is the streams' de-duplication window: what start needs to
	// start another auditd.
	pgAdmin string
	dedupe  time.Duration
	// variant is appended to the names of the ingest figures of an auditd
	// started otherwise (", integrity off").
	variant string
	// copyRate and publishRate are the Postgres COPY and JetStream publish
	// ceilings measured in this run (rows/s, msg/s), 0 until measured: each
	// throughput is reported beside them.
	copyRate, publishRate float64
}

func (b *bench) token(c auth.Claims) string {
	s, err := auth.Mint(b.secret, c, 24*time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	return s
}

func (b *bench) admin(org string) string {
	return b.token(auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:bench"}, Org: org, Kind: "user", Roles: []string{"ADMIN"}})
}

func (b *bench) service() string {
	return b.token(auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "service:bench"}, Kind: "service", Sources: []string{"PLATFORM"}})
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// gql posts one GraphQL request and returns its data.
func (b *bench) gql(ctx context.Context, token, query string, vars map[string]any) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Data   json.RawMessage
		Errors []struct {
			Message    string
			Extensions struct {
				Code       string
				RetryAfter float64
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if len(out.Errors) > 0 {
		if e := out.Errors[0]; e.Extensions.RetryAfter > 0 {
			return nil, &refusal{after: time.Duration(e.Extensions.RetryAfter * float64(time.Second))}
		}
		return nil, fmt.Errorf("graphql: %s", out.Errors[0].Message)
	}
	return out.Data, nil
}

// refusal is an ingest call the log refused as overloaded, with how long
// it asked the client to wait before sending it again.
type refusal struct{ after time.Duration }

func (r *refusal) Error() string {
	return fmt.Sprintf("refused as overloaded; retry after %s", r.after)
}

// sendRetrying sends evs as a real client does: a refusal with a retry
// hint is waited out and the same events (the same ids) sent again. It
// returns the events recorded and how many refusals it met.
func sendRetrying(ctx context.Context, evs []domain.Event, send func(context.Context, []domain.Event) (int, error)) (n, refusals int, err error) {
	for {
		n, err := send(ctx, evs)
		var r *refusal
		if !errors.As(err, &r) {
			return n, refusals, err
		}
		refusals++
		select {
		case <-time.After(r.after):
		case <-ctx.Done():
			return 0, refusals, ctx.Err()
		}
	}
}

func (b *bench) enable(ctx context.Context, org string) error {
	_, err := b.gql(ctx, b.admin(org), `mutation { enableAuditLog(region: US) { enabled } }`, nil)
	return err
}

func events(org string, n int) []domain.Event {
	at := time.Now().Add(-time.Minute).UTC()
	out := make([]domain.Event, n)
	for i := range out {
		out[i] = domain.Event{
			ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: "USER_UPDATED", OccurredAt: at,
			RecordedAt: at, Actor: domain.Actor{Kind: domain.ActorUser, ID: fmt.Sprintf("u%d", i%1000), Name: "Bench User", Email: "bench@example.com"},
			Target:  &domain.Target{Kind: "USER", ID: fmt.Sprintf("t%d", i)},
			Details: json.RawMessage(fmt.Sprintf(`{"userId":"t%d","changedFields":["email"]}`, i)),
		}
	}
	return out
}

// ceilings measures raw JetStream async publish and raw Postgres COPY into an
// events table with one btree and one trigram index, with the same events.
func (b *bench) ceilings(ctx context.Context, rep *measure.Report) error {
	n := int(200_000 * b.scale)
	evs := events("ceiling", n)
	rate, err := b.publishCeiling(ctx, evs)
	if err != nil {
		return err
	}
	rep.Add("ceiling: JetStream async publish", rate, "msg/s", fmt.Sprintf("%d msgs, file storage", n))
	if rate, err = b.copyCeiling(ctx, evs); err != nil {
		return err
	}
	rep.Add("ceiling: Postgres COPY (btree + trigram)", rate, "rows/s", fmt.Sprintf("%d rows, batches of 1000", n))
	return nil
}

// publishCeiling measures how fast JetStream stores evs' messages
// published asynchronously to a stream of its own: what accepting could
// reach if ingest did nothing else. It keeps the result for the ratios.
func (b *bench) publishCeiling(ctx context.Context, evs []domain.Event) (float64, error) {
	payloads := make([][]byte, len(evs))
	for i := range evs {
		payloads[i], _ = json.Marshal(&evs[i])
	}
	// auditd's own in-process connection: the embedded server has no
	// listener with JetStream rights.
	js := b.srv.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, err
	}
	defer js.DeleteStream(ctx, "BENCH_RAW")
	start := time.Now()
	for i, p := range payloads {
		if _, err := js.PublishAsync("bench.raw", p, jetstream.WithMsgID(evs[i].ID), jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, err
		}
	}
	<-js.PublishAsyncComplete()
	b.publishRate = float64(len(evs)) / time.Since(start).Seconds()
	return b.publishRate, nil
}

// copyCeiling measures how fast Postgres takes evs' rows by COPY into a
// table with the events' btree and trigram indexes: what projection could
// reach if it did nothing else. It keeps the result for the ratios.
func (b *bench) copyCeiling(ctx context.Context, evs []domain.Event) (float64, error) {
	n := len(evs)
	pool := b.srv.EventStore(domain.RegionUS).Pool()
	_, err := pool.Exec(ctx, `CREATE TABLE bench_copy (LIKE audit_us.events);
		CREATE INDEX ON bench_copy (org_id, occurred_at, id);
		CREATE INDEX ON bench_copy USING gin (search_text gin_trgm_ops)`)
	if err != nil {
		return 0, err
	}
	defer pool.Exec(ctx, "DROP TABLE bench_copy")
	rows := make([][]any, n)
	for i := range evs {
		rows[i] = readmodel.EventRow(&evs[i], uint64(i+1))
	}
	start := time.Now()
	for off := 0; off < n; off += 1000 {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, readmodel.EventColumns, pgx.CopyFromRows(rows[off:min(n, off+1000)])); err != nil {
			return 0, err
		}
	}
	b.copyRate = float64(n) / time.Since(start).Seconds()
	return b.copyRate, nil
}

// lagSampler records, every few milliseconds, the stream head and when the
// read model reached it: the delay from append to queryable.
type lagSampler struct {
	lags []time.Duration
}

func (b *bench) sampleLag(ctx context.Context, l *lagSampler) {
	store := b.srv.EventStore(domain.RegionUS)
	stream, err := b.srv.JetStream().Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		return
	}
	type mark struct {
		at  time.Time
		seq uint64
	}
	var pending []mark
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		info, err := stream.Info(ctx)
		if err != nil {
			continue
		}
		now := time.Now()
		if len(pending) == 0 || info.State.LastSeq > pending[len(pending)-1].seq {
			pending = append(pending, mark{now, info.State.LastSeq})
		}
		cp, err := store.Position(ctx)
		if err != nil {
			continue
		}
		for len(pending) > 0 && pending[0].seq <= cp {
			l.lags = append(l.lags, now.Sub(pending[0].at))
			pending = pending[1:]
		}
	}
}

// waitQueryable waits until the US read model holds the whole US stream.
func (b *bench) waitQueryable(ctx context.Context) error {
	stream, err := b.srv.JetStream().Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		cp, err := b.srv.EventStore(domain.RegionUS).Position(ctx)
		if err != nil {
			return err
		}
		if cp >= info.State.LastSeq {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("read model did not catch up within 5 minutes")
}

// ingest runs clients that send batches through send until ingestFor ends,
// then waits until everything is queryable.
func (b *bench) ingest(ctx context.Context, rep *measure.Report, label, org string, send func(context.Context, []domain.Event) (int, error)) error {
	if b.copyRate == 0 || b.publishRate == 0 { // -only ingest: measure the ceilings in this run too, before the load
		ceiling := events("ceiling", int(200_000*b.scale))
		if _, err := b.publishCeiling(ctx, ceiling); err != nil {
			return err
		}
		if _, err := b.copyCeiling(ctx, ceiling); err != nil {
			return err
		}
	}
	if err := b.enable(ctx, org); err != nil {
		return err
	}
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	lctx, stopLag := context.WithCancel(ctx)
	var lag lagSampler
	lagDone := make(chan struct{})
	go func() { b.sampleLag(lctx, &lag); close(lagDone) }()

	var accepted, refused atomic.Int64
	var firstErr error
	var once sync.Once
	cpu := measure.ReadCPU()
	start := time.Now()
	deadline := start.Add(b.ingestFor)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				n, r, err := sendRetrying(ctx, events(org, batchSize), send)
				refused.Add(int64(r))
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				accepted.Add(int64(n))
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)
	if firstErr != nil {
		stopLag()
		return firstErr
	}
	if err := b.waitQueryable(ctx); err != nil {
		stopLag()
		return err
	}
	queryable := time.Since(start)
	n := float64(accepted.Load())
	machineCPU, processCPU := cpu.PerEvent(n)
	time.Sleep(20 * time.Millisecond)
	stopLag()
	<-lagDone
	lags := measure.SortDurations(lag.lags)
	label += b.variant
	acceptRate, queryRate := n/sent.Seconds(), n/queryable.Seconds()
	rep.Add("ingest "+label+": accepted", acceptRate, "events/s", fmt.Sprintf("%d events, %d clients x %d/batch", int(n), clients, batchSize))
	rep.Add("ingest "+label+": accepted, of the publish ceiling", 100*acceptRate/b.publishRate, "%", fmt.Sprintf("JetStream ceiling %.0f msg/s in this run", b.publishRate))
	rep.Add("ingest "+label+": end-to-end until queryable", queryRate, "events/s", fmt.Sprintf("over %.0fs", queryable.Seconds()))
	rep.Add("ingest "+label+": until queryable, of the COPY ceiling", 100*queryRate/b.copyRate, "%", fmt.Sprintf("ceiling %.0f rows/s in this run", b.copyRate))
	rep.Add("ingest "+label+": calls refused as overloaded", float64(refused.Load()), "calls", "each waited out and sent again with the same ids")
	rep.Add("ingest "+label+": projection lag p50", measure.Percentile(lags, 0.50), "ms", "")
	rep.Add("ingest "+label+": projection lag p99", measure.Percentile(lags, 0.99), "ms", "")
	rep.Add("ingest "+label+": CPU per event, whole machine", machineCPU, "µs", "accept to queryable; 2 cores give 100 µs per event at 20,000/s")
	rep.Add("ingest "+label+": CPU per event, auditd process", processCPU, "µs", "auditd, embedded NATS and the bench clients; the rest is mostly Postgres")
	return nil
}

const recordMutation = `mutation($e: [AuditEventInput!]!) { recordAuditEvents(events: $e) { results { status } } }`

// inputs are evs as recordAuditEvents variables.
func inputs(evs []domain.Event) map[string]any {
	in := make([]map[string]any, len(evs))
	for i, e := range evs {
		in[i] = map[string]any{"id": e.ID, "orgId": e.OrgID, "type": e.Type, "source": e.Source,
			"occurredAt": e.OccurredAt, "actor": e.Actor, "target": e.Target, "details": e.Details}
	}
	return map[string]any{"e": in}
}

func (b *bench) ingestAPI(ctx context.Context, rep *measure.Report) error {
	token := b.service()
	return b.ingest(ctx, rep, "API", "bench-api", func(ctx context.Context, evs []domain.Event) (int, error) {
		data, err := b.gql(ctx, token, recordMutation, inputs(evs))
		if err != nil {
			return 0, err
		}
		return countRecorded(data, "RECORDED"), nil
	})
}

func countRecorded(data []byte, status string) int {
	return bytes.Count(data, []byte(`"`+status+`"`))
}

// ingestSteady returns a step that offers rate events a second through the
// API (offer), and samples the projection lag meanwhile: at a
// load the pipeline sustains, the lag is its own delay, not a backlog.
func (b *bench) ingestSteady(rate int) func(context.Context, *measure.Report) error {
	return func(ctx context.Context, rep *measure.Report) error { return b.steady(ctx, rep, rate) }
}

func (b *bench) steady(ctx context.Context, rep *measure.Report, rate int) error {
	org := fmt.Sprintf("bench-steady-%d", rate)
	if err := b.enable(ctx, org); err != nil {
		return err
	}
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	lctx, stopLag := context.WithCancel(ctx)
	var lag lagSampler
	lagDone := make(chan struct{})
	go func() { b.sampleLag(lctx, &lag); close(lagDone) }()
	duration := max(time.Duration(float64(20*time.Second)*b.scale), 5*time.Second)
	_, refused, failed := b.offer(ctx, org, rate, duration)
	err := b.waitQueryable(ctx)
	stopLag()
	<-lagDone
	if err != nil {
		return err
	}
	if failed != nil {
		return failed
	}
	lags := measure.SortDurations(lag.lags)
	name := fmt.Sprintf("ingest API at %d/s: projection lag", rate)
	rep.Add(name+" p50", measure.Percentile(lags, 0.50), "ms", fmt.Sprintf("offered for %.0fs", duration.Seconds()))
	rep.Add(name+" p99", measure.Percentile(lags, 0.99), "ms", "")
	rep.Add(fmt.Sprintf("ingest API at %d/s: calls refused as overloaded", rate), float64(refused), "calls", "each waited out and sent again")
	return nil
}

// offer sends rate events a second of org through the API for duration,
// in batches of 100 each in its own request, so that a slow request does
// not lower the offered rate. It returns how many events it sent and how
// many calls were refused as overloaded (each waited out and sent again).
func (b *bench) offer(ctx context.Context, org string, rate int, duration time.Duration) (sent int, refused int64, err error) {
	const perBatch = 100
	token := b.service()
	tick := time.NewTicker(time.Second / time.Duration(rate/perBatch))
	defer tick.Stop()
	var wg sync.WaitGroup
	var failed atomic.Value
	var refusals atomic.Int64
	for end := time.Now().Add(duration); time.Now().Before(end); {
		<-tick.C
		sent += perBatch
		wg.Go(func() {
			send := func(ctx context.Context, evs []domain.Event) (int, error) {
				_, err := b.gql(ctx, token, recordMutation, inputs(evs))
				return 0, err
			}
			_, r, err := sendRetrying(ctx, events(org, perBatch), send)
			refusals.Add(int64(r))
			if err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return sent, refusals.Load(), err
	}
	return sent, refusals.Load(), nil
}

func (b *bench) ingestNATS(ctx context.Context, rep *measure.Report) error {
	nc, err := nats.Connect(b.srv.NATSIngestURL(), nats.UserInfo(b.natsUser.Name, b.natsUser.Password),
		nats.CustomInboxPrefix(natsx.IngestInboxPrefix(b.natsUser.Name)))
	if err != nil {
		return err
	}
	defer nc.Close()
	token := b.service()
	return b.ingest(ctx, rep, "NATS", "bench-nats", func(ctx context.Context, evs []domain.Event) (int, error) {
		req := nats.NewMsg(natsx.IngestSubjectPrefix + "PLATFORM")
		req.Header.Set(ingest.AuthorizationHeader, "Bearer "+token)
		req.Data, _ = json.Marshal(ingest.Request{Events: evs})
		msg, err := nc.RequestMsgWithContext(ctx, req)
		if err != nil {
			return 0, err
		}
		var reply ingest.Reply
		if err := json.Unmarshal(msg.Data, &reply); err != nil {
			return 0, err
		}
		if reply.Error != nil && reply.Error.RetryAfter > 0 {
			return 0, &refusal{after: time.Duration(reply.Error.RetryAfter * float64(time.Second))}
		}
		if reply.Error != nil {
			return 0, fmt.Errorf("nats ingest: %s", reply.Error.Message)
		}
		return countRecorded(msg.Data, string(ingest.Recorded)), nil
	})
}

// queryLatency seeds the read model with rows events across the orgs and
// times each main query path over HTTP, one request at a time.
func (b *bench) queryLatency(ctx context.Context, rep *measure.Report) error {
	for i := range b.orgs {
		if err := b.enable(ctx, fmt.Sprintf("org-%03d", i)); err != nil {
			return err
		}
	}
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := synthetic.Seed(ctx, b.srv.EventStore(domain.RegionUS), b.rows, b.orgs, "org-"); err != nil {
		return err
	}
	rep.Add("query: seeded rows (synthetic, via SQL)", float64(b.rows), "rows", fmt.Sprintf("%d orgs, %.0fs", b.orgs, time.Since(start).Seconds()))

	token := b.admin("org-007")
	const fields = `edges { cursor node { id type occurredAt source description actor { name email } } } pageInfo { endCursor }`
	page := func(filter map[string]any, after string) (json.RawMessage, error) {
		vars := map[string]any{"f": filter}
		if after != "" {
			vars["a"] = after
		}
		return b.gql(ctx, token, `query($f: AuditEventFilter, $a: String) { auditEvents(filter: $f, first: 50, after: $a) { `+fields+` } }`, vars)
	}
	// Walk to page 200 for the deep-page cursor.
	cursor := ""
	var firstID string
	for i := 0; i < 199; i++ {
		data, err := page(nil, cursor)
		if err != nil {
			return err
		}
		var out struct {
			AuditEvents struct {
				Edges    []struct{ Node struct{ ID string } }
				PageInfo struct{ EndCursor *string }
			}
		}
		_ = json.Unmarshal(data, &out)
		if i == 0 && len(out.AuditEvents.Edges) > 0 {
			firstID = out.AuditEvents.Edges[0].Node.ID
		}
		if out.AuditEvents.PageInfo.EndCursor == nil {
			break
		}
		cursor = *out.AuditEvents.PageInfo.EndCursor
	}
	weekAgo, dayAgo := time.Now().Add(-7*24*time.Hour), time.Now().Add(-24*time.Hour)
	paths := []struct {
		name   string
		filter map[string]any
		after  string
	}{
		{"first page", nil, ""},
		{"deep page (page 200)", nil, cursor},
		{"type + date range", map[string]any{"types": []string{"USER_CREATED"}, "from": weekAgo, "to": dayAgo}, ""},
		{"source", map[string]any{"sources": []string{"INSIGHT_VM"}}, ""},
		{"actor", map[string]any{"actorId": "u57"}, ""},
		{"search common, 3+ chars", map[string]any{"search": "u57@example"}, ""},
		{"search rare, 3+ chars", map[string]any{"search": "target-4957"}, ""},
		{"search common, 2 chars", map[string]any{"search": "u5"}, ""},
		{"search absent, 2 chars", map[string]any{"search": "zq"}, ""},
	}
	for _, p := range paths {
		lat, err := b.time(func() error { _, err := page(p.filter, p.after); return err })
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b.report(rep, "query "+p.name, lat)
	}
	lat, err := b.time(func() error {
		_, err := b.gql(ctx, token, `query($id: ID!) { auditEvent(id: $id) { id details actor { name } } }`, map[string]any{"id": firstID})
		return err
	})
	if err != nil {
		return err
	}
	b.report(rep, "query auditEvent(id)", lat)
	return nil
}

func (b *bench) time(f func() error) ([]time.Duration, error) {
	if err := f(); err != nil { // warm-up
		return nil, err
	}
	lat := make([]time.Duration, 0, b.queries)
	for range b.queries {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	return measure.SortDurations(lat), nil
}

func (b *bench) report(rep *measure.Report, name string, lat []time.Duration) {
	rep.Add(name+" p50", measure.Percentile(lat, 0.50), "ms", "")
	rep.Add(name+" p95", measure.Percentile(lat, 0.95), "ms", "")
	rep.Add(name+" p99", measure.Percentile(lat, 0.99), "ms", "")
}

// treeCost reports the bytes on disk per event of the region's read model
// after the ingest steps, split into the event rows without their records
// (the events partitions' heap and TOAST, pg_relation_size, less the
// records), the leaves (the records, each event's message bytes kept in its
// row for proofs and proved exports: pg_column_size of events.record), the
// indexes (the events partitions' pg_indexes_size, and event_ids, which is
// there for de-duplication), and the tree (tree_tiles and tree_size). Rows
// seeded by SQL count in the rows and indexes, not in the tree; the tiles
// include the dead versions of partial tiles that autovacuum has not
// reclaimed yet.
func (b *bench) treeCost(ctx context.Context, rep *measure.Report) error {
	pool := b.srv.EventStore(domain.RegionUS).Pool()
	var events, leaves, heap, records, indexes, tree int64
	err := pool.QueryRow(ctx, `
		WITH parts AS (
			SELECT p.relid, c.reltoastrelid FROM pg_partition_tree('audit_us.events') p
			JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf)
		SELECT
			(SELECT count(*) FROM audit_us.events),
			(SELECT coalesce(sum(size), 0) FROM audit_us.tree_size),
			(SELECT coalesce(sum(pg_relation_size(relid) + CASE WHEN reltoastrelid = 0 THEN 0 ELSE pg_relation_size(reltoastrelid) END), 0) FROM parts),
			(SELECT coalesce(sum(pg_column_size(record)), 0) FROM audit_us.events WHERE record IS NOT NULL),
			(SELECT coalesce(sum(pg_indexes_size(relid)), 0) FROM parts) + pg_total_relation_size('audit_us.event_ids'),
			pg_total_relation_size('audit_us.tree_tiles') + pg_total_relation_size('audit_us.tree_size')`).
		Scan(&events, &leaves, &heap, &records, &indexes, &tree)
	if err != nil {
		return fmt.Errorf("tree cost: %w", err)
	}
	if events == 0 {
		return nil
	}
	per := func(bytes int64) float64 { return float64(bytes) / float64(events) }
	note := fmt.Sprintf("over %d event rows, %d leaves", events, leaves)
	rep.Add("storage"+b.variant+": event rows per event", per(heap-records), "bytes", note+"; records apart")
	rep.Add("storage"+b.variant+": indexes per event", per(indexes), "bytes", "the events' indexes and event_ids")
	rep.Add("storage"+b.variant+": tree per event", per(tree), "bytes", "tree_tiles and tree_size")
	rep.Add("storage"+b.variant+": leaves (records) per event", per(records), "bytes", "pg_column_size of events.record")
	rep.Add("storage"+b.variant+": total per event", per(heap+indexes+tree), "bytes", "")
	return nil
}

// withoutIntegrity measures ingest through the API and NATS again on an
// auditd of its own that keeps no records and builds no trees
// (Config.BenchWithoutIntegrity), against the ceilings of this run, and the
// bytes its read model takes: the difference to the figures above is what
// integrity costs. The first auditd stays up, idle, meanwhile.
func (b *bench) withoutIntegrity(ctx context.Context, rep *measure.Report) error {
	off := *b
	off.variant = ", integrity off"
	stop, err := off.start(ctx, b.pgAdmin, b.dedupe, true)
	if err != nil {
		return err
	}
	defer stop()
	for _, step := range []func(context.Context, *measure.Report) error{off.ingestAPI, off.ingestNATS, off.treeCost} {
		if err := step(ctx, rep); err != nil {
			return err
		}
	}
	return nil
}

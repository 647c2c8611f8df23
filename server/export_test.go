package server_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

const exportFields = `id status format rowCount totalRows progress sizeBytes attempts error downloadUrl expiresAt
  createdBy { email } filter { sources search to }`

type exportJob struct {
	ID, Status, Format string
	RowCount           int
	TotalRows          *int
	Progress           float64
	SizeBytes          *float64
	Attempts           int
	Error, DownloadURL *string
	ExpiresAt          *time.Time
	CreatedBy          struct{ Email string }
	Filter             struct {
		Sources []string
		Search  *string
		To      *time.Time
	}
}

func startExport(t *testing.T, env *testenv.Env, token string, filter map[string]any, format string) exportJob {
	t.Helper()
	r := env.Do(t, token, `mutation($f: AuditEventFilter, $fmt: ExportFormat) {
	  startAuditExport(filter: $f, format: $fmt) { `+exportFields+` } }`, map[string]any{"f": filter, "fmt": format})
	var out struct{ StartAuditExport exportJob }
	r.MustData(t, &out)
	return out.StartAuditExport
}

func getExport(t *testing.T, env *testenv.Env, token, id string) *exportJob {
	t.Helper()
	r := env.Do(t, token, `query($id: ID!) { exportJob(id: $id) { `+exportFields+` } }`, map[string]any{"id": id})
	var out struct{ ExportJob *exportJob }
	r.MustData(t, &out)
	return out.ExportJob
}

// waitExport polls the job until it is final.
func waitExport(t *testing.T, env *testenv.Env, token, id string) exportJob {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j := getExport(t, env, token, id)
		if j == nil {
			t.Fatalf("export %s not found", id)
		}
		if domain.ExportStatus(j.Status).Final() {
			return *j
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %s after 60s", id, j.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// peakHeap samples the live heap (after a collection, so garbage between
// collections does not count) until stop is closed, and reports the highest
// reading above the starting one. It covers the whole process, the embedded
// NATS server's write buffers included.
func peakHeap(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	live := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	peak := base
	go func() {
		t := time.NewTicker(25 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				out <- peak - base
				return
			case <-t.C:
				peak = max(peak, live())
			}
		}
	}()
	return out
}

type exportedNode struct {
	ID, Type, Category, Source, Description string
	OccurredAt                              time.Time
	Actor                                   struct{ ID, Name, Email string }
	Target                                  *struct{ Kind, ID, Name string }
	IPAddress                               *string
	Details                                 json.RawMessage
	// Proof is a line of a proved file's range proof, Manifest its last
	// line.
	Proof    []string
	Manifest string
}

// queryAll pages through auditEvents with filter, 400 at a time (the
// most the complexity limit allows with these fields).
func queryAll(t *testing.T, env *testenv.Env, token string, filter map[string]any) []exportedNode {
	t.Helper()
	var all []exportedNode
	var after *string
	for {
		r := env.Do(t, token, `query($f: AuditEventFilter, $after: String) {
		  auditEvents(filter: $f, first: 400, after: $after) {
		    edges { node { id type category source description occurredAt ipAddress details
		      actor { id name email } target { kind id name } } }
		    pageInfo { hasNextPage endCursor } } }`, map[string]any{"f": filter, "after": after})
		var out struct {
			AuditEvents struct {
				Edges    []struct{ Node exportedNode }
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		r.MustData(t, &out)
		for _, e := range out.AuditEvents.Edges {
			all = append(all, e.Node)
		}
		if !out.AuditEvents.PageInfo.HasNextPage {
			return all
		}
		after = out.AuditEvents.PageInfo.EndCursor
	}
}

func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

func TestExport100kCSVEqualsTheQuery(t *testing.T) {
	const org, seeded = "org-000", 100_000
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, org)
	env.EnableOrg(t, org, domain.RegionUS)
	ctx := context.Background()
	if err := synthetic.Seed(ctx, env.EventStore(domain.RegionUS), seeded, 1, "org-"); err != nil {
		t.Fatal(err)
	}
	// Cells a spreadsheet would run as formulas.
	formulas := []map[string]any{
		ev(org, "USER_CREATED", "PLATFORM", time.Now().Add(-time.Minute),
			map[string]any{"userId": "@u1", "userEmail": "victim@example.com"},
			map[string]any{"actor": map[string]any{"kind": "USER", "id": "-1+1", "name": `=HYPERLINK("http://evil.example","x")`},
				"target": map[string]any{"kind": "USER", "id": "u1", "name": "+SUM(A1:A9)"}}),
		ev(org, "USER_LOGOUT", "PLATFORM", time.Now().Add(-time.Minute),
			map[string]any{"userId": "u2"},
			map[string]any{"actor": map[string]any{"kind": "USER", "id": "u2", "name": "@cmd", "email": "eve@example.com"}}),
	}
	mustRecord(t, env, formulas)
	env.WaitProjected(t)
	filter := map[string]any{"to": time.Now().UTC().Format(time.RFC3339Nano)}

	// Watch the job live while it runs, and the heap with it.
	w := connectWS(t, env, admin)
	stop := make(chan struct{})
	peak := peakHeap(stop)
	start := time.Now()
	job := startExport(t, env, admin, filter, "CSV")
	if job.Status != "QUEUED" || job.Format != "CSV" || job.CreatedBy.Email != "ada@org-000.example" || job.Filter.To == nil {
		t.Fatalf("started job: %+v", job)
	}
	w.subscribe("e", `subscription($id: ID!) { auditExportUpdated(id: $id) { status rowCount progress } }`,
		map[string]any{"id": job.ID})
	var progress []float64
	for {
		m := w.read()
		if m.Type != "next" {
			t.Fatalf("export updates: %s %s", m.Type, m.Payload)
		}
		var p struct {
			Data struct {
				AuditExportUpdated struct {
					Status   string
					RowCount int
					Progress float64
				}
			}
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		u := p.Data.AuditExportUpdated
		progress = append(progress, u.Progress)
		if u.Status == "SUCCEEDED" {
			break
		}
		if domain.ExportStatus(u.Status).Final() {
			t.Fatalf("export ended %s", u.Status)
		}
	}
	elapsed := time.Since(start)
	close(stop)
	grown := <-peak
	if m := w.read(); m.Type != "complete" {
		t.Fatalf("after SUCCEEDED: %s", m.Type)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] < progress[i-1] {
			t.Fatalf("progress went back: %v", progress)
		}
	}

	job = waitExport(t, env, admin, job.ID)
	want := queryAll(t, env, admin, filter)
	if len(want) != seeded+len(formulas)+1 { // + the opt-in
		t.Fatalf("query has %d events", len(want))
	}
	if job.RowCount != len(want) || job.TotalRows == nil || *job.TotalRows != len(want) || job.Progress != 1 ||
		job.DownloadURL == nil || job.ExpiresAt == nil || job.SizeBytes == nil {
		t.Fatalf("finished job: %+v", job)
	}
	t.Logf("exported %d rows (%.0f MB) in %s; live heap grew by at most %.1f MB",
		job.RowCount, *job.SizeBytes/1e6, elapsed.Round(time.Millisecond), float64(grown)/(1<<20))
	// The rows as Go values take over 70 MB: a run that held them would
	// pass this bound. What the heap does grow by is mostly the embedded
	// NATS server's 8 MB file-store block buffers, which share the process.
	if grown > 48<<20 {
		t.Errorf("live heap grew by %.1f MB during the export", float64(grown)/(1<<20))
	}

	// The signed link is absolute and works without a bearer token,
	// streamed as CSV.
	if !strings.HasPrefix(*job.DownloadURL, env.URL+"/exports/") {
		t.Fatalf("download URL %q is not absolute on %s", *job.DownloadURL, env.URL)
	}
	resp := get(t, *job.DownloadURL, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment; filename=audit-log-") ||
		!strings.HasSuffix(resp.Header.Get("Content-Disposition"), ".csv") {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	r := csv.NewReader(resp.Body)
	header, err := r.Read()
	if err != nil || !reflect.DeepEqual(header, export.CSVHeader) {
		t.Fatalf("header %q: %v", header, err)
	}
	defused := 0
	for i := 0; ; i++ {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			if i != len(want) {
				t.Fatalf("file has %d rows, query %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		n := want[i]
		target := ""
		if n.Target != nil {
			target = n.Target.Kind + ":" + n.Target.ID
			if n.Target.Name != "" {
				target += " (" + n.Target.Name + ")"
			}
		}
		ip := ""
		if n.IPAddress != nil {
			ip = *n.IPAddress
		}
		wantRow := []string{
			n.OccurredAt.UTC().Format(time.RFC3339Nano), n.Type, n.Description, n.Category, n.Source,
			export.Defuse(n.Actor.Name), export.Defuse(n.Actor.Email), export.Defuse(n.Actor.ID),
			export.Defuse(target), export.Defuse(ip), "", n.ID,
		}
		for c := range wantRow {
			if c == 10 {
				if !sameJSON(row[c], string(n.Details)) {
					t.Fatalf("row %d details %s, query %s", i, row[c], n.Details)
				}
				continue
			}
			if row[c] != wantRow[c] {
				t.Fatalf("row %d column %q: file %q, query %q", i, header[c], row[c], wantRow[c])
			}
		}
		for _, cell := range row {
			if len(cell) > 0 && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Fatalf("row %d has a live formula cell %q", i, cell)
			}
			if strings.HasPrefix(cell, "'") {
				defused++
			}
		}
	}
	// Two actor names and an actor id; the target cell starts with its
	// kind and the details with a brace, so neither needs defusing.
	if defused != 3 {
		t.Fatalf("%d defused cells, want 3", defused)
	}
}

func TestExportNDJSONWithFilter(t *testing.T) {
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, "acme")
	env.EnableOrg(t, "acme", domain.RegionEU)
	var events []map[string]any
	for i := range 30 {
		e := userCreated("acme", time.Now().Add(-time.Duration(i)*time.Minute), "u"+string(rune('a'+i%26))+"@example.com")
		if i%3 == 0 {
			e["source"] = "INSIGHT_IDR"
		}
		events = append(events, e)
	}
	mustRecord(t, env, events)
	env.WaitProjected(t)
	filter := map[string]any{"sources": []string{"INSIGHT_IDR"}, "search": "EXAMPLE.COM"}
	job := waitExport(t, env, admin, startExport(t, env, admin, filter, "NDJSON").ID)
	if job.Status != "SUCCEEDED" || job.RowCount != 10 || job.Format != "NDJSON" ||
		!reflect.DeepEqual(job.Filter.Sources, []string{"INSIGHT_IDR"}) || *job.Filter.Search != "EXAMPLE.COM" {
		t.Fatalf("job: %+v", job)
	}
	want := queryAll(t, env, admin, filter)
	resp := get(t, env.URL+"/exports/"+job.ID, admin) // bearer works too
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	// Lines are decoded from each event's record, which has the time to the
	// nanosecond; the read model keeps microseconds.
	dec := json.NewDecoder(resp.Body)
	var header struct{ Checkpoint string }
	if err := dec.Decode(&header); err != nil || header.Checkpoint == "" {
		t.Fatalf("no header with a checkpoint: %v", err)
	}
	for i := 0; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		var line exportedNode
		if err := json.Unmarshal(raw, &line); err != nil {
			t.Fatal(err)
		}
		if line.Proof != nil {
			// The range proof, after the event lines, before the manifest.
			if i != len(want) {
				t.Fatalf("a proof line after %d event lines, query %d", i, len(want))
			}
			i--
			continue
		}
		if line.Manifest != "" {
			if i != len(want) {
				t.Fatalf("%d lines, query %d", i, len(want))
			}
			if err := dec.Decode(&raw); !errors.Is(err, io.EOF) {
				t.Fatalf("a line after the manifest: %v", err)
			}
			break
		}
		if line.ID != want[i].ID || line.Source != "INSIGHT_IDR" || line.Category != "USER" || !line.OccurredAt.Truncate(time.Microsecond).Equal(want[i].OccurredAt) {
			t.Fatalf("line %d: %+v, query %+v", i, line, want[i])
		}
	}
}

func TestExportAccessAndErrors(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.ExportWorkers = -1 }) // jobs stay queued
	admin, user, other := testenv.AdminToken(t, "acme"), testenv.UserToken(t, "acme"), testenv.AdminToken(t, "globex")
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)

	var jobs []exportJob
	for range export.MaxActivePerOrg {
		jobs = append(jobs, startExport(t, env, admin, nil, "CSV"))
	}
	mutation := `mutation($f: AuditEventFilter, $fmt: ExportFormat) { startAuditExport(filter: $f, format: $fmt) { id } }`
	tests := []struct {
		name, token, query string
		vars               map[string]any
		code               string
	}{
		{"too many at once", admin, mutation, nil, "RATE_LIMITED"},
		{"user role", user, mutation, nil, "FORBIDDEN"},
		{"service", testenv.ServiceToken(t), mutation, nil, "FORBIDDEN"},
		{"no token", "", mutation, nil, "UNAUTHENTICATED"},
		{"never enabled", testenv.AdminToken(t, "initech"), mutation, nil, "AUDIT_LOG_DISABLED"},
		{"bad filter", other, mutation, map[string]any{"f": map[string]any{"search": strings.Repeat("x", 300)}}, "BAD_USER_INPUT"},
		{"bad format", other, mutation, map[string]any{"fmt": "XLSX"}, "GRAPHQL_VALIDATION_FAILED"},
		{"bad id", admin, `{ exportJob(id: "../x") { id } }`, nil, "BAD_USER_INPUT"},
		{"cancel another org's", other, `mutation($id: ID!) { cancelAuditExport(id: $id) { id } }`, map[string]any{"id": jobs[0].ID}, "NOT_FOUND"},
		{"watch another org's", other, `subscription($id: ID!) { auditExportUpdated(id: $id) { id } }`, map[string]any{"id": jobs[0].ID}, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.query, "subscription") {
				w := connectWS(t, env, tt.token)
				w.subscribe("x", tt.query, tt.vars)
				if code := w.errorCode("x"); code != tt.code {
					t.Fatalf("code %s, want %s", code, tt.code)
				}
				return
			}
			if code := env.Do(t, tt.token, tt.query, tt.vars).ErrorCode(t); code != tt.code {
				t.Fatalf("code %s, want %s", code, tt.code)
			}
		})
	}

	// Another organization sees nothing of acme's jobs.
	if j := getExport(t, env, other, jobs[0].ID); j != nil {
		t.Fatalf("globex sees acme's job: %+v", j)
	}
	var list struct{ AuditExports []exportJob }
	env.Do(t, other, `{ auditExports { id } }`, nil).MustData(t, &list)
	if len(list.AuditExports) != 0 {
		t.Fatalf("globex lists %+v", list.AuditExports)
	}
	env.Do(t, admin, `{ auditExports(first: 2) { id status } }`, nil).MustData(t, &list)
	if len(list.AuditExports) != 2 || list.AuditExports[0].ID != jobs[2].ID || list.AuditExports[1].ID != jobs[1].ID {
		t.Fatalf("acme lists %+v, want the newest two of %v", list.AuditExports, jobs)
	}

	// Cancelling frees a slot; cancelling twice is a conflict.
	cancel := `mutation($id: ID!) { cancelAuditExport(id: $id) { status } }`
	var out struct{ CancelAuditExport struct{ Status string } }
	env.Do(t, admin, cancel, map[string]any{"id": jobs[0].ID}).MustData(t, &out)
	if out.CancelAuditExport.Status != "CANCELLED" {
		t.Fatalf("cancel: %+v", out)
	}
	if code := env.Do(t, admin, cancel, map[string]any{"id": jobs[0].ID}).ErrorCode(t); code != "CONFLICT" {
		t.Fatalf("second cancel: %s", code)
	}
	startExport(t, env, admin, nil, "CSV")

	// A job that has no file cannot be downloaded, and only by its org's admins.
	for _, tt := range []struct {
		name, url, token string
		status           int
	}{
		{"not finished", "/exports/" + jobs[1].ID, admin, http.StatusConflict},
		{"user role", "/exports/" + jobs[1].ID, user, http.StatusForbidden},
		{"no token", "/exports/" + jobs[1].ID, "", http.StatusUnauthorized},
		{"other org", "/exports/" + jobs[1].ID, other, http.StatusNotFound},
		{"forged link", "/exports/" + jobs[1].ID + "?token=a.b.c", "", http.StatusUnauthorized},
		{"bearer as link", "/exports/" + jobs[1].ID + "?token=" + admin, "", http.StatusUnauthorized},
	} {
		resp := get(t, env.URL+tt.url, tt.token)
		var body struct{ Errors []testenv.GraphQLError }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != tt.status || len(body.Errors) != 1 || body.Errors[0].Code() == "" {
			t.Errorf("%s: %d %+v, want %d with a code", tt.name, resp.StatusCode, body, tt.status)
		}
	}

	// Every started export is in the org's own log.
	env.WaitProjected(t)
	var log struct {
		AuditEvents struct{ TotalCount int }
	}
	env.Do(t, admin, `{ auditEvents(filter: {types: [AUDIT_LOG_EXPORTED]}) { totalCount } }`, nil).MustData(t, &log)
	if log.AuditEvents.TotalCount != export.MaxActivePerOrg+1 {
		t.Fatalf("%d AUDIT_LOG_EXPORTED events", log.AuditEvents.TotalCount)
	}
}

// TestExportSurvivesStoppedInstance stands in for instances that die while
// running a job: the test takes the job off the queue as a worker would,
// marks it RUNNING, and never acknowledges it; then the instance stops and
// a new one with workers starts.
func TestExportSurvivesStoppedInstance(t *testing.T) {
	tests := []struct {
		name    string
		crashes int
		status  string
	}{
		{"retried after one crash", 1, "SUCCEEDED"},
		{"failed after every attempt crashed", export.DefaultMaxAttempts, "FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const ackWait = time.Second
			env := testenv.Start(t, func(c *server.Config) {
				c.ExportWorkers = -1
				c.Streams.ExportAckWait = ackWait
			})
			admin := testenv.AdminToken(t, "acme")
			env.EnableOrg(t, "acme", domain.RegionUS)
			mustRecord(t, env, []map[string]any{userCreated("acme", time.Now(), "a@example.com")})
			env.WaitProjected(t)
			// Up to now: the export's own AUDIT_LOG_EXPORTED may or may not
			// be projected when the job runs.
			job := startExport(t, env, admin, map[string]any{"to": time.Now().UTC().Format(time.RFC3339Nano)}, "CSV")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			js := env.JetStream()
			cons, err := js.CreateOrUpdateConsumer(ctx, natsx.ExportQueueStream, export.ConsumerConfig(ackWait, export.DefaultMaxAttempts))
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(ctx, natsx.ExportJobsBucket)
			if err != nil {
				t.Fatal(err)
			}
			for range tt.crashes {
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*ackWait))
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for range batch.Messages() {
					n++ // taken, never acknowledged
				}
				if n != 1 {
					t.Fatalf("fetched %d jobs", n)
				}
				entry, err := kv.Get(ctx, natsx.ExportJobKey("acme", job.ID))
				if err != nil {
					t.Fatal(err)
				}
				var j domain.ExportJob
				if err := json.Unmarshal(entry.Value(), &j); err != nil {
					t.Fatal(err)
				}
				if err := j.Start(time.Now()); err != nil {
					t.Fatal(err)
				}
				data, _ := json.Marshal(j)
				if _, err := kv.Update(ctx, entry.Key(), data, entry.Revision()); err != nil {
					t.Fatal(err)
				}
			}
			if j := getExport(t, env, admin, job.ID); j.Status != "RUNNING" || j.Attempts != tt.crashes {
				t.Fatalf("before the stop: %+v", j)
			}

			if err := env.Stop(); err != nil {
				t.Fatal(err)
			}
			cfg := env.Config
			cfg.ExportWorkers = 1
			env = testenv.StartConfig(t, cfg)
			got := waitExport(t, env, admin, job.ID)
			if got.Status != tt.status {
				t.Fatalf("after the restart: %+v", got)
			}
			switch tt.status {
			case "SUCCEEDED":
				if got.Attempts != tt.crashes+1 || got.RowCount != 2 { // the opt-in and one event
					t.Fatalf("retried job: %+v", got)
				}
			case "FAILED":
				if got.Error == nil || !strings.Contains(*got.Error, "interrupted") || got.DownloadURL != nil {
					t.Fatalf("failed job: %+v", got)
				}
			}
		})
	}
}

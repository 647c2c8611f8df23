package server_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

const logStreamSecret = testenv.SinkWebhookSecret

const logStreamFields = `id name status pausedBy lastError delivered failed lastDeliveredEventId
  destination { kind format url secretSet secretCount } filter { types sources query }`

// startLogStreams starts auditd delivering log streams to loopback, ticking
// fast, with opts applied after.
func startLogStreams(t *testing.T, opts ...testenv.Option) *testenv.Env {
	return testenv.Start(t, append([]testenv.Option{func(c *server.Config) {
		c.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.LogStreamTick = 100 * time.Millisecond
	}}, opts...)...)
}

func webhookInput(name, url string) map[string]any {
	return map[string]any{"name": name, "destination": map[string]any{"webhook": map[string]any{"url": url, "secrets": []string{logStreamSecret}}}}
}

const createLogStream = `mutation($input: CreateLogStreamInput!) { createLogStream(input: $input) { ` + logStreamFields + ` } }`

// TestLogStreamErrors: every mutation answers bad input, unknown ids and
// callers who are not admins with the right code, and stores nothing.
func TestLogStreamErrors(t *testing.T) {
	env := startLogStreams(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	var created struct{ CreateLogStream struct{ ID string } }
	env.Do(t, admin, createLogStream, map[string]any{"input": webhookInput("taken", "http://127.0.0.1:9/hook")}).MustData(t, &created)
	id := created.CreateLogStream.ID

	wh := func(url string, secrets ...string) map[string]any {
		if secrets == nil {
			secrets = []string{}
		}
		return map[string]any{"webhook": map[string]any{"url": url, "secrets": secrets}}
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name  string
		token string
		query string
		vars  map[string]any
		code  string
	}{
		{"no destination", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": map[string]any{}}}, "BAD_USER_INPUT"},
		{"two destinations", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": map[string]any{
			"webhook": map[string]any{"url": "https://siem.example.com", "secrets": []string{logStreamSecret}},
			"syslog":  map[string]any{"host": "siem.example.com"}}}}, "BAD_USER_INPUT"},
		{"empty name", admin, createLogStream, map[string]any{"input": webhookInput(" ", "https://siem.example.com")}, "BAD_USER_INPUT"},
		{"ftp url", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("ftp://siem.example.com", logStreamSecret)}}, "BAD_USER_INPUT"},
		{"http outside the allow list", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("http://10.1.2.3/hook", logStreamSecret)}}, "BAD_USER_INPUT"},
		{"credentials in url", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("https://u:p@siem.example.com", logStreamSecret)}}, "BAD_USER_INPUT"},
		{"bad secret", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("https://siem.example.com", "hunter2")}}, "BAD_USER_INPUT"},
		{"no secret", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("https://siem.example.com")}}, "BAD_USER_INPUT"},
		{"splunk token with spaces", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": map[string]any{
			"splunk": map[string]any{"url": "https://splunk.example.com:8088", "token": "a b"}}}}, "BAD_USER_INPUT"},
		{"syslog port", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": map[string]any{
			"syslog": map[string]any{"host": "siem.example.com", "port": 70000}}}}, "BAD_USER_INPUT"},
		{"bad query", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("https://siem.example.com", logStreamSecret),
			"filter": map[string]any{"query": "type:(("}}}, "BAD_USER_INPUT"},
		{"start in the future", admin, createLogStream, map[string]any{"input": map[string]any{"name": "x", "destination": wh("https://siem.example.com", logStreamSecret),
			"startAt": future}}, "BAD_USER_INPUT"},
		{"name taken", admin, createLogStream, map[string]any{"input": webhookInput("taken", "https://siem.example.com")}, "CONFLICT"},
		{"update unknown", admin, `mutation { updateLogStream(input: {id: "nope", name: "y"}) { id } }`, nil, "NOT_FOUND"},
		{"update nothing", admin, `mutation($id: ID!) { updateLogStream(input: {id: $id}) { id } }`, map[string]any{"id": id}, "BAD_USER_INPUT"},
		{"update bad url", admin, `mutation($id: ID!) { updateLogStream(input: {id: $id, destination: {webhook: {url: "nope", secrets: [""]}}}) { id } }`, map[string]any{"id": id}, "BAD_USER_INPUT"},
		{"pause unknown", admin, `mutation { pauseLogStream(id: "nope") { id } }`, nil, "NOT_FOUND"},
		{"resume unknown", admin, `mutation { resumeLogStream(id: "nope") { id } }`, nil, "NOT_FOUND"},
		{"delete unknown", admin, `mutation { deleteLogStream(id: "nope") { id } }`, nil, "NOT_FOUND"},
		{"test unknown", admin, `mutation { testLogStream(id: "nope") { ok } }`, nil, "NOT_FOUND"},
		{"another org's stream", testenv.AdminToken(t, "globex"), `mutation($id: ID!) { pauseLogStream(id: $id) { id } }`, map[string]any{"id": id}, "NOT_FOUND"},
		{"user lists", testenv.UserToken(t, "acme"), `{ logStreams { id } }`, nil, "FORBIDDEN"},
		{"user creates", testenv.UserToken(t, "acme"), createLogStream, map[string]any{"input": webhookInput("x", "https://siem.example.com")}, "FORBIDDEN"},
		{"user updates", testenv.UserToken(t, "acme"), `mutation($id: ID!) { updateLogStream(input: {id: $id, name: "y"}) { id } }`, map[string]any{"id": id}, "FORBIDDEN"},
		{"user pauses", testenv.UserToken(t, "acme"), `mutation($id: ID!) { pauseLogStream(id: $id) { id } }`, map[string]any{"id": id}, "FORBIDDEN"},
		{"user resumes", testenv.UserToken(t, "acme"), `mutation($id: ID!) { resumeLogStream(id: $id) { id } }`, map[string]any{"id": id}, "FORBIDDEN"},
		{"user deletes", testenv.UserToken(t, "acme"), `mutation($id: ID!) { deleteLogStream(id: $id) { id } }`, map[string]any{"id": id}, "FORBIDDEN"},
		{"user tests", testenv.UserToken(t, "acme"), `mutation($id: ID!) { testLogStream(id: $id) { ok } }`, map[string]any{"id": id}, "FORBIDDEN"},
		{"service creates", testenv.ServiceToken(t), createLogStream, map[string]any{"input": webhookInput("x", "https://siem.example.com")}, "FORBIDDEN"},
		{"anonymous lists", "", `{ logStreams { id } }`, nil, "UNAUTHENTICATED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Do(t, tc.token, tc.query, tc.vars)
			if got := r.ErrorCode(t); got != tc.code {
				t.Fatalf("code %s (%s), want %s", got, r.Errors[0].Message, tc.code)
			}
			if strings.Contains(r.Errors[0].Message, logStreamSecret) || strings.Contains(r.Errors[0].Message, "hunter2") {
				t.Fatalf("the error repeats the secret: %s", r.Errors[0].Message)
			}
		})
	}
	var list struct{ LogStreams []struct{ Name string } }
	env.Do(t, admin, `{ logStreams { name } }`, nil).MustData(t, &list)
	if len(list.LogStreams) != 1 || list.LogStreams[0].Name != "taken" {
		t.Fatalf("bad inputs stored streams: %+v", list.LogStreams)
	}
}

// TestLogStreamEndToEnd: a stream created through the API delivers the
// events recorded after it, in order, with their leaf indexes once
// projected; test, pause, resume and delete work and are recorded in the
// org's log; no answer and no recorded event carries the secret.
func TestLogStreamEndToEnd(t *testing.T) {
	env := startLogStreams(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	h := testenv.StartSink(t, testenv.SinkWebhook, testenv.SinkOptions{})

	r := env.Do(t, admin, createLogStream, map[string]any{"input": webhookInput("siem", h.URL+"/hook")})
	var created struct {
		CreateLogStream struct {
			ID, Status  string
			Destination struct {
				Kind        string
				SecretSet   bool
				SecretCount int
			}
		}
	}
	r.MustData(t, &created)
	s := created.CreateLogStream
	if s.Status != "ACTIVE" || s.Destination.Kind != "WEBHOOK" || !s.Destination.SecretSet || s.Destination.SecretCount != 1 {
		t.Fatalf("created: %+v", s)
	}

	var test struct {
		TestLogStream struct {
			Ok     bool
			Status int
			Body   *string
		}
	}
	env.Do(t, admin, `mutation($id: ID!) { testLogStream(id: $id) { ok status body } }`, map[string]any{"id": s.ID}).MustData(t, &test)
	if !test.TestLogStream.Ok || test.TestLogStream.Status != 200 || test.TestLogStream.Body == nil {
		t.Fatalf("test: %+v", test.TestLogStream)
	}

	at := time.Now().Add(-time.Minute)
	var events []map[string]any
	var want []string
	for i := range 20 {
		e := userCreated("acme", at.Add(time.Duration(i)*time.Second), "u"+string(rune('a'+i))+"@example.com")
		events = append(events, e)
		want = append(want, e["id"].(string))
	}
	mustRecord(t, env, events)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := h.Distinct("USER_CREATED")
		if len(got) >= len(want) {
			if strings.Join(got[:len(want)], ",") != strings.Join(want, ",") {
				t.Fatalf("delivered out of order or not all: %v, want %v", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered", len(got), len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, m := range []string{"pauseLogStream", "resumeLogStream"} {
		r := env.Do(t, admin, `mutation($id: ID!) { `+m+`(id: $id) { status pausedBy } }`, map[string]any{"id": s.ID})
		if len(r.Errors) > 0 {
			t.Fatalf("%s: %+v", m, r.Errors)
		}
	}
	env.Do(t, admin, `mutation($id: ID!) { updateLogStream(input: {id: $id, filter: {types: [USER_DELETED]}, destination: {webhook: {url: "`+h.URL+`/v2", secrets: [""]}}}) { id } }`,
		map[string]any{"id": s.ID}).MustData(t, &struct{}{})
	var list struct {
		LogStreams []struct {
			Filter      struct{ Types []string }
			Destination struct {
				URL       string
				SecretSet bool
			}
		}
	}
	env.Do(t, admin, `{ logStreams { filter { types } destination { url secretSet } } }`, nil).MustData(t, &list)
	if l := list.LogStreams; len(l) != 1 || l[0].Destination.URL != h.URL+"/v2" || !l[0].Destination.SecretSet || len(l[0].Filter.Types) != 1 {
		t.Fatalf("after update: %+v", l)
	}
	env.Do(t, admin, `mutation($id: ID!) { deleteLogStream(id: $id) { id } }`, map[string]any{"id": s.ID}).MustData(t, &struct{}{})
	if code := env.Do(t, admin, `mutation($id: ID!) { pauseLogStream(id: $id) { id } }`, map[string]any{"id": s.ID}).ErrorCode(t); code != "NOT_FOUND" {
		t.Fatalf("after delete: %s", code)
	}

	env.WaitProjected(t)
	r = env.Do(t, admin, `{ auditEvents(filter: {types: [AUDIT_LOG_STREAM_CREATED, AUDIT_LOG_STREAM_UPDATED, AUDIT_LOG_STREAM_PAUSED, AUDIT_LOG_STREAM_RESUMED, AUDIT_LOG_STREAM_DELETED]}) { totalCount edges { node { type details } } } }`, nil)
	var log struct {
		AuditEvents struct {
			TotalCount int
			Edges      []struct{ Node struct{ Type string } }
		}
	}
	r.MustData(t, &log)
	if log.AuditEvents.TotalCount != 5 {
		t.Fatalf("%d log stream events recorded, want 5: %s", log.AuditEvents.TotalCount, r.Data)
	}
	if strings.Contains(string(r.Data), logStreamSecret) || strings.Contains(string(r.Data), "QUJDQUJD") {
		t.Fatal("a recorded event holds the secret")
	}
}

// TestLogStreamShutdownAndRebuild: auditd stops promptly while a deliverer
// waits on a destination that never answers, and a rebuild of the read
// models keeps the streams (they are not in the log), which go on from
// their position.
func TestLogStreamShutdownAndRebuild(t *testing.T) {
	hanging := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hanging <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	// Registered before auditd's, so it runs after auditd has stopped.
	t.Cleanup(srv.Close)
	env := startLogStreams(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	var created struct{ CreateLogStream struct{ ID string } }
	env.Do(t, admin, createLogStream, map[string]any{"input": webhookInput("siem", srv.URL+"/hook")}).MustData(t, &created)
	mustRecord(t, env, []map[string]any{userCreated("acme", time.Now().Add(-time.Second), "a@example.com")})
	select {
	case <-hanging:
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery attempt")
	}
	start := time.Now()
	env = env.Rebuild(t) // stops auditd first
	took := time.Since(start)
	t.Logf("stop, rebuild and start with a delivery in flight: %s", took.Round(time.Millisecond))
	if took > 25*time.Second {
		t.Fatalf("stop and rebuild took %s with a delivery in flight", took)
	}
	var list struct{ LogStreams []struct{ ID, Status string } }
	env.Do(t, admin, `{ logStreams { id status } }`, nil).MustData(t, &list)
	if len(list.LogStreams) != 1 || list.LogStreams[0].ID != created.CreateLogStream.ID {
		t.Fatalf("after rebuild: %+v", list.LogStreams)
	}
	close(release)
	deadline := time.Now().Add(45 * time.Second)
	for {
		var l struct{ LogStreams []struct{ Delivered int } }
		env.Do(t, admin, `{ logStreams { delivered } }`, nil).MustData(t, &l)
		if l.LogStreams[0].Delivered >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream did not deliver after the rebuild")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLogStreamsUnavailableWithoutKey: with an external NATS (several
// instances) and no AUDITD_ENCRYPTION_KEY, every log stream field answers
// UNAVAILABLE naming the setting, and the rest of the API works.
func TestLogStreamsUnavailableWithoutKey(t *testing.T) {
	x := testenv.StartExternalNATS(t)
	env := testenv.Start(t, x.Use)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	for _, q := range []string{
		`{ logStreams { id } }`,
		`mutation { createLogStream(input: {name: "x", destination: {syslog: {host: "siem.example.com"}}}) { id } }`,
		`mutation { pauseLogStream(id: "x") { id } }`,
		`mutation { testLogStream(id: "x") { ok } }`,
	} {
		r := env.Do(t, admin, q, nil)
		if code := r.ErrorCode(t); code != "UNAVAILABLE" || !strings.Contains(r.Errors[0].Message, "AUDITD_ENCRYPTION_KEY") {
			t.Fatalf("%s: %s %q", q, code, r.Errors[0].Message)
		}
	}
	var s struct{ AuditLogSettings struct{ Enabled bool } }
	env.Do(t, admin, `{ auditLogSettings { enabled } }`, nil).MustData(t, &s)
	if !s.AuditLogSettings.Enabled {
		t.Fatal("the rest of the API is affected")
	}
}

// TestLogStreamLeafIndexes: a stream that starts before events already
// projected delivers each with its leaf index, however far apart the
// events of a batch occurred: the deliverer reads ranges of the read
// model's primary key for events close together, and by id for a batch
// spread too wide.
func TestLogStreamLeafIndexes(t *testing.T) {
	env := startLogStreams(t)
	cases := []struct {
		name   string
		offset func(i int) time.Duration // before now, of the i-th event
	}{
		{"together", func(i int) time.Duration { return time.Duration(i) * time.Millisecond }},
		{"three clusters hours apart", func(i int) time.Duration { return time.Duration(i%3)*time.Hour + time.Duration(i)*time.Millisecond }},
		{"spread over days", func(i int) time.Duration { return time.Duration(i) * 7 * time.Hour }},
	}
	orgs := make([]string, len(cases))
	for i := range cases {
		orgs[i] = fmt.Sprintf("leaves-%d", i)
		env.EnableOrg(t, orgs[i], domain.RegionUS)
	}
	env.WaitProjected(t) // the region's stream holds the opt-ins: a stream may start after them
	start := time.Now().UTC()
	now := time.Now()
	want := make([][]string, len(cases))
	for i, tc := range cases {
		var events []map[string]any
		for j := range 20 {
			e := userCreated(orgs[i], now.Add(-time.Minute-tc.offset(j)), fmt.Sprintf("u%d@%s.example", j, orgs[i]))
			events = append(events, e)
			want[i] = append(want[i], e["id"].(string))
		}
		mustRecord(t, env, events)
	}
	env.WaitProjected(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := testenv.StartSink(t, testenv.SinkWebhook, testenv.SinkOptions{})
			in := webhookInput("siem", h.URL+"/hook")
			in["startAt"] = start.Format(time.RFC3339Nano)
			in["filter"] = map[string]any{"types": []string{"USER_CREATED"}}
			env.Do(t, testenv.AdminToken(t, orgs[i]), createLogStream, map[string]any{"input": in}).MustData(t, &struct{}{})
			waitFor(t, 20*time.Second, "every event delivered", func() bool { return len(h.Distinct("USER_CREATED")) >= len(want[i]) })
			if got := h.Distinct("USER_CREATED"); !slices.Equal(got, want[i]) {
				t.Fatalf("delivered %v, want %v", got, want[i])
			}
			leaves := map[int64]bool{}
			for _, e := range h.Received() {
				if e.LeafIndex == nil {
					t.Fatalf("event %s delivered without its leaf index", e.ID)
				}
				leaves[*e.LeafIndex] = true
			}
			if len(leaves) != len(want[i]) {
				t.Fatalf("%d distinct leaf indexes for %d events", len(leaves), len(want[i]))
			}
		})
	}
}

// TestLogStreamsSpreadOverInstances: streams spread over the instances
// serving, each delivering its share rounded up, not all on the one that
// looked first; when one instance stops, the other takes its streams over
// and every stream still delivers.
func TestLogStreamsSpreadOverInstances(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	a := startLogStreamsOn(t, key)
	a.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	hooks := make([]*testenv.Sink, 4)
	for i := range hooks {
		hooks[i] = testenv.StartSink(t, testenv.SinkWebhook, testenv.SinkOptions{})
		var created struct{ CreateLogStream struct{ ID string } }
		a.Do(t, admin, createLogStream, map[string]any{"input": webhookInput(fmt.Sprintf("siem-%d", i), hooks[i].URL+"/hook")}).MustData(t, &created)
	}
	waitFor(t, 30*time.Second, "the only instance delivering all 4", func() bool { return a.LogStreamDeliverers() == 4 })

	// A second instance joins: a hands two streams back, b takes them.
	cfg := a.Config
	cfg.Addr = "127.0.0.1:0"
	b := testenv.StartConfig(t, cfg)
	waitFor(t, 30*time.Second, "2 streams on each instance", func() bool { return a.LogStreamDeliverers() == 2 && b.LogStreamDeliverers() == 2 })
	e := userCreated("acme", time.Now().Add(-time.Second), "spread@acme.example")
	mustRecord(t, a, []map[string]any{e})
	waitHooks(t, hooks, e["id"].(string))

	// b stops: a delivers every stream again.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a delivering all 4 again", func() bool { return a.LogStreamDeliverers() == 4 })
	e = userCreated("acme", time.Now().Add(-time.Second), "after@acme.example")
	mustRecord(t, a, []map[string]any{e})
	waitHooks(t, hooks, e["id"].(string))
}

// startLogStreamsOn starts an instance on an external NATS (so a second
// one can share it) with log streams sealed by key.
func startLogStreamsOn(t *testing.T, key []byte) *testenv.Env {
	x := testenv.StartExternalNATS(t)
	return startLogStreams(t, x.Use, func(c *server.Config) { c.EncryptionKey = key })
}

// waitHooks waits until every hook has event id.
func waitHooks(t *testing.T, hooks []*testenv.Sink, id string) {
	t.Helper()
	waitFor(t, 30*time.Second, "event "+id+" at every receiver", func() bool {
		for _, h := range hooks {
			if !slices.ContainsFunc(h.Received(), func(e testenv.SinkEvent) bool { return e.ID == id }) {
				return false
			}
		}
		return true
	})
}

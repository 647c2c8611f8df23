package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/integrity"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/server"
)

// A NUL byte or a broken encoding in any field used to be acknowledged and
// then stop the region's projection for every tenant. Each must be refused
// with the field named, alone, while the rest of the batch is recorded and
// becomes readable.
func TestHostileTextIsRefusedAndNothingStops(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	at := time.Now().Add(-time.Minute)
	actor := func(name, id string) map[string]any {
		return map[string]any{"kind": "USER", "id": id, "name": name, "email": "a@example.com"}
	}
	policy := func(before any) map[string]any {
		return ev("acme", "POLICY_UPDATED", "PLATFORM", at, map[string]any{"policyId": "p1",
			"changes": []map[string]any{{"field": "mode", "before": before, "after": "ok"}}},
			map[string]any{"target": map[string]any{"kind": "POLICY", "id": "p1"}})
	}
	hostile := []struct {
		field string
		event map[string]any
	}{
		{"actor.name", ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, map[string]any{"actor": actor("nul\x00name", "u")})},
		{"actor.id", ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, map[string]any{"actor": actor("n", "u\x00")})},
		{"target.name", ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, map[string]any{"target": map[string]any{"kind": "USER", "id": "u", "name": "x\x00"}})},
		{"userAgent", ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, map[string]any{"userAgent": "curl\x00"})},
		{"requestId", ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, map[string]any{"requestId": "\x00"})},
		{"details.userId", ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u\x00"}, nil)},
		{"details.changes[0].before", policy("x\x00")},
		{"details.changes[0].before.nested[0]", policy(map[string]any{"nested": []any{"deep\x00"}})},
		{"details.changes[0].before", policy(map[string]any{"k\x00": 1})},
	}
	events := []map[string]any{}
	for _, h := range hostile {
		events = append(events, h.event)
	}
	good := userCreated("globex", at, "fine@example.com")
	events = append(events, good)
	start := time.Now()
	res := record(t, env, events)
	took := time.Since(start)
	for i, h := range hostile {
		prefix := fmt.Sprintf("events[%d].%s: ", i, h.field)
		if res[i].Status != "REJECTED" || res[i].Reason == nil || !strings.HasPrefix(*res[i].Reason, prefix) {
			t.Errorf("%s: %s %v", h.field, res[i].Status, deref(res[i].Reason))
		}
	}
	if res[len(res)-1].Status != "RECORDED" {
		t.Fatalf("the good event: %+v", res[len(res)-1])
	}
	t.Logf("GraphQL: batch of %d hostile events and one good one answered in %s", len(hostile), took)

	// The same through NATS ingest, with fresh ids.
	for _, e := range events {
		e["id"] = ulid.Make().String()
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	reply, took := natsRecord(t, env.NATSIngest(t), natsx.IngestSubjectPrefix+"PLATFORM", "Bearer "+testenv.ServiceToken(t), body)
	if reply.Error != nil || len(reply.Results) != len(events) {
		t.Fatalf("NATS reply: %+v", reply)
	}
	for i, h := range hostile {
		r := reply.Results[i]
		if r.Status != ingest.Rejected || r.Code != domain.CodeBadUserInput || !strings.HasPrefix(r.Reason, h.field+": ") {
			t.Errorf("NATS %s: %+v", h.field, r)
		}
	}
	if r := reply.Results[len(events)-1]; r.Status != ingest.Recorded {
		t.Fatalf("NATS, the good event: %+v", r)
	}
	t.Logf("NATS: the same batch answered in %s", took)

	env.WaitProjected(t)
	if c := list(t, env, "globex", map[string]any{"types": []string{"USER_CREATED"}}, 10, ""); c.TotalCount != 2 {
		t.Fatalf("globex reads %d events", c.TotalCount)
	}
	if c := list(t, env, "acme", map[string]any{"sources": []string{"PLATFORM"}, "types": []string{"USER_LOGOUT", "POLICY_UPDATED"}}, 10, ""); c.TotalCount != 0 {
		t.Fatalf("acme holds %d hostile events", c.TotalCount)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// Bodies are checked as bytes before any decoder replaces what is invalid.
func TestRequestBodiesMustBeText(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	valid := userCreated("acme", time.Now().Add(-time.Minute), "x@example.com")
	body, _ := json.Marshal(map[string]any{"query": recordMutation, "variables": map[string]any{"events": []any{valid}}})
	for name, bad := range map[string][]byte{
		"invalid UTF-8 in a name": bytes.Replace(body, []byte("x@example.com"), []byte("x\xff@example.com"), 1),
		"lone surrogate escape":   bytes.Replace(body, []byte("Grace Hopper"), []byte(`Grace \ud800`), 1),
		"truncated sequence":      append(bytes.Clone(body[:len(body)-1]), 0xe2, 0x82, '}'),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := env.Post(t, testenv.ServiceToken(t), bytes.NewReader(bad))
			if r.Status != http.StatusBadRequest || r.ErrorCode(t) != "BAD_USER_INPUT" {
				t.Fatalf("status %d, errors %+v", r.Status, r.Errors)
			}
			t.Logf("refused in %s: %s", time.Since(start), r.Errors[0].Message)
		})
	}
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"types": []string{"USER_CREATED"}}, 10, ""); c.TotalCount != 0 {
		t.Fatalf("a refused body left %d events", c.TotalCount)
	}
}

// NUL in a filter or an id is the client's mistake, not an internal error,
// and an export with such a filter is refused before it is recorded.
func TestHostileArgumentsAreBadInput(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")
	tests := []struct {
		name, query string
		vars        map[string]any
		field       string
	}{
		{"search", `query($s: String) { auditEvents(filter: {search: $s}) { totalCount } }`, map[string]any{"s": "a\x00b"}, "filter.search"},
		{"actorId", `query($s: ID) { auditEvents(filter: {actorId: $s}) { totalCount } }`, map[string]any{"s": "\x00"}, "filter.actorId"},
		{"event id", `query($id: ID!) { auditEvent(id: $id) { id } }`, map[string]any{"id": "01J\x00"}, "id"},
		{"history id", `query($id: ID!) { resourceHistory(kind: "POLICY", id: $id) { totalCount } }`, map[string]any{"id": "p\x00"}, "id"},
		{"export filter", `mutation($s: String) { startAuditExport(filter: {search: $s}) { id } }`, map[string]any{"s": "\x00"}, "filter.search"},
		{"export id", `query($id: ID!) { exportJob(id: $id) { id } }`, map[string]any{"id": "\x00"}, "id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Do(t, admin, tc.query, tc.vars)
			if r.ErrorCode(t) != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != tc.field {
				t.Fatalf("got %+v", r.Errors)
			}
		})
	}
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"types": []string{"AUDIT_LOG_EXPORTED"}}, 10, ""); c.TotalCount != 0 {
		t.Fatalf("a refused export was recorded %d times", c.TotalCount)
	}
}

// Identity is (org, id): the same id in two organizations is two events,
// and neither learns of the other's.
func TestEventIdentityIsPerOrg(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	at := time.Now().Add(-time.Minute)
	a := userCreated("acme", at, "a@acme.example")
	b := userCreated("globex", at, "b@globex.example")
	b["id"] = a["id"]
	mustRecord(t, env, []map[string]any{a})
	if r := record(t, env, []map[string]any{b}); r[0].Status != "RECORDED" {
		t.Fatalf("globex recording an id acme used: %+v", r[0])
	}
	if r := record(t, env, []map[string]any{b}); r[0].Status != "DUPLICATE" {
		t.Fatalf("globex re-sending its own id: %+v", r[0])
	}
	env.WaitProjected(t)
	for org, email := range map[string]string{"acme": "a@acme.example", "globex": "b@globex.example"} {
		var out struct{ AuditEvent *node }
		env.Do(t, testenv.AdminToken(t, org), `query($id: ID!) { auditEvent(id: $id) { id target { name } } }`,
			map[string]any{"id": a["id"]}).MustData(t, &out)
		if out.AuditEvent == nil || out.AuditEvent.Target.Name != email {
			t.Fatalf("%s reads %+v", org, out.AuditEvent)
		}
	}
}

// The ids of opt-in and opt-out events were derived from a sequence every
// org shares, so one org could pre-record another's next ones. Now they
// derive from the org's own version, and producers may not use that kind
// of id at all.
func TestSettingsEventsCannotBePreempted(t *testing.T) {
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, "globex")
	env.EnableOrg(t, "acme", domain.RegionUS)
	at := time.Now().Add(-time.Minute)
	var preempt []map[string]any
	for v := uint64(1); v <= 5; v++ {
		for _, org := range []string{"acme", "globex"} {
			e := userCreated(org, at, "x@example.com")
			e["id"] = domain.SettingsEventID("globex", v)
			preempt = append(preempt, e)
		}
	}
	for i, r := range record(t, env, preempt) {
		if r.Status != "REJECTED" || !strings.Contains(*r.Reason, "reserved") {
			t.Fatalf("pre-recording a settings event id (%d): %+v", i, r)
		}
	}
	settingsMutation(t, env, admin, enable, map[string]any{"r": "US"})
	settingsMutation(t, env, admin, disable, nil)
	settingsMutation(t, env, admin, enable, map[string]any{"r": "US"})
	env.WaitProjected(t)
	c := list(t, env, "globex", map[string]any{"types": []string{"AUDIT_LOG_OPT_IN", "AUDIT_LOG_OPT_OUT"}}, 10, "")
	if c.TotalCount != 3 {
		t.Fatalf("globex's log holds %d settings events, want 3: %v", c.TotalCount, c.ids())
	}
	want := map[string]bool{}
	for v := uint64(1); v <= 3; v++ {
		want[domain.SettingsEventID("globex", v)] = true
	}
	for _, id := range c.ids() {
		if !want[id] {
			t.Fatalf("settings event id %s is not derived from globex's own version", id)
		}
	}
}

// An existing deployment's streams hold events de-duplicated by bare id and
// settings changes without the org's version; both keep working.
func TestUpgradeKeepsExistingStreamsWorking(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	js := env.JetStream()
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	// As the previous build wrote them: a change with no version, and an
	// event whose message id is the bare event id.
	change, _ := json.Marshal(map[string]any{"orgId": "old", "type": "AUDIT_LOG_OPT_IN", "region": "US",
		"actor": map[string]any{"kind": "USER", "id": "user:ann", "name": "Ann"}, "at": at})
	ack, err := js.Publish(ctx, natsx.ControlSubject("old"), change)
	if err != nil {
		t.Fatal(err)
	}
	legacy := domain.Event{ID: ulid.Make().String(), OrgID: "old", Source: domain.SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: at, RecordedAt: at, Actor: domain.Actor{Kind: domain.ActorUser, ID: "u1"}, Details: json.RawMessage(`{"userId":"u1"}`)}
	data, _ := json.Marshal(legacy)
	if _, err := js.Publish(ctx, natsx.AuditSubject(domain.RegionUS, &legacy), data, jetstream.WithMsgID(legacy.ID)); err != nil {
		t.Fatal(err)
	}
	env.WaitProjected(t)

	admin := testenv.AdminToken(t, "old")
	s, _ := settingsMutation(t, env, admin, `{ auditLogSettings { enabled region version } }`, nil)
	if !s.Enabled || *s.Region != "US" {
		t.Fatalf("settings from before the upgrade: %+v", s)
	}
	settingsMutation(t, env, admin, disable, nil)
	settingsMutation(t, env, admin, enable, map[string]any{"r": "US"})
	// The old event, sent again: a new message id, still one event.
	again := ev("old", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u1"}, map[string]any{"id": legacy.ID})
	if r := record(t, env, []map[string]any{again}); r[0].Status != "RECORDED" && r[0].Status != "DUPLICATE" {
		t.Fatalf("re-sent legacy event: %+v", r[0])
	}
	env.WaitProjected(t)

	c := list(t, env, "old", map[string]any{"types": []string{"AUDIT_LOG_OPT_IN", "AUDIT_LOG_OPT_OUT"}}, 10, "")
	want := map[string]bool{
		readmodel.SettingsEventID(domain.SettingsChange{}, ack.Sequence): true, // the legacy derivation
		domain.SettingsEventID("old", 2):                                 true,
		domain.SettingsEventID("old", 3):                                 true,
	}
	if c.TotalCount != 3 {
		t.Fatalf("settings events %v", c.ids())
	}
	for _, id := range c.ids() {
		if !want[id] {
			t.Fatalf("settings event %s: want one of %v", id, want)
		}
	}
	if c := list(t, env, "old", map[string]any{"types": []string{"USER_LOGOUT"}}, 10, ""); c.TotalCount != 1 {
		t.Fatalf("the legacy event is stored %d times", c.TotalCount)
	}
	reps, err := env.Reconcile(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range reps {
		if len(rep.Gaps) != 0 || rep.Unexplained != 0 {
			t.Fatalf("%s after the upgrade: %+v", rep.Stream, rep)
		}
	}
}

// serve reconciles on its own, repairs what a read model lost, and keeps
// the count where /metrics and /readyz show it.
func TestServeReconcilesAndRepairs(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.ReconcileEvery = 300 * time.Millisecond })
	env.EnableOrg(t, "acme", domain.RegionUS)
	at := time.Now().Add(-time.Minute)
	var events []map[string]any
	for i := range 50 {
		events = append(events, userCreated("acme", at, fmt.Sprintf("u%d@example.com", i)))
	}
	mustRecord(t, env, events)
	env.WaitProjected(t)
	lost := events[17]["id"].(string)
	pool := env.EventStore(domain.RegionUS).Pool()
	if _, err := pool.Exec(context.Background(), `DELETE FROM audit_us.events WHERE org_id = 'acme' AND id = $1`, lost); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := integrity.LastReconcile(context.Background(), env.EventStore(domain.RegionUS))
		if err != nil {
			t.Fatal(err)
		}
		if st != nil && st.Found == 1 && st.Gaps == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no repairing reconciliation within 20s: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out struct{ AuditEvent *node }
	env.Do(t, testenv.AdminToken(t, "acme"), `query($id: ID!) { auditEvent(id: $id) { id } }`,
		map[string]any{"id": lost}).MustData(t, &out)
	if out.AuditEvent == nil {
		t.Fatal("the lost event was not restored")
	}
	m := scrape(t, env)
	if v, ok := m[`auditlog_reconcile_gaps{stream=AUDIT_US}`]; !ok || v != 0 {
		t.Fatalf("gap metric %v (%v)", v, ok)
	}
}

// A projection that cannot move while its stream grows is the
// deployment's problem, not this instance's: /readyz stays 200 (a load
// balancer keeps a healthy instance) and reports it under cluster, as the
// metric does.
func TestReadyzReportsAStalledProjection(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.StallAfter = 500 * time.Millisecond })
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.WaitProjected(t)
	ctx := context.Background()
	// Block the projector's writes (reads still pass) so its next
	// transaction waits.
	tx, err := env.EventStore(domain.RegionUS).Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `LOCK TABLE audit_us.event_ids IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, env, []map[string]any{userCreated("acme", time.Now().Add(-time.Minute), "s@example.com")})
	problems := waitCluster(t, env, "degraded")
	if len(problems) == 0 || !strings.Contains(problems[0], "AUDIT_US") || !strings.Contains(problems[0], "stalled") {
		t.Fatalf("cluster problems %q", problems)
	}
	if m := scrape(t, env); m["auditlog_cluster_problems"] < 1 {
		t.Fatalf("auditlog_cluster_problems = %v", m["auditlog_cluster_problems"])
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitCluster(t, env, "ok")
}

// readiness is what /readyz answers.
type readiness struct {
	Status  string
	Cluster struct {
		Status   string
		Problems []string
	}
}

// getReadyz reads /readyz once: its status code and body.
func getReadyz(t *testing.T, env *testenv.Env) (int, readiness) {
	t.Helper()
	resp, err := http.Get(env.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body readiness
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	return resp.StatusCode, body
}

// waitCluster polls /readyz until its cluster status is want, checking
// that the instance itself stays ready, and returns the problems listed.
func waitCluster(t *testing.T, env *testenv.Env, want string) []string {
	t.Helper()
	var body readiness
	waitFor(t, 15*time.Second, "cluster status "+want, func() bool {
		var code int
		if code, body = getReadyz(t, env); code != http.StatusOK {
			t.Fatalf("readyz %d while only the shared read model has a problem: %+v", code, body)
		}
		return body.Cluster.Status == want
	})
	return body.Cluster.Problems
}

// waitReadyz polls /readyz until it answers code, and returns its status.
func waitReadyz(t *testing.T, env *testenv.Env, code int) string {
	t.Helper()
	var body readiness
	waitFor(t, 15*time.Second, fmt.Sprintf("/readyz answering %d", code), func() bool {
		var got int
		got, body = getReadyz(t, env)
		return got == code
	})
	return body.Status
}

// A partition whose Postgres session is lost while it idles (a database
// failover, a killed connection) finds out within its idle check and takes
// its slots again; /readyz counts the slots no projector holds meanwhile.
func TestPartitionRetakesItsSlotsAfterLosingItsSession(t *testing.T) {
	env := testenv.Start(t)
	waitReadyz(t, env, http.StatusOK)
	ctx := context.Background()
	pool := env.EventStore(domain.RegionEU).Pool()
	holders := func() map[int]int {
		rows, err := pool.Query(ctx, `SELECT pid, count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND objsubid = 2 AND granted
			  AND classid = hashtext('projector:AUDIT_EU:pg-events:slots')::bigint::bit(32)::bigint::oid
			GROUP BY pid`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]int{}
		for rows.Next() {
			var pid, n int
			if err := rows.Scan(&pid, &n); err != nil {
				t.Fatal(err)
			}
			out[pid] = n
		}
		rows.Close()
		return out
	}
	// waitHolder waits until one session other than not holds every slot.
	waitHolder := func(not int, what string) int {
		deadline := time.Now().Add(15 * time.Second)
		for {
			h := holders()
			for pid, n := range h {
				if len(h) == 1 && pid != not && n == natsx.Slots {
					return pid
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: slot locks of AUDIT_EU held by %v (session: slots)", what, h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	pid := waitHolder(0, "at start")
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	waitHolder(pid, "after the session was lost")
}

package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

const recordMutation = `mutation($events: [AuditEventInput!]!) {
  recordAuditEvents(events: $events) { results { id status reason } }
}`

type recordResult struct {
	ID     string
	Status string
	Reason *string
}

func record(t *testing.T, env *testenv.Env, events []map[string]any) []recordResult {
	t.Helper()
	r := env.Do(t, testenv.ServiceToken(t), recordMutation, map[string]any{"events": events})
	var out struct {
		RecordAuditEvents struct{ Results []recordResult }
	}
	r.MustData(t, &out)
	if len(out.RecordAuditEvents.Results) != len(events) {
		t.Fatalf("%d results for %d events", len(out.RecordAuditEvents.Results), len(events))
	}
	return out.RecordAuditEvents.Results
}

func mustRecord(t *testing.T, env *testenv.Env, events []map[string]any) {
	t.Helper()
	for i, r := range record(t, env, events) {
		if r.Status != "RECORDED" {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
}

// ev builds an event input; fields in extra override the defaults.
func ev(org, typ, source string, at time.Time, details map[string]any, extra map[string]any) map[string]any {
	e := map[string]any{
		"id": ulid.Make().String(), "orgId": org, "type": typ, "source": source,
		"occurredAt": at.UTC().Format(time.RFC3339Nano),
		"actor":      map[string]any{"kind": "USER", "id": "u-grace", "name": "Grace Hopper", "email": "grace@example.com"},
		"details":    details,
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

func userCreated(org string, at time.Time, email string) map[string]any {
	return ev(org, "USER_CREATED", "PLATFORM", at, map[string]any{"userId": "u-" + email, "userEmail": email},
		map[string]any{"target": map[string]any{"kind": "USER", "id": "u-" + email, "name": email}})
}

type node struct {
	ID, Type, Category, Source, Description string
	OccurredAt, RecordedAt                  time.Time
	Actor                                   struct{ Kind, ID, Name, Email string }
	Target                                  *struct{ Kind, ID, Name string }
	IPAddress, UserAgent, RequestID         *string
	Details                                 json.RawMessage
	UserEmail                               *string
}

type connection struct {
	TotalCount       int
	TotalCountCapped bool
	PageInfo         struct {
		HasNextPage bool
		EndCursor   *string
	}
	Edges []struct {
		Cursor string
		Node   node
	}
}

func (c connection) ids() []string {
	out := make([]string, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node.ID
	}
	return out
}

const nodeFields = `id type category source description occurredAt recordedAt
  actor { kind id name email } target { kind id name } ipAddress userAgent requestId details
  ... on UserEvent { userEmail }`

const listQuery = `query($f: AuditEventFilter, $first: Int, $after: String) {
  auditEvents(filter: $f, first: $first, after: $after) {
    totalCount totalCountCapped pageInfo { hasNextPage endCursor }
    edges { cursor node { ` + nodeFields + ` } } } }`

// withoutReads leaves AUDIT_LOG_VIEWED out of filter unless it names types
// or categories: a test's own queries are reads, recorded in the log it is
// looking at.
func withoutReads(filter map[string]any) map[string]any {
	if filter["types"] != nil || filter["categories"] != nil {
		return filter
	}
	out := map[string]any{"excludeTypes": []string{"AUDIT_LOG_VIEWED"}}
	for k, v := range filter {
		out[k] = v
	}
	return out
}

func readlessTypes() []string {
	var types []string
	for _, info := range domain.Catalog() {
		if info.Type != domain.TypeAuditLogViewed {
			types = append(types, string(info.Type))
		}
	}
	return types
}

// list reads a page of org's log as its administrator, leaving out read
// events unless filter names types or categories.
func list(t *testing.T, env *testenv.Env, org string, filter map[string]any, first int, after string) connection {
	t.Helper()
	vars := map[string]any{"f": withoutReads(filter), "first": first}
	if after != "" {
		vars["after"] = after
	}
	var out struct{ AuditEvents connection }
	env.Do(t, testenv.AdminToken(t, org), listQuery, vars).MustData(t, &out)
	return out.AuditEvents
}

func TestRecordAndQueryWithEveryFilter(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	batch := []map[string]any{
		userCreated("acme", base, "linus@example.com"),
		userCreated("acme", base.Add(time.Minute), "ken@example.com"),
		ev("acme", "API_KEY_CREATED", "INSIGHT_IDR", base.Add(2*time.Minute), map[string]any{"apiKeyId": "k1", "apiKeyName": "siem"},
			map[string]any{"actor": map[string]any{"kind": "API_KEY", "id": "key-9"}, "ipAddress": "10.0.0.7", "userAgent": "curl/8", "requestId": "req-1"}),
		ev("acme", "POLICY_UPDATED", "INSIGHT_VM", base.Add(3*time.Minute),
			map[string]any{"policyId": "p1", "changes": []any{map[string]any{"field": "threshold", "before": 3, "after": 5}}},
			map[string]any{"target": map[string]any{"kind": "POLICY", "id": "p1", "name": "CIS Level 1"}}),
	}
	mustRecord(t, env, batch)
	env.WaitProjected(t)

	all := list(t, env, "acme", nil, 50, "")
	// Newest first; the opt-in happened now, after every recorded event.
	want := []string{"AUDIT_LOG_OPT_IN", "POLICY_UPDATED", "API_KEY_CREATED", "USER_CREATED", "USER_CREATED"}
	var got []string
	for _, e := range all.Edges {
		got = append(got, e.Node.Type)
	}
	if !reflect.DeepEqual(got, want) || all.TotalCount != 5 || all.TotalCountCapped {
		t.Fatalf("all events: types %v total %d", got, all.TotalCount)
	}
	key := all.Edges[2].Node
	if key.Actor.Kind != "API_KEY" || key.Source != "INSIGHT_IDR" || key.Category != "API_KEY" ||
		*key.IPAddress != "10.0.0.7" || *key.UserAgent != "curl/8" || *key.RequestID != "req-1" ||
		key.Description != "New API key was created" || !key.OccurredAt.Equal(base.Add(2*time.Minute)) {
		t.Fatalf("api key event read back wrong: %+v", key)
	}
	if u := all.Edges[4].Node; u.UserEmail == nil || *u.UserEmail != "linus@example.com" || u.Target.ID != "u-linus@example.com" {
		t.Fatalf("user event read back wrong: %+v", u)
	}

	ids := func(i ...int) []string {
		out := []string{}
		for _, n := range i {
			out = append(out, batch[n]["id"].(string))
		}
		return out
	}
	tests := []struct {
		name   string
		filter map[string]any
		want   []string
	}{
		{"sources", map[string]any{"sources": []string{"INSIGHT_IDR", "INSIGHT_VM"}}, ids(3, 2)},
		{"types", map[string]any{"types": []string{"USER_CREATED"}}, ids(1, 0)},
		{"categories", map[string]any{"categories": []string{"POLICY", "API_KEY"}}, ids(3, 2)},
		{"actorId", map[string]any{"actorId": "key-9"}, ids(2)},
		{"from inclusive", map[string]any{"from": base.Add(2 * time.Minute), "types": []string{"USER_CREATED", "API_KEY_CREATED", "POLICY_UPDATED"}}, ids(3, 2)},
		{"to exclusive", map[string]any{"to": base.Add(time.Minute)}, ids(0)},
		{"range with offset", map[string]any{"from": "2026-11-01T13:01:00+01:00", "to": "2026-11-01T13:03:00+01:00"}, ids(2, 1)},
		{"search email", map[string]any{"search": "KEN@example"}, ids(1)},
		{"search payload", map[string]any{"search": "siem"}, ids(2)},
		{"search target name", map[string]any{"search": "cis level"}, ids(3)},
		{"combined", map[string]any{"sources": []string{"PLATFORM"}, "search": "linus", "to": base.Add(time.Hour)}, ids(0)},
		{"nothing", map[string]any{"search": "no such text"}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := list(t, env, "acme", tc.filter, 50, "")
			if got := c.ids(); !reflect.DeepEqual(got, tc.want) || c.TotalCount != len(tc.want) {
				t.Fatalf("got %v (total %d), want %v", got, c.TotalCount, tc.want)
			}
		})
	}

	// Keyset pagination walks the whole log, two at a time, in order.
	var walked []string
	after := ""
	for range 10 {
		page := list(t, env, "acme", nil, 2, after)
		walked = append(walked, page.ids()...)
		if !page.PageInfo.HasNextPage {
			break
		}
		after = *page.PageInfo.EndCursor
	}
	if !reflect.DeepEqual(walked, all.ids()) {
		t.Fatalf("paged walk %v, want %v", walked, all.ids())
	}

	// auditEvent(id) returns the full detail; an unknown id is null.
	var one struct{ AuditEvent *node }
	env.Do(t, testenv.AdminToken(t, "acme"), `query($id: ID!) { auditEvent(id: $id) { `+nodeFields+` ... on PolicyEvent { changes { field before after } } } }`,
		map[string]any{"id": batch[3]["id"]}).MustData(t, &one)
	if one.AuditEvent == nil || one.AuditEvent.Type != "POLICY_UPDATED" || one.AuditEvent.Target.Name != "CIS Level 1" {
		t.Fatalf("auditEvent: %+v", one.AuditEvent)
	}
	env.Do(t, testenv.AdminToken(t, "acme"), `{ auditEvent(id: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9") { id } }`, nil).MustData(t, &one)
	if one.AuditEvent != nil {
		t.Fatalf("unknown id returned %+v", one.AuditEvent)
	}
}

func TestCatalogIsExposed(t *testing.T) {
	env := testenv.Start(t)
	var out struct {
		AuditEventTypes []struct {
			Type, Category, Description string
			Fields                      []struct {
				Name, Type string
				Required   bool
			}
		}
	}
	env.Do(t, testenv.AdminToken(t, "acme"), `{ auditEventTypes { type category description fields { name type required } } }`, nil).MustData(t, &out)
	if len(out.AuditEventTypes) != len(domain.Catalog()) {
		t.Fatalf("%d types, catalog has %d", len(out.AuditEventTypes), len(domain.Catalog()))
	}
	for _, ti := range out.AuditEventTypes {
		if ti.Type == "USER_CREATED" {
			if ti.Category != "USER" || ti.Description != "New user was created" || ti.Fields[0].Name != "userId" || !ti.Fields[0].Required {
				t.Fatalf("USER_CREATED: %+v", ti)
			}
			return
		}
	}
	t.Fatal("USER_CREATED missing from auditEventTypes")
}

func TestBadEventRejectsOnlyItself(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	at := time.Now().Add(-time.Hour)
	good := userCreated("acme", at, "ok@example.com")
	bad := userCreated("acme", at, "not-an-email")
	res := record(t, env, []map[string]any{good, bad, userCreated("acme", at, "ok2@example.com")})
	if res[0].Status != "RECORDED" || res[2].Status != "RECORDED" {
		t.Fatalf("good events: %+v", res)
	}
	if res[1].Status != "REJECTED" || res[1].Reason == nil || !strings.Contains(*res[1].Reason, "events[1].details.userEmail") {
		t.Fatalf("bad event: %+v", res[1])
	}
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"types": []string{"USER_CREATED"}}, 50, ""); c.TotalCount != 2 {
		t.Fatalf("stored %d events, want 2", c.TotalCount)
	}
}

func TestIdsAreNeverStoredTwice(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.Streams.DuplicateWindow = time.Second })
	env.EnableOrg(t, "acme", domain.RegionUS)
	batch := []map[string]any{
		userCreated("acme", time.Now().Add(-time.Hour), "a@example.com"),
		userCreated("acme", time.Now().Add(-time.Hour), "b@example.com"),
	}
	mustRecord(t, env, batch)
	for _, r := range record(t, env, batch) {
		if r.Status != "DUPLICATE" {
			t.Fatalf("re-sent within the window: %+v", r)
		}
	}
	// Past the window JetStream accepts the ids again; the read model must
	// not. Each id counts once its re-send is taken, whichever call that is.
	taken := make([]bool, len(batch))
	waitFor(t, 10*time.Second, "JetStream taking the ids again after its window", func() bool {
		all := true
		for i, r := range record(t, env, batch) {
			taken[i] = taken[i] || r.Status == "RECORDED"
			all = all && taken[i]
		}
		return all
	})
	// The same id twice in one batch is stored once too.
	dup := userCreated("acme", time.Now().Add(-time.Hour), "c@example.com")
	res := record(t, env, []map[string]any{dup, dup})
	if res[0].Status != "RECORDED" || res[1].Status != "DUPLICATE" {
		t.Fatalf("same id twice in a batch: %+v", res)
	}
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"types": []string{"USER_CREATED"}}, 50, ""); c.TotalCount != 3 {
		t.Fatalf("read model holds %d events, want 3: %v", c.TotalCount, c.ids())
	}
}

func TestNATSIngest(t *testing.T) {
	env := testenv.Start(t, testenv.WithNATSIngest())
	env.EnableOrg(t, "acme", domain.RegionUS)
	nc := env.NATSIngest(t)
	token := "Bearer " + testenv.ServiceToken(t)
	body, _ := json.Marshal(map[string]any{"events": []map[string]any{
		userCreated("acme", time.Now().Add(-time.Minute), "nats@example.com"),
		ev("acme", "USER_LOGOUT", "INSIGHT_IDR", time.Now(), map[string]any{"userId": "u1"}, nil),
		ev("acme", "USER_LOGOUT", "PLATFORM", time.Now(), map[string]any{}, nil),
	}})
	reply, _ := natsRecord(t, nc, "auditlog.ingest.PLATFORM", token, body)
	if reply.Error != nil || len(reply.Results) != 3 {
		t.Fatalf("reply: %+v", reply)
	}
	if reply.Results[0].Status != ingest.Recorded ||
		reply.Results[1].Status != ingest.Rejected || !strings.Contains(reply.Results[1].Reason, "source") ||
		reply.Results[1].Code != domain.CodeForbidden ||
		reply.Results[2].Status != ingest.Rejected || !strings.Contains(reply.Results[2].Reason, "details.userId") {
		t.Fatalf("results: %+v", reply.Results)
	}
	for subject, body := range map[string]string{
		"auditlog.ingest.PLATFORM": `{"events": "nope"}`,
		"auditlog.ingest.NOPE":     `{"events": []}`,
	} {
		r, _ := natsRecord(t, nc, subject, token, []byte(body))
		if r.Error == nil || r.Error.Code != domain.CodeBadUserInput {
			t.Fatalf("%s %s: reply %+v", subject, body, r)
		}
	}
	env.WaitProjected(t)
	c := list(t, env, "acme", map[string]any{"search": "nats@example.com"}, 50, "")
	if c.TotalCount != 1 {
		t.Fatalf("NATS-ingested event not queryable: %+v", c)
	}
}

func TestBadInputErrors(t *testing.T) {
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, "acme")
	tests := []struct {
		name, query string
		vars        map[string]any
		code, field string
	}{
		{"first too large", `{ auditEvents(first: 501) { totalCount } }`, nil, "BAD_USER_INPUT", "first"},
		{"first negative", `{ auditEvents(first: -1) { totalCount } }`, nil, "BAD_USER_INPUT", "first"},
		{"forged cursor", `{ auditEvents(after: "bm9wZQ") { totalCount } }`, nil, "BAD_USER_INPUT", "after"},
		{"to before from", `{ auditEvents(filter: {from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z"}) { totalCount } }`, nil, "BAD_USER_INPUT", "filter.to"},
		{"unparsable time", `query($f: AuditEventFilter) { auditEvents(filter: $f) { totalCount } }`, map[string]any{"f": map[string]any{"from": "yesterday"}}, "", ""},
		{"unknown enum", `query($f: AuditEventFilter) { auditEvents(filter: $f) { totalCount } }`, map[string]any{"f": map[string]any{"types": []string{"NOPE"}}}, "", ""},
		{"too many events", recordMutation, map[string]any{"events": make([]map[string]any, 1001)}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Do(t, admin, tc.query, tc.vars)
			if len(r.Errors) == 0 {
				t.Fatalf("no error; data %s", r.Data)
			}
			e := r.Errors[0]
			if e.Code() == "" || e.Code() == "INTERNAL" {
				t.Fatalf("error without a client code: %+v", e)
			}
			if tc.code != "" && (e.Code() != tc.code || e.Extensions["field"] != tc.field) {
				t.Fatalf("got %+v, want %s on %s", e, tc.code, tc.field)
			}
		})
	}
}

func TestGraphQLOverHTTP(t *testing.T) {
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, "acme")

	// Requests that never execute: application/json (the default) answers
	// are 200, and neither media type carries a data entry (GraphQL over
	// HTTP). A body that is not JSON text is no GraphQL request: 400.
	bodies := map[string]struct {
		body     string
		notGraph bool
	}{
		"JSON parse failure":        {`{"query":"{ auditEventTypes { type } }"`, true},
		"non-UTF-8 body":            {"{\"query\":\"{ auditEventTypes { type } }\",\"operationName\":\"\xff\"}", true},
		"GraphQL parse error":       {`{"query":"{ auditEvents( }"}`, false},
		"validation failure":        {`{"query":"{ nope }"}`, false},
		"invalid variables":         {`{"query":"query($f: Int!){ auditEvents(first: $f) { totalCount } }","variables":{"f":"x"}}`, false},
		"no query":                  {`{"variables":{}}`, false},
		"variables not a map":       {`{"query":"{ auditEventTypes { type } }","variables":"x"}`, false},
		"persisted query not found": {`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + strings.Repeat("0", 64) + `"}}}`, false},
	}
	for name, b := range bodies {
		for _, tc := range []struct {
			accept, media string
			status        int
		}{
			{"application/json", "application/json", http.StatusOK},
			{"", "application/json", http.StatusOK},
			{"*/*", "application/json", http.StatusOK},
			{"application/graphql-response+json", "application/graphql-response+json", http.StatusBadRequest},
			{"application/graphql-response+json, application/json;q=0.9", "application/graphql-response+json", http.StatusBadRequest},
		} {
			if b.notGraph {
				tc.status = http.StatusBadRequest
			}
			req, _ := http.NewRequest(http.MethodPost, env.URL+"/query", strings.NewReader(b.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]json.RawMessage
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.media) {
				t.Errorf("%s, Accept %q: %d %s, %v", name, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), err)
			}
			if _, ok := out["data"]; ok || len(out["errors"]) == 0 {
				t.Errorf("%s, Accept %q: body %v has data or no errors", name, tc.accept, out)
			}
			if len(out["errors"]) > 4096 {
				t.Errorf("%s: an error of %d bytes", name, len(out["errors"]))
			}
		}
	}

	get := func(query string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/query?query="+url.QueryEscape(query), nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get(`{ auditEventTypes { type } }`); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET query: %d", resp.StatusCode)
	}
	if resp := get(`mutation { disableAuditLog { enabled } }`); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET mutation: %d, want 405", resp.StatusCode)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/": 200} {
		resp, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
}

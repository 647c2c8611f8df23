package server_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// streamIDs reads every event of org stored in region's stream.
func streamIDs(t *testing.T, env *testenv.Env, region domain.Region, org string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := env.JetStream()
	s, err := js.Stream(ctx, natsx.AuditStream(region))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(natsx.OrgSubjects(region, org)))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	if n == 0 {
		return ids
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{natsx.OrgSubjects(region, org)}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(int(n), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var e domain.Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatal(err)
		}
		ids[e.ID] = true
	}
	if uint64(len(ids)) != n {
		t.Fatalf("read %d of %d messages", len(ids), n)
	}
	return ids
}

type settingsOut struct {
	Enabled   bool
	Region    *string
	Version   int
	UpdatedBy *struct{ ID, Email string }
}

func settingsMutation(t *testing.T, env *testenv.Env, token, mutation string, vars map[string]any) (settingsOut, testenv.Response) {
	t.Helper()
	r := env.Do(t, token, mutation, vars)
	var out map[string]settingsOut
	if len(r.Errors) == 0 {
		r.MustData(t, &out)
	}
	for _, v := range out {
		return v, r
	}
	return settingsOut{}, r
}

const (
	enable  = `mutation($r: Region!) { enableAuditLog(region: $r) { enabled region version updatedBy { id email } } }`
	disable = `mutation { disableAuditLog { enabled region version updatedBy { id email } } }`
)

func TestOptInOptOutLifecycle(t *testing.T) {
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, "acme")
	at := time.Now().Add(-time.Minute)

	s, _ := settingsMutation(t, env, admin, `{ auditLogSettings { enabled region version } }`, nil)
	if s.Enabled || s.Region != nil {
		t.Fatalf("before opt-in: %+v", s)
	}
	if r := record(t, env, []map[string]any{userCreated("acme", at, "early@example.com")}); r[0].Status != "DROPPED_DISABLED" {
		t.Fatalf("before opt-in: %+v", r[0])
	}

	s, _ = settingsMutation(t, env, admin, enable, map[string]any{"r": "US"})
	if !s.Enabled || *s.Region != "US" || s.UpdatedBy.Email != "ada@acme.example" {
		t.Fatalf("opt-in: %+v", s)
	}
	again, _ := settingsMutation(t, env, admin, enable, map[string]any{"r": "US"})
	if again.Version != s.Version {
		t.Fatalf("enabling twice recorded a change: %d -> %d", s.Version, again.Version)
	}
	kept := userCreated("acme", at, "kept@example.com")
	mustRecord(t, env, []map[string]any{kept})

	if s, _ = settingsMutation(t, env, admin, disable, nil); s.Enabled || *s.Region != "US" {
		t.Fatalf("opt-out: %+v", s)
	}
	dropped := userCreated("acme", at, "dropped@example.com")
	if r := record(t, env, []map[string]any{dropped}); r[0].Status != "DROPPED_DISABLED" {
		t.Fatalf("after opt-out: %+v", r[0])
	}
	_, r := settingsMutation(t, env, admin, enable, map[string]any{"r": "EU"})
	if r.ErrorCode(t) != "REGION_IMMUTABLE" {
		t.Fatalf("other region: %+v", r.Errors)
	}
	if s, _ = settingsMutation(t, env, admin, enable, map[string]any{"r": "US"}); !s.Enabled {
		t.Fatalf("re-opt-in: %+v", s)
	}
	resumed := userCreated("acme", at, "resumed@example.com")
	mustRecord(t, env, []map[string]any{resumed})
	env.WaitProjected(t)

	for _, region := range domain.Regions {
		ids := streamIDs(t, env, region, "acme")
		if ids[dropped["id"].(string)] {
			t.Fatalf("dropped event stored in AUDIT_%s", region)
		}
		if region != domain.RegionUS && len(ids) > 0 {
			t.Fatalf("acme's events in AUDIT_%s", region)
		}
	}
	c := list(t, env, "acme", nil, 50, "")
	var types []string
	for _, e := range c.Edges {
		types = append(types, e.Node.Type)
	}
	want := []string{"AUDIT_LOG_OPT_IN", "AUDIT_LOG_OPT_OUT", "AUDIT_LOG_OPT_IN", "USER_CREATED", "USER_CREATED"}
	if len(types) != len(want) {
		t.Fatalf("log holds %v, want %v", types, want)
	}
	got := map[string]int{}
	for _, ty := range types {
		got[ty]++
	}
	if got["AUDIT_LOG_OPT_IN"] != 2 || got["AUDIT_LOG_OPT_OUT"] != 1 || got["USER_CREATED"] != 2 {
		t.Fatalf("log holds %v", types)
	}
	for _, e := range c.Edges {
		if e.Node.ID == dropped["id"] {
			t.Fatal("dropped event in the read model")
		}
	}
	// The opt events read in order, oldest first, as a consistent history.
	h := list(t, env, "acme", map[string]any{"types": []string{"AUDIT_LOG_OPT_IN", "AUDIT_LOG_OPT_OUT"}}, 50, "")
	if h.Edges[0].Node.Type != "AUDIT_LOG_OPT_IN" || h.Edges[1].Node.Type != "AUDIT_LOG_OPT_OUT" || h.Edges[2].Node.Type != "AUDIT_LOG_OPT_IN" {
		t.Fatalf("opt history out of order: %+v", h.ids())
	}
}

func TestConcurrentTogglesStayConsistent(t *testing.T) {
	env := testenv.Start(t)
	admins := []string{
		testenv.Token(t, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:a"}, Org: "acme", Kind: "user", Roles: []string{"ADMIN"}}),
		testenv.Token(t, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:b"}, Org: "acme", Kind: "user", Roles: []string{"ADMIN"}}),
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			q, vars := enable, map[string]any{"r": "US"}
			if i%2 == 1 {
				q, vars = disable, nil
			}
			r := env.Do(t, admins[i%2], q, vars)
			if len(r.Errors) > 0 && r.Errors[0].Code() != "CONFLICT" {
				t.Errorf("toggle %d: %+v", i, r.Errors)
			}
		})
	}
	wg.Wait()
	env.WaitProjected(t)

	// The control stream alternates strictly: each change was decided on the
	// state the one before it left.
	ctx := context.Background()
	s, err := env.JetStream().Stream(ctx, natsx.ControlStream)
	if err != nil {
		t.Fatal(err)
	}
	var changes []domain.EventType
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var c domain.SettingsChange
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c.Type)
	}
	if len(changes) == 0 || changes[0] != domain.TypeAuditLogOptIn {
		t.Fatalf("changes %v", changes)
	}
	for i := 1; i < len(changes); i++ {
		if changes[i] == changes[i-1] {
			t.Fatalf("two %s in a row: %v", changes[i], changes)
		}
	}
	// The org's log shows the same sequence, and the settings agree with it.
	h := list(t, env, "acme", map[string]any{"types": []string{"AUDIT_LOG_OPT_IN", "AUDIT_LOG_OPT_OUT"}}, 50, "")
	if len(h.Edges) != len(changes) {
		t.Fatalf("log has %d opt events, stream %d", len(h.Edges), len(changes))
	}
	st, _ := settingsMutation(t, env, admins[0], `{ auditLogSettings { enabled region version } }`, nil)
	if st.Enabled != (changes[len(changes)-1] == domain.TypeAuditLogOptIn) || st.Version != len(changes) {
		t.Fatalf("settings %+v after %v", st, changes)
	}
}

func TestRegionalResidency(t *testing.T) {
	euDB := testenv.Postgres(t)
	env := testenv.Start(t, func(c *server.Config) {
		// Empty, not the migrated template: EU's tables must not appear here.
		c.DatabaseURL = testenv.Postgres(t)
		c.RegionDatabaseURLs = map[domain.Region]string{domain.RegionEU: euDB}
	})
	env.EnableOrg(t, "bier", domain.RegionEU)
	env.EnableOrg(t, "acme", domain.RegionUS)
	e := userCreated("bier", time.Now().Add(-time.Minute), "hans@bier.example")
	mustRecord(t, env, []map[string]any{e, userCreated("acme", time.Now().Add(-time.Minute), "ann@acme.example")})
	env.WaitProjected(t)

	id := e["id"].(string)
	for _, r := range domain.Regions {
		has := streamIDs(t, env, r, "bier")[id]
		if has != (r == domain.RegionEU) {
			t.Fatalf("event in AUDIT_%s: %v", r, has)
		}
	}
	ctx := context.Background()
	count := func(url, query string) int {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, query, "bier").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(euDB, `SELECT count(*) FROM audit_eu.events WHERE org_id = $1`); n != 2 { // opt-in + user
		t.Fatalf("EU store holds %d of bier's events, want 2", n)
	}
	for _, r := range domain.Regions {
		if r == domain.RegionEU {
			continue
		}
		if n := count(env.DBURL, `SELECT count(*) FROM audit_`+r.Lower()+`.events WHERE org_id = $1`); n != 0 {
			t.Fatalf("%s store holds %d of bier's events", r, n)
		}
	}
	var exists bool
	conn, _ := pgx.Connect(ctx, env.DBURL)
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT to_regclass('audit_eu.events') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("EU tables exist in the default database (%v)", err)
	}
	if c := list(t, env, "bier", nil, 10, ""); c.TotalCount != 2 {
		t.Fatalf("bier reads %d events", c.TotalCount)
	}
}

func TestTenantIsolation(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "orga", domain.RegionUS)
	env.EnableOrg(t, "orgb", domain.RegionUS)
	at := time.Now().Add(-time.Hour)
	secretB := ev("orgb", "POLICY_UPDATED", "INSIGHT_VM", at, map[string]any{"policyId": "pb", "policyName": "zanzibar-policy",
		"changes": []any{map[string]any{"field": "x", "before": 1, "after": 2}}},
		map[string]any{"target": map[string]any{"kind": "POLICY", "id": "pb"},
			"actor": map[string]any{"kind": "USER", "id": "u-bob", "email": "bob@orgb.example"}})
	mustRecord(t, env, []map[string]any{secretB, userCreated("orga", at, "amy@orga.example")})
	env.WaitProjected(t)

	adminA := testenv.AdminToken(t, "orga")
	b := list(t, env, "orgb", nil, 1, "")
	if len(b.Edges) != 1 || !b.PageInfo.HasNextPage {
		t.Fatalf("orgb setup: %+v", b)
	}
	cursorB := b.Edges[0].Cursor
	aIDs := map[string]bool{}
	for _, id := range list(t, env, "orga", nil, 50, "").ids() {
		aIDs[id] = true
	}
	isolated := func(name string, c connection) {
		t.Helper()
		for _, e := range c.Edges {
			if !aIDs[e.Node.ID] {
				t.Fatalf("%s: org A sees %s (%s)", name, e.Node.ID, e.Node.Type)
			}
		}
	}
	for name, filter := range map[string]map[string]any{
		"all":      nil,
		"search":   {"search": "zanzibar"},
		"actor":    {"actorId": "u-bob"},
		"source":   {"sources": []string{"INSIGHT_VM"}},
		"type":     {"types": []string{"POLICY_UPDATED"}},
		"category": {"categories": []string{"POLICY"}},
	} {
		c := list(t, env, "orga", filter, 50, "")
		isolated(name, c)
		withCursor := list(t, env, "orga", filter, 50, cursorB)
		isolated(name+" with B's cursor", withCursor)
		if name != "all" && (len(c.Edges) != 0 || c.TotalCount != 0) {
			t.Fatalf("%s: org A sees %d events / total %d", name, len(c.Edges), c.TotalCount)
		}
	}
	var one struct{ AuditEvent *node }
	env.Do(t, adminA, `query($id: ID!) { auditEvent(id: $id) { id } }`, map[string]any{"id": secretB["id"]}).MustData(t, &one)
	if one.AuditEvent != nil {
		t.Fatal("auditEvent returned org B's event to org A")
	}
	var hist struct{ ResourceHistory connection }
	env.Do(t, adminA, `{ resourceHistory(kind: "POLICY", id: "pb") { totalCount edges { node { id } } } }`, nil).MustData(t, &hist)
	if hist.ResourceHistory.TotalCount != 0 || len(hist.ResourceHistory.Edges) != 0 {
		t.Fatalf("resourceHistory leaks: %+v", hist.ResourceHistory)
	}
	s, _ := settingsMutation(t, env, adminA, `{ auditLogSettings { enabled region version updatedBy { id email } } }`, nil)
	if s.UpdatedBy == nil || s.UpdatedBy.Email != "ada@orga.example" {
		t.Fatalf("settings of A show %+v", s)
	}
}

func TestAuthorization(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	user := testenv.Token(t, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:u"}, Org: "acme", Kind: "user", Roles: []string{"USER"}})
	idrOnly := testenv.Token(t, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "service:idr"}, Kind: "service",
		Sources: []string{"INSIGHT_IDR"}, Orgs: []string{"acme"}})
	expired, _ := auth.Mint(testenv.Secret, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:a"}, Org: "acme", Kind: "user", Roles: []string{"ADMIN"}},
		time.Minute, time.Now().Add(-time.Hour))
	forged, _ := auth.Mint([]byte("not-the-secret"), auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:a"}, Org: "acme", Kind: "user", Roles: []string{"ADMIN"}},
		time.Hour, time.Now())
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:a",
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Org: "acme", Kind: "user", Roles: []string{"ADMIN"}}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	read := `{ auditEvents { totalCount } }`
	tests := []struct {
		name, token, query, code string
	}{
		{"no token", "", read, "UNAUTHENTICATED"},
		{"expired", expired, read, "UNAUTHENTICATED"},
		{"forged", forged, read, "UNAUTHENTICATED"},
		{"alg none", none, read, "UNAUTHENTICATED"},
		{"garbage", "abc.def.ghi", read, "UNAUTHENTICATED"},
		{"user reads", user, read, "FORBIDDEN"},
		{"user reads settings", user, `{ auditLogSettings { enabled } }`, "FORBIDDEN"},
		{"user opts out", user, disable, "FORBIDDEN"},
		{"service reads", idrOnly, read, "FORBIDDEN"},
		{"service reads one", idrOnly, `{ auditEvent(id: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9") { id } }`, "FORBIDDEN"},
		{"service changes settings", idrOnly, disable, "FORBIDDEN"},
		{"admin records", testenv.AdminToken(t, "acme"), recordMutation, "FORBIDDEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]any{"events": []map[string]any{}}
			r := env.Do(t, tc.token, tc.query, vars)
			if got := r.ErrorCode(t); got != tc.code {
				t.Fatalf("got %s (%+v), want %s", got, r.Errors, tc.code)
			}
		})
	}

	// A service records only for its sources and orgs; others are rejected
	// one by one, not the whole batch.
	at := time.Now().Add(-time.Minute)
	r := env.Do(t, idrOnly, recordMutation, map[string]any{"events": []map[string]any{
		ev("acme", "USER_LOGOUT", "INSIGHT_IDR", at, map[string]any{"userId": "u"}, nil),
		ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, nil),
		ev("globex", "USER_LOGOUT", "INSIGHT_IDR", at, map[string]any{"userId": "u"}, nil),
	}})
	var out struct {
		RecordAuditEvents struct{ Results []recordResult }
	}
	r.MustData(t, &out)
	res := out.RecordAuditEvents.Results
	if res[0].Status != "RECORDED" || res[1].Status != "REJECTED" || res[2].Status != "REJECTED" {
		t.Fatalf("results %+v", res)
	}
}

func TestRefusedSettingsChangeIsRecorded(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	user := testenv.Token(t, auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "user:mallory"}, Org: "acme", Kind: "user",
		Roles: []string{"USER"}, Name: "Mallory", Email: "mallory@acme.example"})
	for range 3 {
		if r := env.Do(t, user, disable, nil); r.ErrorCode(t) != "FORBIDDEN" {
			t.Fatalf("user disabled the log: %+v", r)
		}
	}
	env.WaitProjected(t)
	c := list(t, env, "acme", map[string]any{"types": []string{"AUDIT_LOG_SETTINGS_DENIED"}}, 50, "")
	// Repeats within a minute collapse into one event; a minute boundary may
	// fall between the attempts and split them in two.
	if len(c.Edges) < 1 || len(c.Edges) > 2 {
		t.Fatalf("%d denial events, want 1 (2 across a minute boundary)", len(c.Edges))
	}
	d := c.Edges[0].Node
	var details struct{ Action string }
	if err := json.Unmarshal(d.Details, &details); err != nil {
		t.Fatal(err)
	}
	if d.Actor.Email != "mallory@acme.example" || details.Action != "disableAuditLog" || d.Category != "AUDIT_LOG" {
		t.Fatalf("denial event %+v details %s", d, d.Details)
	}
	if s, _ := settingsMutation(t, env, testenv.AdminToken(t, "acme"), `{ auditLogSettings { enabled } }`, nil); !s.Enabled {
		t.Fatal("log disabled by a refused user")
	}
}

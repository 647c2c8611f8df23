package server_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

func seed(t *testing.T, env *testenv.Env, org string, n int) {
	t.Helper()
	base := time.Now().Add(-2 * time.Hour)
	for start := 0; start < n; start += 500 {
		var batch []map[string]any
		for i := start; i < min(n, start+500); i++ {
			batch = append(batch, ev(org, "USER_LOGOUT", "PLATFORM", base.Add(time.Duration(i)*time.Second),
				map[string]any{"userId": "u1"}, nil))
		}
		mustRecord(t, env, batch)
	}
}

func TestRebuildReproducesQueryResults(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionEU)
	seed(t, env, "acme", 700)
	seed(t, env, "globex", 30)
	env.WaitProjected(t)
	snapshot := func(e *testenv.Env) [][]byte {
		var out [][]byte
		for _, org := range []string{"acme", "globex"} {
			// The snapshot's own reads are recorded between the two, so
			// they are left out.
			vars := map[string]any{"types": readlessTypes()}
			for _, q := range []string{
				`query($types: [AuditEventType!]) { auditEvents(first: 350, filter: {types: $types}) { totalCount edges { cursor node { ` + nodeFields + ` } } } }`,
				`query($types: [AuditEventType!]) { auditEvents(first: 20, filter: {search: "logged", types: $types}) { totalCount edges { node { id recordedAt } } } }`,
				`{ auditLogSettings { enabled region version updatedBy { id } } }`,
			} {
				r := e.Do(t, testenv.AdminToken(t, org), q, vars)
				if len(r.Errors) > 0 {
					t.Fatalf("%s: %+v", q, r.Errors)
				}
				out = append(out, r.Data)
			}
		}
		return out
	}
	// The operator's partition layout outlives the rebuild of the control
	// schema it is kept in.
	if _, err := env.SetProjectionPartitions(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	before := snapshot(env)
	rebuilt := env.Rebuild(t)
	after := snapshot(rebuilt)
	if n, err := rebuilt.ProjectionPartitions(context.Background()); err != nil || n != 4 {
		t.Fatalf("layout after rebuild: %d (%v), want 4", n, err)
	}
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("query %d differs after rebuild:\nbefore %.300s\nafter  %.300s", i, before[i], after[i])
		}
	}
}

func TestGracefulShutdownLosesNothing(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	seed(t, env, "acme", 2000)
	// Stop while the projector is likely mid-stream; what it committed is
	// acked, the rest is projected by the next instance.
	if err := env.Stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	next := testenv.StartConfig(t, env.Config)
	next.WaitProjected(t)
	c := list(t, next, "acme", map[string]any{"types": []string{"USER_LOGOUT"}}, 1, "")
	if c.TotalCount != 2000 {
		t.Fatalf("%d events after restart, want 2000", c.TotalCount)
	}
}

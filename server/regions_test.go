package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

// waitFor polls cond until it holds or the deadline passes, and says how
// long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not after %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// One region whose checkpoints cannot be written is reported and retried,
// while another region's checkpoints go on being issued; once the region
// is whole again, its checkpoints catch up without a restart.
func TestOneRegionsFailureLeavesTheOthersCheckpointed(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.CheckpointEvery = 100 * time.Millisecond })
	ctx := context.Background()
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionEU)
	pool := env.EventStore(domain.RegionUS).Pool() // one database holds both regions' schemas
	mustExec(t, pool, `ALTER TABLE audit_us.checkpoints RENAME TO checkpoints_away`)

	now := time.Now().Add(-time.Minute)
	for i, r := range record(t, env, []map[string]any{
		userCreated("acme", now, "a@acme.example"), userCreated("globex", now, "b@globex.example"),
	}) {
		if r.Status != "RECORDED" {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	env.WaitProjected(t)
	checkpoints := func(schema, org string) int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+` WHERE org_id = $1`, org).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const usFailures = "auditlog_region_task_failures_total{region=US}{task=checkpoints}"
	took := waitFor(t, 10*time.Second, "EU checkpointed and US's failures counted", func() bool {
		return checkpoints("audit_eu.checkpoints", "globex") > 0 && scrape(t, env)[usFailures] >= 2
	})
	m := scrape(t, env)
	if eu := m["auditlog_region_task_failures_total{region=EU}{task=checkpoints}"]; eu != 0 {
		t.Fatalf("EU counted %v failures", eu)
	}
	t.Logf("EU checkpointed and US failing visibly after %s (%v US failures)", took.Round(time.Millisecond), m[usFailures])

	// On demand too: the call reports US and still serves EU.
	if err := env.IssueCheckpoints(ctx); err == nil {
		t.Fatal("IssueCheckpoints hid US's failure")
	}

	mustExec(t, pool, `ALTER TABLE audit_us.checkpoints_away RENAME TO checkpoints`)
	took = waitFor(t, 10*time.Second, "US checkpointed after the repair", func() bool {
		return checkpoints("audit_us.checkpoints", "acme") > 0
	})
	t.Logf("US checkpointed %s after its table came back", took.Round(time.Millisecond))
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/measure"
	"github.com/auditlog/auditlog/internal/synthetic"
)

// searchOrg is the one large tenant of the search part.
const searchOrg = "bigcorp"

// searchQueries is how many times each search is timed: 30-odd searches
// of up to the 80 ms budget each keep the part within minutes.
const searchQueries = 40

// searchLatency (part "search") seeds one org of 3M events over 90 days
// among 50 orgs sharing another 1M (× scale), all by SQL, and times the
// first page of auditEvents for every qualifier, free text of 2, 3 and 10
// characters that matches often, rarely and never, a network, a negation
// and an OR of three terms, noting how many answers were complete (the
// rest stopped at the search budget with a cursor to continue).
func (b *bench) searchLatency(ctx context.Context, rep *measure.Report) error {
	orgs := []string{searchOrg}
	for i := range b.orgs {
		orgs = append(orgs, fmt.Sprintf("tenant-%03d", i))
	}
	for _, org := range orgs {
		if err := b.enable(ctx, org); err != nil {
			return err
		}
	}
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	big, shared := int(3_000_000*b.scale), int(1_000_000*b.scale)
	st := b.srv.EventStore(domain.RegionUS)
	start := time.Now()
	if err := synthetic.SeedOrg(ctx, st, big, searchOrg, 90); err != nil {
		return err
	}
	if err := synthetic.Seed(ctx, st, shared, b.orgs, "tenant-"); err != nil {
		return err
	}
	if _, err := st.Pool().Exec(ctx, "VACUUM (ANALYZE) "+st.Schema()+".events"); err != nil {
		return err
	}
	rep.Add("search: seeded rows (synthetic, via SQL)", float64(big+shared), "rows",
		fmt.Sprintf("%s %d over 90 days, %d orgs sharing %d, %.0fs", searchOrg, big, b.orgs, shared, time.Since(start).Seconds()))

	token := b.admin(searchOrg)
	tenDays := time.Now().AddDate(0, 0, -10).UTC().Format(time.DateOnly)
	var anID string
	if err := st.Pool().QueryRow(ctx, "SELECT id FROM "+st.Schema()+".events WHERE org_id = $1 AND occurred_at < now() - interval '45 days' LIMIT 1", searchOrg).Scan(&anID); err != nil {
		return err
	}
	searches := []struct{ name, query string }{
		{"type", "type:USER_CREATED"},
		{"category", "category:POLICY"},
		{"source", "source:INSIGHT_VM"},
		{"actor", "actor:u57@example.com"},
		{"actor.id", "actor.id:u57"},
		{"actor.name", `actor.name:"User u57"`},
		{"actor.email", "actor.email:u57@example.com"},
		{"actor.kind", "actor.kind:USER"},
		{"target", "target:target-42"},
		{"target.kind", "target.kind:USER"},
		{"target.id", "target.id:target-42"},
		{"target.name (never)", "target.name:nobody"},
		{"ip (address)", "ip:10.1.2.3"},
		{"ip CIDR /24 (rare)", "ip:10.1.2.0/24"},
		{"ip CIDR /8 (often)", "ip:10.0.0.0/8"},
		{"ip CIDR (never)", "ip:192.168.0.0/16"},
		{"occurred", "occurred:<=" + tenDays},
		{"id", "id:" + anID},
		{"request (never)", "request:req-1"},
		{"agent (never)", "agent:*curl*"},
		{"details.userId (indexed)", "details.userId:target-42"},
		{"details.policyId", "details.policyId:p-7"},
		{"text 2 chars often", "u5"},
		{"text 2 chars rare", "qz"},
		{"text 2 chars never", "zq"},
		{"text 3 chars often", "exa"},
		{"text 3 chars rare", "qzk"},
		{"text 3 chars never", "zqx"},
		{"text 10 chars often", "example.co"},
		{"text 10 chars rare", "qzk-inside"},
		{"text 10 chars never", "zqxjkvbwpm"},
		{"negation", "-source:PLATFORM"},
		{"negation (rare remains)", "-actor.kind:USER"},
		{"OR of three", "actor.id:u1 OR actor.id:u2 OR type:POLICY_DELETED"},
		{"wildcard", "actor:u57*"},
	}
	const q = `query($f: AuditEventFilter) { auditEvents(filter: $f, first: 50) {
		complete searchedThrough pageInfo { hasNextPage endCursor }
		edges { cursor node { id type occurredAt source description actor { name email } } } } }`
	fmt.Printf("\n%-28s %-44s %8s %8s %9s %6s\n", "search", "query", "p50 ms", "p95 ms", "complete", "found")
	for _, s := range searches {
		vars := map[string]any{"f": map[string]any{"query": s.query}}
		complete, found := 0, 0
		lat := make([]time.Duration, 0, searchQueries)
		for i := range searchQueries + 1 {
			t0 := time.Now()
			data, err := b.gql(ctx, token, q, vars)
			if err != nil {
				return fmt.Errorf("search %s: %w", s.name, err)
			}
			d := time.Since(t0)
			if i == 0 {
				continue // warm-up
			}
			lat = append(lat, d)
			var out struct {
				AuditEvents struct {
					Complete bool
					Edges    []json.RawMessage
				}
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return err
			}
			if out.AuditEvents.Complete {
				complete++
			}
			found = len(out.AuditEvents.Edges)
		}
		measure.SortDurations(lat)
		p50, p95 := measure.Percentile(lat, 0.50), measure.Percentile(lat, 0.95)
		fmt.Printf("%-28s %-44s %8.1f %8.1f %8d%% %6d\n", s.name, trunc(s.query, 44), p50, p95, 100*complete/searchQueries, found)
		rep.Figures = append(rep.Figures,
			measure.Figure{Name: "search " + s.name + " p50", Value: p50, Unit: "ms", Note: s.query},
			measure.Figure{Name: "search " + s.name + " p95", Value: p95, Unit: "ms",
				Note: fmt.Sprintf("%d%% complete, %d on the first page", 100*complete/searchQueries, found)})
	}
	fmt.Println()
	return nil
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

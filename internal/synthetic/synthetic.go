// Package synthetic fills a region's read model with generated events
// straight through SQL, for benchmarks and query-plan tests that need
// millions of rows in seconds. The rows bypass the log: a rebuild drops them.
package synthetic

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditlog/auditlog/domain"
)

// Store is the region read model to fill (a *readmodel.EventStore).
type Store interface {
	Pool() *pgxpool.Pool
	Schema() string
}

// Seed inserts n synthetic events spread over orgs organizations
// (prefix000, prefix001, …), every catalog type and source, 1,000 actors and
// the last 30 days, into s with one INSERT … SELECT, and analyzes the table.
//
// The rows vary enough for searches that match often, rarely and never:
//   - actors u0 … u999 (actor.id, name "User uN", email uN@example.com),
//     except every 5,000th event (i mod 5000 = 2500), whose actor is
//     qzk-insider: the rare actor, and the rare words "qz", "qzk";
//   - IP addresses 10.a.b.c across 10.0.0.0/8 from the event's number, so a
//     /24 such as 10.1.2.0/24 holds one event in 65,536 and 192.168.0.0/16
//     none; every 1,000th event has an IPv6 address in 2001:db8::/32 and
//     every 100th none;
//   - details userId target-(i mod 5000), userEmail of one of 20,000
//     people, policyId p-(i mod 997);
//   - "needle-rare" in the search text of every 100,000th event.
//
// Nothing matches the words "zq", "zqx" or "zqxjkvbwpm".
func Seed(ctx context.Context, s Store, n, orgs int, prefix string) error {
	if !domain.ValidOrgID(prefix + "000") {
		return fmt.Errorf("seed: %q does not make valid org ids", prefix)
	}
	org := fmt.Sprintf("'%s' || lpad((i %% %d)::text, 3, '0')", prefix, orgs)
	return seed(ctx, s, n, org, 30)
}

// SeedOrg inserts n synthetic events of the one organization org, varied
// as Seed's, over the last days days (creating the months they need), for
// benchmarks of one large tenant among many. Its ids do not collide with
// Seed's, since ids are unique per organization.
func SeedOrg(ctx context.Context, s Store, n int, org string, days int) error {
	if !domain.ValidOrgID(org) {
		return fmt.Errorf("seed: %q is not a valid org id", org)
	}
	_, err := s.Pool().Exec(ctx, fmt.Sprintf("SELECT %s.ensure_partitions(now() - make_interval(days => %d), now())", s.Schema(), days))
	if err != nil {
		return fmt.Errorf("seed: partitions: %w", err)
	}
	return seed(ctx, s, n, "'"+org+"'", days)
}

func seed(ctx context.Context, s Store, n int, orgExpr string, days int) error {
	var types, cats []string
	for _, t := range domain.Catalog() {
		types = append(types, "'"+string(t.Type)+"'")
		cats = append(cats, "'"+string(t.Category)+"'")
	}
	var sources []string
	for _, src := range domain.Sources {
		sources = append(sources, "'"+string(src)+"'")
	}
	sql := fmt.Sprintf(`
		WITH g AS (
			SELECT i,
			       %[9]s AS org_id,
			       lpad(to_hex(i), 26, '0') AS id,
			       now() - (i::float8 / %[1]d) * make_interval(days => %[2]d) AS at,
			       (i * 7919) %% %[3]d AS t,
			       CASE WHEN i %% 5000 = 2500 THEN 'qzk-insider' ELSE 'u' || (i %% 1000) END AS actor
			FROM generate_series(1::bigint, %[1]d) i
		), ins AS (
			INSERT INTO %[4]s.event_ids (org_id, id, occurred_at) SELECT org_id, id, at FROM g
		)
		INSERT INTO %[4]s.events (org_id, id, occurred_at, recorded_at, source, type, category,
			actor_kind, actor_id, actor_name, actor_email, target_kind, target_id, ip_address, details, search_text, stream_seq)
		SELECT org_id, id, at, at, (ARRAY[%[5]s])[1 + i %% %[6]d], (ARRAY[%[7]s])[1 + t], (ARRAY[%[8]s])[1 + t],
			'USER', actor, 'User ' || actor, actor || '@example.com', 'USER', 'target-' || (i %% 5000),
			CASE WHEN i %% 100 = 0 THEN NULL
			     WHEN i %% 1000 = 1 THEN '2001:db8::' || to_hex(i %% 65536)
			     ELSE '10.' || ((i >> 16) %% 256) || '.' || ((i >> 8) %% 256) || '.' || (i %% 256) END,
			jsonb_build_object('userId', 'target-' || (i %% 5000), 'userEmail', 'p' || (i %% 20000) || '@example.org',
				'policyId', 'p-' || (i %% 997)),
			lower('User ' || actor || E'\n' || actor || '@example.com' || E'\n' || actor ||
			      E'\nuser\ntarget-' || (i %% 5000) || E'\np' || (i %% 20000) || '@example.org' || E'\np-' || (i %% 997) ||
			      CASE WHEN i %% 100000 = 0 THEN E'\nneedle-rare' ELSE '' END),
			i
		FROM g`,
		n, days, len(types), s.Schema(), strings.Join(sources, ","), len(sources), strings.Join(types, ","), strings.Join(cats, ","),
		orgExpr)
	if _, err := s.Pool().Exec(ctx, sql); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE "+s.Schema()+".events"); err != nil {
		return fmt.Errorf("seed: analyze: %w", err)
	}
	return nil
}

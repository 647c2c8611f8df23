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
func Seed(ctx context.Context, s Store, n, orgs int, prefix string) error {
	if !domain.ValidOrgID(prefix + "000") {
		return fmt.Errorf("seed: %q does not make valid org ids", prefix)
	}
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
			       %[9]s || lpad((i %% %[2]d)::text, 3, '0') AS org_id,
			       lpad(to_hex(i), 26, '0') AS id,
			       now() - (i::float8 / %[1]d) * interval '30 days' AS at,
			       (i * 7919) %% %[3]d AS t,
			       'u' || (i %% 1000) AS actor
			FROM generate_series(1::bigint, %[1]d) i
		), ins AS (
			INSERT INTO %[4]s.event_ids (org_id, id, occurred_at) SELECT org_id, id, at FROM g
		)
		INSERT INTO %[4]s.events (org_id, id, occurred_at, recorded_at, source, type, category,
			actor_kind, actor_id, actor_name, actor_email, target_kind, target_id, ip_address, details, search_text, stream_seq)
		SELECT org_id, id, at, at, (ARRAY[%[5]s])[1 + i %% %[6]d], (ARRAY[%[7]s])[1 + t], (ARRAY[%[8]s])[1 + t],
			'USER', actor, 'User ' || actor, actor || '@example.com', 'USER', 'target-' || (i %% 5000), '10.0.0.1',
			jsonb_build_object('userId', 'target-' || (i %% 5000)),
			lower('User ' || actor || E'\n' || actor || '@example.com' || E'\n' || actor ||
			      E'\nuser\ntarget-' || (i %% 5000) || CASE WHEN i %% 100000 = 0 THEN E'\nneedle-rare' ELSE '' END),
			i
		FROM g`,
		n, orgs, len(types), s.Schema(), strings.Join(sources, ","), len(sources), strings.Join(types, ","), strings.Join(cats, ","),
		"'"+prefix+"'")
	if _, err := s.Pool().Exec(ctx, sql); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE "+s.Schema()+".events"); err != nil {
		return fmt.Errorf("seed: analyze: %w", err)
	}
	return nil
}

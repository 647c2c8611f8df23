package readmodel_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/internal/testenv"
	ql "github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/readmodel"
)

// TestUpgradeSplitsMonthsByOrgAndKeepsRows seeds a read model at migration
// 3, whose months are plain tables, upgrades it, and checks that every row
// is still there and that each month is now split by org.
func TestUpgradeSplitsMonthsByOrgAndKeepsRows(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t)
	if err := readmodel.MigrateTo(ctx, pool, "audit_us", "region", 3); err != nil {
		t.Fatal(err)
	}
	s := readmodel.NewEventStore(pool, "audit_us", "AUDIT_US", zerolog.Nop())
	if err := synthetic.Seed(ctx, s, 5_000, 10, "org-"); err != nil {
		t.Fatal(err)
	}
	const fingerprint = `SELECT count(*), md5(string_agg(org_id || id || occurred_at::text || search_text, ',' ORDER BY org_id, id)) FROM audit_us.events`
	var before, after struct {
		n   int
		sum string
	}
	if err := pool.QueryRow(ctx, fingerprint).Scan(&before.n, &before.sum); err != nil {
		t.Fatal(err)
	}
	// The store's queries need 006's columns, so pages before it are read in SQL.
	page := func() []string {
		rows, err := pool.Query(ctx, `SELECT id FROM audit_us.events WHERE org_id = 'org-003' ORDER BY occurred_at DESC, id DESC LIMIT 20`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	before4 := page()

	// Up to 005: 006 empties the read model on purpose, so the projector
	// re-projects the stream and builds every organization's tree.
	if err := readmodel.MigrateTo(ctx, pool, "audit_us", "region", 5); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, fingerprint).Scan(&after.n, &after.sum); err != nil {
		t.Fatal(err)
	}
	if before.n != 5_000 || after != before {
		t.Fatalf("rows changed by the upgrade: %d %s before, %d %s after", before.n, before.sum, after.n, after.sum)
	}
	if got := page(); !slices.Equal(got, before4) {
		t.Fatalf("first page changed by the upgrade:\n%v\n%v", before4, got)
	}

	// Every month is a partitioned table with 8 org-hash partitions, the
	// months created ahead included; only the default partition is plain.
	rows, err := pool.Query(ctx, `
		SELECT c.relname, c.relkind, (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit_us.events'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	months := 0
	for rows.Next() {
		var name string
		var kind byte
		var children int
		if err := rows.Scan(&name, &kind, &children); err != nil {
			t.Fatal(err)
		}
		switch {
		case name == "events_default":
			if kind != 'r' {
				t.Errorf("%s: relkind %c, want a plain table", name, kind)
			}
		case kind != 'p' || children != 8:
			t.Errorf("%s: relkind %c with %d partitions, want p with 8", name, kind, children)
		default:
			months++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if months < 4 {
		t.Fatalf("%d months, want at least the current one and 3 ahead", months)
	}

	// 006 empties the read model for the projector to project again with
	// the trees; new rows go to the split months and are found.
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_us.events`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("006 left %d rows (%v)", left, err)
	}
	m := &readModel{EventStore: s}
	e := event("org-003", time.Now(), nil)
	m.apply(t, e)
	if got := projtest.FirstPage(t, s, "org-003"); len(got) == 0 || got[0] != e.ID {
		t.Fatalf("event written after the upgrade is not first: %v", got)
	}
}

// TestUpgradeIndexesNetworksAndDetails seeds a read model at migration 9,
// upgrades it, and checks that its rows are found by a network and by the
// indexed details keys through the new indexes.
func TestUpgradeIndexesNetworksAndDetails(t *testing.T) {
	ctx := context.Background()
	pool := testenv.Pool(t)
	if err := readmodel.MigrateTo(ctx, pool, "audit_us", "region", 9); err != nil {
		t.Fatal(err)
	}
	s := readmodel.NewEventStore(pool, "audit_us", "AUDIT_US", zerolog.Nop())
	if err := synthetic.Seed(ctx, s, 20_000, 5, "org-"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var indexes int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'audit_us'
		AND indexname IN ('events_org_ip_idx', 'events_org_detail_user_id_idx', 'events_org_detail_user_email_idx')`).Scan(&indexes); err != nil || indexes != 3 {
		t.Fatalf("%d of the 3 indexes after the upgrade (%v)", indexes, err)
	}
	tests := []struct {
		query, index string
		want         string // the same condition in plain SQL
	}{
		{"ip:10.0.1.0/24", "org_id_case_idx", "ip_address LIKE '10.0.1.%'"},
		{"details.userId:target-42", "org_id_expr_occurred_at_id_idx", "details->>'userId' = 'target-42'"},
	}
	for _, tc := range tests {
		f := domain.Filter{Query: tc.query}
		plan, err := s.ExplainList(ctx, "org-002", f, readmodel.PageRequest{First: 50})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, tc.index) {
			t.Errorf("%s: the plan does not use the new index:\n%s", tc.query, plan)
		}
		var want int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_us.events WHERE org_id = 'org-002' AND `+tc.want).Scan(&want); err != nil {
			t.Fatal(err)
		}
		n, _, err := s.Count(ctx, "org-002", f)
		if err != nil || n != want || want == 0 {
			t.Errorf("%s: counted %d (%v), want %d (and more than none)", tc.query, n, err, want)
		}
	}
}

// TestMigrationSpellsTheQueryInetExpr: Postgres uses an expression index
// only for a condition on the same expression, so migration 010 must index
// exactly the text package query compares.
func TestMigrationSpellsTheQueryInetExpr(t *testing.T) {
	sql, err := os.ReadFile("migrations/region/010_search_indexes.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sql), "gist (org_id, "+ql.InetExpr()+" inet_ops)") {
		t.Fatal("010_search_indexes.sql does not index query.InetExpr()")
	}
}

package readmodel_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/integrity"
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
	pool, s := seededAt(t, 3, 5_000, 10)
	before := fingerprintRows(t, pool)
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
	if after := fingerprintRows(t, pool); before.n != 5_000 || after != before {
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
	pool, s := seededAt(t, 9, 20_000, 5)
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

// TestUpgradeTurnsTreeHashesIntoTiles builds read models in the layout of
// migration 9 (a tree_hashes row per stored hash), upgrades them, and
// checks that no event row is lost, that the roots, inclusion and
// consistency proofs the old hashes gave still verify from the tiles, that
// a tree keeps growing from them, and that a tree missing a hash stops the
// upgrade instead of being converted short.
func TestUpgradeTurnsTreeHashesIntoTiles(t *testing.T) {
	sizes := map[string]int64{"org-000": 1, "org-001": 300, "org-002": 256*256 + 700}
	tests := []struct {
		name    string
		damage  string // SQL run on the old layout before the upgrade
		wantErr bool
	}{
		{name: "whole trees"},
		{name: "a leaf hash missing", damage: fmt.Sprintf(`DELETE FROM audit_us.tree_hashes WHERE org_id = 'org-001' AND idx = %d`, tlog.StoredHashIndex(0, 17)), wantErr: true},
		{name: "a tile-level hash missing", damage: fmt.Sprintf(`DELETE FROM audit_us.tree_hashes WHERE org_id = 'org-002' AND idx = %d`, tlog.StoredHashIndex(8, 3)), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pool, s := seededAt(t, 9, 2_000, 3)
			before := fingerprintRows(t, pool)
			roots := map[string]tlog.Hash{}
			for org, size := range sizes {
				var stored []tlog.Hash
				r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
					out := make([]tlog.Hash, len(idx))
					for i, x := range idx {
						out[i] = stored[x]
					}
					return out, nil
				})
				rows := make([][]any, 0, 2*size)
				for n := range size {
					hs, err := tlog.StoredHashes(n, oldRecord(org, n), r)
					if err != nil {
						t.Fatal(err)
					}
					for _, h := range hs {
						rows = append(rows, []any{org, int64(len(stored)), h[:]})
						stored = append(stored, h)
					}
				}
				if _, err := pool.CopyFrom(ctx, pgx.Identifier{"audit_us", "tree_hashes"}, []string{"org_id", "idx", "hash"}, pgx.CopyFromRows(rows)); err != nil {
					t.Fatal(err)
				}
				if _, err := pool.Exec(ctx, `INSERT INTO audit_us.tree_size VALUES ($1, $2)`, org, size); err != nil {
					t.Fatal(err)
				}
				roots[org], _ = tlog.TreeHash(size, r)
			}
			if tc.damage != "" {
				if _, err := pool.Exec(ctx, tc.damage); err != nil {
					t.Fatal(err)
				}
			}

			var oldBytes, newBytes int64
			if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('audit_us.tree_hashes')`).Scan(&oldBytes); err != nil {
				t.Fatal(err)
			}
			err := s.Migrate(ctx)
			if tc.wantErr {
				var kept bool
				if err == nil || pool.QueryRow(ctx, `SELECT to_regclass('audit_us.tree_hashes') IS NOT NULL`).Scan(&kept) != nil || !kept {
					t.Fatalf("upgrade of a tree missing a hash: %v, tree_hashes kept %v; want an error and the table kept", err, kept)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if after := fingerprintRows(t, pool); before.n != 2_000 || after != before {
				t.Fatalf("rows changed by the upgrade: %d %s before, %d %s after", before.n, before.sum, after.n, after.sum)
			}
			var gone bool
			if err := pool.QueryRow(ctx, `SELECT to_regclass('audit_us.tree_hashes') IS NULL, pg_total_relation_size('audit_us.tree_tiles')`).Scan(&gone, &newBytes); err != nil || !gone {
				t.Fatalf("tree_hashes still there after the upgrade (%v)", err)
			}
			var leaves int64
			for _, n := range sizes {
				leaves += n
			}
			t.Logf("bytes per leaf: tree_hashes %.1f, tree_tiles %.1f", float64(oldBytes)/float64(leaves), float64(newBytes)/float64(leaves))
			for org, size := range sizes {
				root, err := integrity.TreeHash(ctx, s, org, size)
				if err != nil || root != roots[org] {
					t.Fatalf("%s: root after the upgrade %v (%v), before %v", org, root, err, roots[org])
				}
				for _, leaf := range []int64{0, size / 2, size - 1} {
					p, err := integrity.ProveRecord(ctx, s, org, size, leaf)
					if err != nil {
						t.Fatal(err)
					}
					if err := tlog.CheckRecord(p, size, root, leaf, tlog.RecordHash(oldRecord(org, leaf))); err != nil {
						t.Fatalf("%s: inclusion of leaf %d: %v", org, leaf, err)
					}
				}
			}

			// The tree grows on from its tiles, consistent with the root
			// the old layout gave.
			m := &readModel{EventStore: s}
			e := event("org-002", time.Now(), nil)
			m.apply(t, e)
			old := sizes["org-002"]
			if n, err := s.TreeSize(ctx, "org-002"); err != nil || n != old+1 {
				t.Fatalf("tree size after one more event: %d (%v), want %d", n, err, old+1)
			}
			root, err := integrity.TreeHash(ctx, s, "org-002", old+1)
			if err != nil {
				t.Fatal(err)
			}
			p, err := integrity.ProveTree(ctx, s, "org-002", old, old+1)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, old+1, root, old, roots["org-002"]); err != nil {
				t.Fatalf("the grown tree is not consistent with the upgraded one: %v", err)
			}
		})
	}
}

// oldRecord is the leaf n of org in a tree built for the upgrade test.
func oldRecord(org string, n int64) []byte { return fmt.Appendf(nil, `{"orgId":%q,"n":%d}`, org, n) }

// seededAt is a read model at region migration version, seeded by SQL
// with n events over orgs organizations.
func seededAt(t *testing.T, version int32, n, orgs int) (*pgxpool.Pool, *readmodel.EventStore) {
	t.Helper()
	ctx := context.Background()
	pool := testenv.Pool(t)
	if err := readmodel.MigrateTo(ctx, pool, "audit_us", "region", version); err != nil {
		t.Fatal(err)
	}
	s := readmodel.NewEventStore(pool, "audit_us", "AUDIT_US", zerolog.Nop())
	if err := synthetic.Seed(ctx, s, n, orgs, "org-"); err != nil {
		t.Fatal(err)
	}
	return pool, s
}

// rowsFingerprint is the number of event rows and a digest of what each
// holds, to compare before and after an upgrade.
type rowsFingerprint struct {
	n   int
	sum string
}

func fingerprintRows(t *testing.T, pool *pgxpool.Pool) rowsFingerprint {
	t.Helper()
	var f rowsFingerprint
	if err := pool.QueryRow(context.Background(), `SELECT count(*), md5(string_agg(org_id || id || occurred_at::text || search_text, ',' ORDER BY org_id, id)) FROM audit_us.events`).Scan(&f.n, &f.sum); err != nil {
		t.Fatal(err)
	}
	return f
}

package readmodel_test

import (
	"context"
	"testing"
	"time"
)

// TestWithoutIntegrityKeepsNoRecordsOrTree checks the benchmark's switch:
// a store WithoutIntegrity writes the same queryable row with no record,
// no leaf index and no tree, and a store without it writes all three.
func TestWithoutIntegrityKeepsNoRecordsOrTree(t *testing.T) {
	cases := []struct {
		name      string
		off       bool
		wantLeaf  bool
		wantTrees int64
	}{
		{"with integrity", false, true, 1},
		{"without integrity", true, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newReadModel(t)
			if c.off {
				m.EventStore = m.WithoutIntegrity()
			}
			e := event("acme", time.Now().Add(-time.Minute).UTC(), nil)
			m.apply(t, e)
			ctx := context.Background()
			var rows int
			var record, leaf bool
			err := m.Pool().QueryRow(ctx, `SELECT count(*), bool_or(record IS NOT NULL), bool_or(leaf_index IS NOT NULL)
				FROM audit_us.events WHERE org_id = 'acme' AND id = $1`, e.ID).Scan(&rows, &record, &leaf)
			if err != nil {
				t.Fatal(err)
			}
			if rows != 1 || record != c.wantLeaf || leaf != c.wantLeaf {
				t.Fatalf("rows %d, record %v, leaf index %v; want 1 row, both %v", rows, record, leaf, c.wantLeaf)
			}
			size, err := m.TreeSize(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if size != c.wantTrees {
				t.Fatalf("tree size %d, want %d", size, c.wantTrees)
			}
		})
	}
}

package readmodel_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/readmodel"
)

// TestFilterPathsUseIndexes seeds a read model and asks Postgres for the
// plan of every main filter path: none may scan a table sequentially.
func TestFilterPathsUseIndexes(t *testing.T) {
	m := newReadModel(t)
	ctx := context.Background()
	if err := synthetic.Seed(ctx, m, 60_000, 50, "org-"); err != nil {
		t.Fatal(err)
	}
	// Partitions that hold rows; scanning an empty one costs nothing.
	populated := map[string]bool{}
	rows, err := m.Pool().Query(ctx, `SELECT relname FROM pg_class WHERE relnamespace = 'audit_us'::regnamespace AND relkind = 'r' AND reltuples > 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		populated[name] = true
	}
	if len(populated) == 0 {
		t.Fatal("no populated partition")
	}
	weekAgo := time.Now().Add(-7 * 24 * time.Hour)
	dayAgo := time.Now().Add(-24 * time.Hour)
	deep := &readmodel.Cursor{OccurredAt: time.Now().Add(-20 * 24 * time.Hour), ID: "zzzzzzzzzzzzzzzzzzzzzzzzzz"}
	tests := []struct {
		name    string
		f       domain.Filter
		after   *readmodel.Cursor
		wantIdx string // an index the plan must use; empty = any index
	}{
		{"first page", domain.Filter{}, nil, "events"},
		{"deep page", domain.Filter{}, deep, "events"},
		{"source", domain.Filter{Sources: []domain.Source{domain.SourceInsightVM}}, nil, ""},
		{"type and date", domain.Filter{Types: []domain.EventType{"USER_CREATED"}, From: &weekAgo, To: &dayAgo}, nil, "type"},
		{"category", domain.Filter{Categories: []domain.Category{domain.CategoryPolicy}}, nil, ""},
		{"actor", domain.Filter{ActorID: "u42"}, nil, "actor"},
		{"rare search", domain.Filter{Search: "needle-rare"}, nil, "search"},
		{"absent short search", domain.Filter{Search: "zq"}, nil, "events"},
		{"short search", domain.Filter{Search: "u4"}, nil, ""},
		// The query language keeps to the same indexes.
		{"query type and date", domain.Filter{Query: "type:USER_CREATED occurred:" + weekAgo.UTC().Format(time.DateOnly) + ".." + dayAgo.UTC().Format(time.DateOnly)}, nil, "type"},
		{"query types", domain.Filter{Query: "type:POLICY_*"}, nil, "type"},
		{"query actor", domain.Filter{Query: "actor.id:u42"}, nil, "actor"},
		{"query rare word", domain.Filter{Query: "needle-rare"}, nil, "search"},
		{"query target", domain.Filter{Query: "target.kind:POLICY target.id:p-7"}, nil, "target"},
		// Region migration 010: networks and the common details keys.
		{"query network", domain.Filter{Query: "ip:10.1.2.0/24"}, nil, "org_id_case_idx"},
		{"query address", domain.Filter{Query: "ip:10.1.2.3"}, nil, "org_id_case_idx"},
		{"query IPv6 network", domain.Filter{Query: "ip:2001:db8::/32 type:USER_CREATED"}, nil, ""},
		{"query details userId", domain.Filter{Query: "details.userId:target-42"}, nil, "org_id_expr_occurred_at_id_idx"},
		{"query details userEmail", domain.Filter{Query: "details.userEmail:p42@example.org"}, nil, "org_id_expr_occurred_at_id_idx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := m.ExplainList(ctx, "org-007", tc.f, readmodel.PageRequest{First: 50, After: tc.after})
			if err != nil {
				t.Fatal(err)
			}
			if rel := seqScanned(plan, populated); rel != "" {
				t.Fatalf("sequential scan of %s:\n%s", rel, plan)
			}
			if !strings.Contains(plan, "Index") {
				t.Fatalf("no index used:\n%s", plan)
			}
			if tc.wantIdx != "" && !strings.Contains(plan, tc.wantIdx) {
				t.Fatalf("plan does not use an index on %s:\n%s", tc.wantIdx, plan)
			}
		})
	}
}

// seqScanned returns a populated relation the JSON plan scans sequentially.
func seqScanned(plan string, populated map[string]bool) string {
	var doc []struct{ Plan planNode }
	if err := json.Unmarshal([]byte(plan), &doc); err != nil || len(doc) == 0 {
		return "(unparsable plan)"
	}
	var walk func(n planNode) string
	walk = func(n planNode) string {
		if n.NodeType == "Seq Scan" && populated[n.Relation] {
			return n.Relation
		}
		for _, c := range n.Plans {
			if r := walk(c); r != "" {
				return r
			}
		}
		return ""
	}
	return walk(doc[0].Plan)
}

type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Plans    []planNode `json:"Plans"`
}

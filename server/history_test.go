package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

func TestPolicyChangeHistory(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	base := time.Now().Add(-time.Hour)
	target := map[string]any{"kind": "POLICY", "id": "pol-1", "name": "CIS Level 1"}
	policy := func(typ string, at time.Time, details map[string]any) map[string]any {
		return ev("acme", typ, "INSIGHT_VM", at, details, map[string]any{"target": target})
	}
	change := func(field string, before, after any) map[string]any {
		return map[string]any{"field": field, "before": before, "after": after}
	}
	mustRecord(t, env, []map[string]any{
		policy("POLICY_CREATED", base, map[string]any{"policyId": "pol-1", "policyName": "CIS Level 1"}),
		policy("POLICY_UPDATED", base.Add(time.Minute), map[string]any{"policyId": "pol-1",
			"changes": []any{change("threshold", 3, 5), change("enabled", false, true)}}),
		policy("POLICY_UPDATED", base.Add(2*time.Minute), map[string]any{"policyId": "pol-1",
			"changes": []any{change("rules", []any{"a"}, []any{"a", "b"})}}),
		policy("POLICY_UPDATED", base.Add(3*time.Minute), map[string]any{"policyId": "pol-1", "policyName": "CIS L1",
			"changes": []any{change("name", "CIS Level 1", "CIS L1")}}),
		policy("POLICY_DELETED", base.Add(4*time.Minute), map[string]any{"policyId": "pol-1"}),
		// Another policy's history must not mix in.
		ev("acme", "POLICY_UPDATED", "INSIGHT_VM", base.Add(time.Minute), map[string]any{"policyId": "pol-2",
			"changes": []any{change("x", 1, 2)}}, map[string]any{"target": map[string]any{"kind": "POLICY", "id": "pol-2"}}),
	})
	env.WaitProjected(t)

	var out struct {
		ResourceHistory struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					Type       string
					Actor      struct{ Name string }
					OccurredAt time.Time
					Changes    []struct {
						Field         string
						Before, After json.RawMessage
					}
				}
			}
		}
	}
	q := `query($order: SortOrder) { resourceHistory(kind: "POLICY", id: "pol-1", order: $order) {
		totalCount edges { node { type occurredAt actor { name } ... on PolicyEvent { changes { field before after } } } } } }`
	env.Do(t, testenv.AdminToken(t, "acme"), q, map[string]any{"order": "OLDEST_FIRST"}).MustData(t, &out)
	h := out.ResourceHistory
	wantTypes := []string{"POLICY_CREATED", "POLICY_UPDATED", "POLICY_UPDATED", "POLICY_UPDATED", "POLICY_DELETED"}
	if h.TotalCount != 5 || len(h.Edges) != 5 {
		t.Fatalf("history has %d events (total %d), want 5", len(h.Edges), h.TotalCount)
	}
	for i, e := range h.Edges {
		if e.Node.Type != wantTypes[i] || e.Node.Actor.Name != "Grace Hopper" {
			t.Fatalf("event %d: %+v", i, e.Node)
		}
	}
	first := h.Edges[1].Node.Changes
	if len(first) != 2 || first[0].Field != "threshold" || string(first[0].Before) != "3" || string(first[0].After) != "5" ||
		first[1].Field != "enabled" || string(first[1].After) != "true" {
		t.Fatalf("first update's changes: %+v", first)
	}
	if c := h.Edges[2].Node.Changes; len(c) != 1 || string(c[0].After) != `["a","b"]` {
		t.Fatalf("second update's changes: %+v", c)
	}
	if len(h.Edges[0].Node.Changes) != 0 {
		t.Fatalf("POLICY_CREATED has changes: %+v", h.Edges[0].Node.Changes)
	}

	env.Do(t, testenv.AdminToken(t, "acme"), q, map[string]any{"order": "NEWEST_FIRST"}).MustData(t, &out)
	if out.ResourceHistory.Edges[0].Node.Type != "POLICY_DELETED" {
		t.Fatalf("newest first starts with %s", out.ResourceHistory.Edges[0].Node.Type)
	}
}

package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

type searchPage struct {
	AuditEvents struct {
		TotalCount       int
		TotalCountCapped bool
		Complete         bool
		SearchedThrough  *time.Time
		PageInfo         struct {
			HasNextPage bool
			EndCursor   *string
		}
		Edges []struct {
			Node struct {
				ID         string
				OccurredAt time.Time
			}
		}
	}
}

const searchQuery = `query($f: AuditEventFilter, $after: String) {
  auditEvents(filter: $f, first: 50, after: $after) {
    totalCount totalCountCapped complete searchedThrough
    pageInfo { hasNextPage endCursor }
    edges { node { id occurredAt } }
  }
}`

// TestSearchIsBoundedThroughTheAPI runs auditd with a budget so small that
// every search stops after one slice of 200 events: auditEvents says it is
// not complete and how far back it looked, its endCursor continues it, and
// following the cursors finds every matching event once, as a complete
// search with the default budget does.
func TestSearchIsBoundedThroughTheAPI(t *testing.T) {
	bounded := testenv.Start(t, func(c *server.Config) { c.SearchBudget, c.SearchFirstSlice = time.Nanosecond, 200 })
	bounded.EnableOrg(t, "org-000", domain.RegionUS)
	if err := synthetic.Seed(context.Background(), bounded.EventStore(domain.RegionUS), 3_000, 1, "org-"); err != nil {
		t.Fatal(err)
	}
	admin := testenv.AdminToken(t, "org-000")
	f := map[string]any{"query": "actor:u1*"} // a wildcard: no index serves it
	var ids []string
	var after any
	partial, last := 0, time.Time{}
	for calls := 0; ; calls++ {
		if calls > 100 {
			t.Fatal("the search does not end")
		}
		var out searchPage
		bounded.Do(t, admin, searchQuery, map[string]any{"f": f, "after": after}).MustData(t, &out)
		c := out.AuditEvents
		for _, e := range c.Edges {
			ids = append(ids, e.Node.ID)
		}
		if !c.Complete {
			partial++
			if c.SearchedThrough == nil || !c.PageInfo.HasNextPage || c.PageInfo.EndCursor == nil {
				t.Fatalf("a partial page without searchedThrough, hasNextPage and endCursor: %+v", c)
			}
			if !c.TotalCountCapped || c.TotalCount != len(c.Edges) {
				t.Fatalf("a partial page's count is not the lower bound it found: %+v", c)
			}
			if !last.IsZero() && c.SearchedThrough.After(last) {
				t.Fatalf("searched through %v after %v", c.SearchedThrough, last)
			}
			last = *c.SearchedThrough
		} else if c.SearchedThrough != nil {
			t.Fatalf("a complete page with searchedThrough %v", c.SearchedThrough)
		}
		if !c.PageInfo.HasNextPage {
			break
		}
		after = *c.PageInfo.EndCursor
	}
	if partial == 0 {
		t.Fatal("no page was partial")
	}

	// The same search, unbounded in effect, on the same rows.
	whole := testenv.Start(t)
	whole.EnableOrg(t, "org-000", domain.RegionUS)
	if err := synthetic.Seed(context.Background(), whole.EventStore(domain.RegionUS), 3_000, 1, "org-"); err != nil {
		t.Fatal(err)
	}
	var want []string
	after = nil
	for {
		var out searchPage
		whole.Do(t, admin, searchQuery, map[string]any{"f": f, "after": after}).MustData(t, &out)
		c := out.AuditEvents
		if !c.Complete || c.SearchedThrough != nil || c.TotalCountCapped {
			t.Fatalf("a small org's search is not complete: %+v", c)
		}
		for _, e := range c.Edges {
			want = append(want, e.Node.ID)
		}
		if c.TotalCount != 0 && after == nil && c.TotalCount < len(c.Edges) {
			t.Fatalf("total %d under the page's %d", c.TotalCount, len(c.Edges))
		}
		if !c.PageInfo.HasNextPage {
			break
		}
		after = *c.PageInfo.EndCursor
	}
	if len(want) == 0 || !slices.Equal(ids, want) {
		t.Fatalf("bounded searches found %d events, complete ones %d", len(ids), len(want))
	}
}

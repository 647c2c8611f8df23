package search_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/search"
)

const org = "org-001"

// setup seeds 6,000 events among 3 orgs (2,000 each) in the US read model
// and returns the store and a reader that routes org-00x there.
func setup(t *testing.T) (*readmodel.EventStore, *readmodel.Reader) {
	return setupN(t, 6_000, 3)
}

func setupN(t *testing.T, n, orgs int) (*readmodel.EventStore, *readmodel.Reader) {
	t.Helper()
	ctx := context.Background()
	pool := testenv.Pool(t)
	st := readmodel.NewEventStore(pool, "audit_us", "AUDIT_US", zerolog.Nop())
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	settings := readmodel.NewSettingsStore(pool, nil, zerolog.Nop())
	if err := settings.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO control.org_settings (org_id, enabled, region, version, updated_at)
		SELECT 'org-00' || i, true, 'US', 1, now() FROM generate_series(0, 2) i`); err != nil {
		t.Fatal(err)
	}
	if err := synthetic.Seed(ctx, st, n, orgs, "org-"); err != nil {
		t.Fatal(err)
	}
	return st, readmodel.NewReader(settings, map[domain.Region]*readmodel.EventStore{domain.RegionUS: st})
}

// everything lists every event of org matching f through the read model's
// unbounded query, newest first.
func everything(t *testing.T, st *readmodel.EventStore, f domain.Filter) []string {
	t.Helper()
	var ids []string
	p := readmodel.PageRequest{First: readmodel.MaxPageSize}
	for {
		page, err := st.List(context.Background(), org, f, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			ids = append(ids, e.ID)
		}
		if !page.HasNextPage {
			return ids
		}
		last := page.Events[len(page.Events)-1]
		p.After = &readmodel.Cursor{OccurredAt: last.OccurredAt, ID: last.ID}
	}
}

// TestPartialSearchesContinueWithoutGapsOrDuplicates searches with a budget
// so small that every call stops after its first slice of 100 events, and
// follows the cursors to the end: the events found are exactly those of
// the unbounded query, in order, and every stop says how far it looked.
func TestPartialSearchesContinueWithoutGapsOrDuplicates(t *testing.T) {
	st, reader := setup(t)
	s := search.New(reader, search.Options{Budget: time.Nanosecond, FirstSlice: 100})
	tests := []struct {
		name string
		f    domain.Filter
	}{
		{"short word", domain.Filter{Search: "u1"}},
		{"negation", domain.Filter{Query: "-source:PLATFORM"}},
		{"wildcard", domain.Filter{Query: "actor:u2*"}},
		{"clustered wildcard, reads hidden", domain.Filter{Query: "actor:u9*", ExcludeTypes: []domain.EventType{"AUDIT_LOG_VIEWED"}}},
		{"never", domain.Filter{Query: "zq"}},
		{"details", domain.Filter{Query: "details.userId:target-4*"}},
		{"with a time range", domain.Filter{Query: "-source:PLATFORM occurred:>=" + time.Now().AddDate(0, 0, -10).UTC().Format(time.DateOnly)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := everything(t, st, tc.f)
			var got []string
			partials := 0
			p := readmodel.PageRequest{First: 100}
			var through time.Time
			for calls := 0; ; calls++ {
				if calls > 200 {
					t.Fatal("the search does not end")
				}
				page, err := s.List(context.Background(), org, tc.f, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page.Events {
					got = append(got, e.ID)
				}
				if len(page.Events) > p.First {
					t.Fatalf("%d events on a page of %d", len(page.Events), p.First)
				}
				if pt := page.Partial; pt != nil {
					partials++
					if !page.HasNextPage {
						t.Fatal("a partial page says nothing follows")
					}
					if !pt.SearchedThrough.Equal(pt.Resume.OccurredAt) || (!through.IsZero() && pt.SearchedThrough.After(through)) {
						t.Fatalf("searched through %v after %v, resume at %v", pt.SearchedThrough, through, pt.Resume)
					}
					through = pt.SearchedThrough
					p.After = &pt.Resume
					continue
				}
				if !page.HasNextPage {
					break
				}
				last := page.Events[len(page.Events)-1]
				p.After = &readmodel.Cursor{OccurredAt: last.OccurredAt, ID: last.ID}
			}
			if partials == 0 {
				t.Fatal("no search stopped at the budget")
			}
			if !slices.Equal(got, want) {
				t.Fatalf("continued searches found %d events, the unbounded query %d\ngot  %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
}

// TestCompleteSearches: with the default budget a small org is searched
// whole, so no page is partial, and a page that fills says more follow.
func TestCompleteSearches(t *testing.T) {
	st, reader := setup(t)
	s := search.New(reader, search.Options{})
	tests := []struct {
		name     string
		f        domain.Filter
		wantNext bool
	}{
		{"never", domain.Filter{Query: "zq"}, false},
		{"frequent short word", domain.Filter{Search: "u1"}, true},
		{"indexed type", domain.Filter{Query: "type:USER_CREATED"}, false},
		{"negation", domain.Filter{Query: "-source:PLATFORM"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.List(context.Background(), org, tc.f, readmodel.PageRequest{First: 50})
			if err != nil {
				t.Fatal(err)
			}
			if page.Partial != nil {
				t.Fatalf("partial: %+v", page.Partial)
			}
			if page.HasNextPage != tc.wantNext {
				t.Fatalf("hasNextPage %v, want %v", page.HasNextPage, tc.wantNext)
			}
			want := everything(t, st, tc.f)
			n, capped, err := s.Count(context.Background(), org, tc.f)
			if err != nil || capped || n != len(want) {
				t.Fatalf("count %d capped %v (%v), want %d exact", n, capped, err, len(want))
			}
		})
	}
}

// TestCountsAreLowerBoundsWhenCut: a count stopped by the budget is marked
// capped and never exceeds the true count.
func TestCountsAreLowerBoundsWhenCut(t *testing.T) {
	st, reader := setup(t)
	s := search.New(reader, search.Options{Budget: time.Nanosecond, FirstSlice: 100})
	f := domain.Filter{Query: "-source:PLATFORM"}
	want := len(everything(t, st, f))
	n, capped, err := s.Count(context.Background(), org, f)
	if err != nil {
		t.Fatal(err)
	}
	if !capped || n > want || n == 0 {
		t.Fatalf("count %d capped %v, want a lower bound of %d", n, capped, want)
	}
}

// TestBadQueriesAreRefused: a query the language refuses is the caller's
// mistake, named on filter.query, whatever path the search takes.
func TestBadQueriesAreRefused(t *testing.T) {
	_, reader := setup(t)
	s := search.New(reader, search.Options{})
	for _, q := range []string{"actr:x", "(type:USER_CREATED", "ip:10.0.0.0/99"} {
		_, err := s.List(context.Background(), org, domain.Filter{Query: q}, readmodel.PageRequest{First: 10})
		var de *domain.Error
		if !errors.As(err, &de) || de.Field != "filter.query" {
			t.Errorf("%q: %v, want a BAD_USER_INPUT on filter.query", q, err)
		}
		if _, _, err := s.Count(context.Background(), org, domain.Filter{Query: q}); !errors.As(err, &de) {
			t.Errorf("count %q: %v", q, err)
		}
	}
}

// TestIndexed is the split between one query and slices.
func TestIndexed(t *testing.T) {
	tests := []struct {
		q    string
		want bool
	}{
		{"", false},
		{"ab", false},
		{"abc", true},
		{"-abc", false},
		{"type:USER_*", true},
		{"actor.id:u1", true},
		{"actor.id:u1*", false},
		{"actor:u1", false},
		{"ip:10.0.0.0/8", true},
		{"details.userId:x", true},
		{"details.policyId:x", false},
		{"ab type:USER_CREATED", true},
		{"abc OR ab", false},
		{"abc OR type:USER_CREATED OR ip:10.1.2.3", true},
		{"occurred:>=2026-01-01", false},
	}
	for _, tc := range tests {
		q, err := query.Parse(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := search.Indexed(domain.Filter{}, q); got != tc.want {
			t.Errorf("Indexed(%q) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

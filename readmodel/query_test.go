package readmodel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/projector"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
)

// readModel is a migrated US store with its own apply helper.
type readModel struct {
	*readmodel.EventStore
	seq uint64
}

func newReadModel(t *testing.T) *readModel {
	t.Helper()
	pool := testenv.Pool(t)
	s := readmodel.NewEventStore(pool, "audit_us", "AUDIT_US", zerolog.Nop())
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &readModel{EventStore: s}
}

// apply writes events through the projector's sink, as the projector would.
func (m *readModel) apply(t *testing.T, events ...*domain.Event) {
	t.Helper()
	ctx := context.Background()
	conn, err := m.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := m.Prepare(ctx, conn.Conn()); err != nil {
		t.Fatal(err)
	}
	var batch []projector.Message
	for _, e := range events {
		m.seq++
		data, _ := json.Marshal(e)
		batch = append(batch, projector.Message{Seq: m.seq, Subject: natsx.AuditSubject(domain.RegionUS, e), Data: data})
	}
	if err := m.Apply(ctx, conn.Conn(), batch); err != nil {
		t.Fatal(err)
	}
}

func event(org string, at time.Time, mutate func(*domain.Event)) *domain.Event {
	e := &domain.Event{
		ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: at, RecordedAt: at, Actor: domain.Actor{Kind: domain.ActorUser, ID: "u1", Name: "Plain Name", Email: "plain@example.com"},
		Details: json.RawMessage(`{"userId":"u1"}`),
	}
	if mutate != nil {
		mutate(e)
	}
	return e
}

func ids(p *readmodel.EventPage) []string {
	out := []string{}
	for _, e := range p.Events {
		out = append(out, e.ID)
	}
	return out
}

func TestSearchMatchesEveryFieldLiterally(t *testing.T) {
	m := newReadModel(t)
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	byName := event("acme", at, func(e *domain.Event) { e.Actor.Name = "Zoë Ünicode" })
	byEmail := event("acme", at.Add(1*time.Second), func(e *domain.Event) { e.Actor.Email = "mixed.Case@Example.org" })
	byTarget := event("acme", at.Add(2*time.Second), func(e *domain.Event) {
		e.Target = &domain.Target{Kind: "POLICY", ID: "pol-42", Name: "100% compliant_policy"}
	})
	byPayload := event("acme", at.Add(3*time.Second), func(e *domain.Event) {
		e.Type, e.Details = "USER_ROLE_SET", json.RawMessage(`{"userId":"u1","role":"back\\slash"}`)
	})
	byType := event("acme", at.Add(4*time.Second), func(e *domain.Event) {
		e.Type, e.Details = "MFA_UPDATED", json.RawMessage(`{}`)
	})
	other := event("globex", at, func(e *domain.Event) { e.Actor.Name = "Zoë Ünicode" })
	m.apply(t, byName, byEmail, byTarget, byPayload, byType, other)

	tests := []struct {
		search  string
		exclude []domain.EventType
		want    []*domain.Event
	}{
		{"zoë", nil, []*domain.Event{byName}},
		{"_", []domain.EventType{"MFA_UPDATED", "USER_ROLE_SET"}, []*domain.Event{byName, byEmail, byTarget}},
		{"mfa_updated", []domain.EventType{"MFA_UPDATED"}, nil},
		{"ÜNICODE", nil, []*domain.Event{byName}},
		{"MIXED.case@example", nil, []*domain.Event{byEmail}},
		{"pol-42", nil, []*domain.Event{byTarget}},
		{"100%", nil, []*domain.Event{byTarget}},
		{"t_p", nil, []*domain.Event{byTarget}},
		{"%", nil, []*domain.Event{byTarget}},
		{"_", nil, []*domain.Event{byName, byEmail, byTarget, byPayload, byType}}, // every type name has one
		{`\`, nil, []*domain.Event{byPayload}},
		{`back\slash`, nil, []*domain.Event{byPayload}},
		{"mfa_updated", nil, []*domain.Event{byType}},
		{"configuration data", nil, []*domain.Event{byType}}, // description
		{"ë", nil, []*domain.Event{byName}},
		{"zz", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.search, func(t *testing.T) {
			f := domain.Filter{Search: tc.search, ExcludeTypes: tc.exclude}
			p, err := m.List(context.Background(), "acme", f, readmodel.PageRequest{First: 50})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			for i := len(tc.want) - 1; i >= 0; i-- {
				want = append(want, tc.want[i].ID)
			}
			if got := ids(p); !reflect.DeepEqual(got, want) {
				t.Fatalf("search %q: got %v, want %v", tc.search, got, want)
			}
			// Live subscriptions filter in memory: they must agree.
			for _, e := range []*domain.Event{byName, byEmail, byTarget, byPayload, byType} {
				if f.Matches(e) != slices.Contains(tc.want, e) {
					t.Errorf("search %q: Matches(%s) = %v, SQL says otherwise", tc.search, e.Type, f.Matches(e))
				}
			}
		})
	}
}

func TestDateRangeEdges(t *testing.T) {
	m := newReadModel(t)
	// Month boundaries cross partitions, and the default partition holds
	// the old event.
	at := []time.Time{
		time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 9, 30, 23, 59, 59, 999999000, time.UTC),
		time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 1, 0, 0, 0, 1000, time.UTC),
	}
	var es []*domain.Event
	for _, a := range at {
		es = append(es, event("acme", a, nil))
	}
	m.apply(t, es...)
	ptr := func(t time.Time) *time.Time { return &t }
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	paris := time.FixedZone("CEST", 2*3600)
	tests := []struct {
		name     string
		from, to *time.Time
		want     []int
	}{
		{"from is inclusive", ptr(oct), nil, []int{3, 2}},
		{"to is exclusive", nil, ptr(oct), []int{1, 0}},
		{"empty range", ptr(oct), ptr(oct), []int{}},
		{"offsets", ptr(oct.In(paris)), ptr(oct.Add(time.Microsecond).In(paris)), []int{2}},
		{"everything", ptr(domain.EarliestOccurredAt), ptr(oct.Add(time.Hour)), []int{3, 2, 1, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := domain.Filter{From: tc.from, To: tc.to}
			if err := f.Validate(); err != nil {
				t.Fatal(err)
			}
			p, err := m.List(context.Background(), "acme", f, readmodel.PageRequest{First: 50})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			for _, i := range tc.want {
				want = append(want, es[i].ID)
			}
			if got := ids(p); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestPagingWhileAppending(t *testing.T) {
	m := newReadModel(t)
	base := time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)
	var initial []*domain.Event
	for i := range 100 {
		// Pairs share a timestamp, so the id breaks ties.
		initial = append(initial, event("acme", base.Add(time.Duration(i/2)*time.Second), nil))
	}
	m.apply(t, initial...)
	seen := map[string]bool{}
	var after *readmodel.Cursor
	for page := 0; ; page++ {
		p, err := m.List(context.Background(), "acme", domain.Filter{}, readmodel.PageRequest{First: 7, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			if seen[e.ID] {
				t.Fatalf("page %d repeats %s", page, e.ID)
			}
			seen[e.ID] = true
		}
		// New events arrive between pages, newer and older than the cursor.
		m.apply(t, event("acme", base.Add(time.Hour), nil), event("acme", base.Add(-time.Hour), nil))
		if !p.HasNextPage {
			break
		}
		last := p.Events[len(p.Events)-1]
		after = &readmodel.Cursor{OccurredAt: last.OccurredAt, ID: last.ID}
	}
	for _, e := range initial {
		if !seen[e.ID] {
			t.Fatalf("paging skipped %s", e.ID)
		}
	}
}

func TestCountIsCapped(t *testing.T) {
	m := newReadModel(t)
	ctx := context.Background()
	// Seed past the cap with SQL: counting, not projecting, is under test.
	_, err := m.Pool().Exec(ctx, fmt.Sprintf(`
		INSERT INTO audit_us.events (org_id, id, occurred_at, recorded_at, source, type, category, actor_kind, actor_id, details, search_text, stream_seq)
		SELECT 'acme', 'id' || g, now() - g * interval '1 second', now(), 'PLATFORM', 'USER_LOGOUT', 'USER', 'USER', 'u1', '{}', 'x', g
		FROM generate_series(1, %d) g`, readmodel.CountCap+5))
	if err != nil {
		t.Fatal(err)
	}
	n, capped, err := m.Count(ctx, "acme", domain.Filter{})
	if err != nil || n != readmodel.CountCap || !capped {
		t.Fatalf("count %d capped %v err %v", n, capped, err)
	}
	n, capped, err = m.Count(ctx, "acme", domain.Filter{Types: []domain.EventType{"USER_CREATED"}})
	if err != nil || n != 0 || capped {
		t.Fatalf("count %d capped %v err %v", n, capped, err)
	}
}

func TestCursorRoundTripAndForgery(t *testing.T) {
	c := readmodel.Cursor{OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: ulid.Make().String()}
	got, err := readmodel.DecodeCursor(c.Encode())
	if err != nil || !got.OccurredAt.Equal(c.OccurredAt) || got.ID != c.ID {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "!!!", "bm9wZQ", strings.Repeat("A", 40)} {
		if _, err := readmodel.DecodeCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

package readmodel_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/readmodel"
)

// Every qualifier of the query language, run by the read model against
// Postgres and by Match in memory: both must find exactly the events named.
func TestQueryLanguageInPostgresAndInMemory(t *testing.T) {
	m := newReadModel(t)
	day := func(d, h, min, s, ns int) time.Time { return time.Date(2026, 11, d, h, min, s, ns, time.UTC) }
	evs := map[string]*domain.Event{
		"created": event("acme", day(5, 10, 0, 0, 0), func(e *domain.Event) {
			e.Type, e.Source = "USER_CREATED", domain.SourceInsightIDR
			e.Actor = domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Grace Hopper", Email: "grace@example.com"}
			e.Target = &domain.Target{Kind: "USER", ID: "u-2", Name: "Ada"}
			e.IPAddress, e.UserAgent, e.RequestID = "10.1.2.3", "curl/8.1", "req-7"
			e.Details = json.RawMessage(`{"userId":"u-2","userEmail":"ada@example.com","userName":"Ada"}`)
		}),
		"logout": event("acme", day(20, 0, 0, 0, 0), func(e *domain.Event) {
			e.Actor = domain.Actor{Kind: domain.ActorUser, ID: "u-3", Name: "Plain Name", Email: "plain@example.org"}
			e.IPAddress, e.UserAgent = "2001:db8::7", "Mozilla/5.0 (X11; 100%_sure)"
			e.Details = json.RawMessage(`{"userId":"u-3"}`)
		}),
		"policy": event("acme", time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC), func(e *domain.Event) {
			e.Type = domain.TypePolicyCreated
			e.Actor = domain.Actor{Kind: domain.ActorAPIKey, ID: "k-1"}
			e.Target = &domain.Target{Kind: "POLICY", ID: "p-1", Name: "Prod (eu)"}
			e.Details = json.RawMessage(`{"policyId":"p-1","policyName":"Prod"}`)
		}),
		"mfa": event("acme", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), func(e *domain.Event) {
			e.Type, e.Source = "MFA_UPDATED", domain.SourceInsightVM
			e.Actor = domain.Actor{Kind: domain.ActorSystem, ID: "sys"}
			e.IPAddress = "192.168.1.1"
			e.Details = json.RawMessage(`{"mfaRequired":true,"changedFields":["mfaRequired"]}`)
		}),
		"password": event("acme", day(30, 23, 59, 59, 999999000), func(e *domain.Event) {
			e.Type = "PASSWORD_POLICY_UPDATED"
			e.Actor = domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Grace Hopper", Email: "grace@example.com"}
			e.IPAddress = "::ffff:10.0.0.9"
			e.Details = json.RawMessage(`{"changedFields":["minLength"],"minLength":1.20e1}`)
		}),
		// Ingest refuses such an address, but the projector stores what the
		// stream holds: an ip qualifier must pass over it, not fail.
		"badip": event("acme", day(21, 0, 0, 0, 0), func(e *domain.Event) {
			e.Actor = domain.Actor{Kind: domain.ActorUser, ID: "u-4"}
			e.IPAddress = "10.0.0.300"
			e.Details = json.RawMessage(`{"userId":"u-4"}`)
		}),
	}
	all := slices.Sorted(maps.Keys(evs))
	other := event("globex", day(5, 10, 0, 0, 0), func(e *domain.Event) { e.Type = "USER_CREATED"; e.Actor.ID = "u-1" })
	m.apply(t, append(slices.Collect(maps.Values(evs)), other)...)

	but := func(names ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(n string) bool { return slices.Contains(names, n) })
	}
	tests := []struct {
		q    string
		want []string
	}{
		{"", all},
		{"type:USER_CREATED", []string{"created"}},
		{"type:USER_*", []string{"badip", "created", "logout"}},
		{"-type:USER_*", []string{"mfa", "password", "policy"}},
		{"category:POLICY", []string{"policy"}},
		{"category:MFA", []string{"mfa"}},
		{"source:INSIGHT_IDR", []string{"created"}},
		{"source:INSIGHT_*", []string{"created", "mfa"}},
		{"actor:u-1", []string{"created", "password"}},
		{"actor:plain@example.org", []string{"logout"}},
		{`actor:"Plain Name"`, []string{"logout"}},
		{"actor:*@example.org", []string{"logout"}},
		{"actor:grace", nil},
		{"actor.id:k-1", []string{"policy"}},
		{"actor.name:Plain*", []string{"logout"}},
		{"actor.email:*", []string{"created", "logout", "password"}},
		{"-actor.email:*", []string{"badip", "mfa", "policy"}},
		{"actor.kind:API_KEY", []string{"policy"}},
		{"actor.kind:SYSTEM", []string{"mfa"}},
		{"target:Ada", []string{"created"}},
		{"target:p-1", []string{"policy"}},
		{"target.kind:POLICY", []string{"policy"}},
		{"target.id:u-2", []string{"created"}},
		{"target.id:u-3", nil},
		{`target.name:"Prod (eu)"`, []string{"policy"}},
		{"target.name:*", []string{"created", "policy"}},
		{"-target.kind:USER", but("created")},
		{"ip:10.1.2.3", []string{"created"}},
		{"ip:10.1.2.4", nil},
		{"ip:10.0.0.0/8", []string{"created"}},
		{"ip:0.0.0.0/0", []string{"created", "mfa"}},
		{"-ip:10.0.0.0/8", but("created")},
		{"ip:192.168.0.0/16", []string{"mfa"}},
		{"ip:::ffff:10.0.0.0/104", []string{"password"}},
		{"ip:2001:db8::/32", []string{"logout"}},
		{"ip:2001:db8::7", []string{"logout"}},
		{"ip:2001:db9::/32", nil},
		{"ip:::/0", []string{"logout", "password"}},
		{"request:req-7", []string{"created"}},
		{"request:req-8", nil},
		{"agent:curl/*", []string{"created"}},
		{`agent:"*100%_sure)"`, []string{"logout"}}, // % and _ are literal
		{`agent:"*100__sure*"`, nil},
		{`agent:"*100%%sure*"`, nil},
		{"id:" + evs["mfa"].ID, []string{"mfa"}},
		{"details.userId:u-2", []string{"created"}},
		{"details.userId:u-*", []string{"badip", "created", "logout"}},
		{"details.userId:u-9", nil},
		{"details.policyName:Prod", []string{"policy"}},
		{"details.mfaRequired:true", []string{"mfa"}},
		{"details.mfaRequired:false", nil},
		{"details.minLength:12.0", []string{"password"}}, // 1.20e1, as Postgres prints it
		{"details.minLength:12", nil},
		{"details.changedFields:*", nil}, // a list is not a value
		{"-details.userId:*", []string{"mfa", "password", "policy"}},
		{"occurred:2026-11-05", []string{"created"}},
		{"occurred:2026-11-04", nil},
		{"occurred:2026-11-01..2026-11-30", []string{"badip", "created", "logout", "password"}},
		{"occurred:2026-11-21..*", []string{"badip", "mfa", "password"}},
		{"occurred:>=2026-12-01", []string{"mfa"}},
		{"occurred:>2026-11-30", []string{"mfa"}},
		{"occurred:<2026-11-01", []string{"policy"}},
		{"occurred:<=2026-10-31", []string{"policy"}},
		{"occurred:2026-11-05T10:00:00Z", []string{"created"}},
		{"occurred:>2026-11-05T10:00:00Z occurred:<2026-11-21T00:00:00Z", []string{"logout"}},
		{"occurred:2026-11-30T23:59:59.999999Z", []string{"password"}},
		{"grace", []string{"created", "password"}},
		{"GRACE -type:USER_CREATED", []string{"password"}},
		{`"new user"`, []string{"created"}}, // the type's description
		{"ad", []string{"created"}},         // a short word, without the trigram index
		{"hopper nobody", nil},
		{"type:USER_CREATED OR type:MFA_UPDATED", []string{"created", "mfa"}},
		{"type:USER_CREATED OR source:INSIGHT_VM actor.kind:USER", []string{"created"}},
		{"(source:PLATFORM OR source:INSIGHT_VM) -type:USER_LOGOUT", []string{"mfa", "password", "policy"}},
		{"NOT (actor.kind:USER OR ip:0.0.0.0/0)", []string{"policy"}},
		{"-(grace OR type:USER_LOGOUT)", []string{"mfa", "policy"}},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			f := domain.Filter{Query: tc.q}
			p, err := m.List(ctx, "acme", f, readmodel.PageRequest{First: 50})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range p.Events {
				for name, want := range evs {
					if e.ID == want.ID {
						got = append(got, name)
					}
				}
			}
			slices.Sort(got)
			if len(got) != len(p.Events) || !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %v (%d events), want %v", tc.q, got, len(p.Events), tc.want)
			}
			n, _, err := m.Count(ctx, "acme", f)
			if err != nil || n != len(tc.want) {
				t.Errorf("Count(%q) = %d, %v; want %d", tc.q, n, err, len(tc.want))
			}
			q, err := query.FromFilter(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range all {
				if q.Match(evs[name]) != slices.Contains(tc.want, name) {
					t.Errorf("Match(%q) on %s = %v, want %v", tc.q, name, !slices.Contains(tc.want, name), slices.Contains(tc.want, name))
				}
			}
		})
	}

	// The query is ANDed with the filter's typed fields.
	p, err := m.List(ctx, "acme", domain.Filter{Sources: []domain.Source{domain.SourcePlatform}, Query: "actor:u-1"}, readmodel.PageRequest{First: 50})
	if err != nil || len(p.Events) != 1 || p.Events[0].ID != evs["password"].ID {
		t.Errorf("source PLATFORM and actor:u-1: %v, %v; want only the password event", p, err)
	}
	// A bad query is the caller's mistake, on every read path.
	bad := domain.Filter{Query: "type:USER_CREATED actr:x"}
	_, err = m.List(ctx, "acme", bad, readmodel.PageRequest{First: 50})
	if domain.CodeOf(err) != domain.CodeBadUserInput || !strings.Contains(err.Error(), "at column 19") {
		t.Errorf("List with a bad query: %v, want BAD_USER_INPUT at column 19", err)
	}
	if _, _, err := m.Count(ctx, "acme", bad); domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("Count with a bad query: %v, want BAD_USER_INPUT", err)
	}
	if err := m.Export(ctx, "acme", bad, false, func(int64) {}, func(*domain.Event) error { return nil }); domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("Export with a bad query: %v, want BAD_USER_INPUT", err)
	}
}

// The ip qualifier's guard must let Postgres cast exactly the text Match
// reads as an address, and the two must agree on what a network holds:
// here over a column of awkward strings rather than stored events.
func TestIPQualifierAgreesWithPostgres(t *testing.T) {
	m := newReadModel(t)
	addrs := []string{"10.0.0.1", "10.0.0.300", "010.0.0.1", "1.2.3", "::", "::1", "1::", "::ffff:10.0.0.1", "::10.0.0.1",
		"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:1.2.3.4", "1::5:6:1.2.3.4", "2001:DB8::A", "fe80::1%eth0",
		"1:2:3:4:5:6:7:8:9", ":::", "10.0.0.0/8", "", "x", " 10.0.0.1", "255.255.255.255", "0.0.0.0"}
	for _, network := range []string{"0.0.0.0/0", "::/0", "10.0.0.0/8", "::ffff:0:0/96", "2001:db8::/32", "1::/16", "10.0.0.1"} {
		q, err := query.Parse("ip:" + network)
		if err != nil {
			t.Fatal(err)
		}
		args := []any{addrs}
		cond := q.SQL(func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) })
		rows, err := m.Pool().Query(context.Background(),
			"SELECT ip_address FROM unnest($1::text[]) AS t(ip_address) WHERE "+cond, args...)
		if err != nil {
			t.Fatalf("ip:%s: %v", network, err)
		}
		var inSQL []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			inSQL = append(inSQL, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("ip:%s: %v", network, err)
		}
		for _, a := range addrs {
			if got, want := q.Match(&domain.Event{IPAddress: a}), slices.Contains(inSQL, a); got != want {
				t.Errorf("ip:%s on %q: Match %v, Postgres %v", network, a, got, want)
			}
		}
	}
}

// details.<key> compares a number as Postgres prints it from jsonb.
func TestDetailsNumbersAgreeWithPostgres(t *testing.T) {
	m := newReadModel(t)
	for _, lit := range []string{"3", "-3", "0", "-0", "1.50", "-0.0", "1e2", "1E+2", "1.5e1", "1.50e1", "1e-2",
		"-2.5E-3", "12.345e1", "0.001", "123456789012345678901234567890", "1e20"} {
		details := `{"minLength":` + lit + `}`
		var text string
		if err := m.Pool().QueryRow(context.Background(), `SELECT ($1::jsonb)->>'minLength'`, details).Scan(&text); err != nil {
			t.Fatal(err)
		}
		q, err := query.Parse("details.minLength:" + text)
		if err != nil {
			t.Fatal(err)
		}
		if !q.Match(&domain.Event{Details: json.RawMessage(details)}) {
			t.Errorf("%s: Postgres prints %s, which Match does not match", lit, text)
		}
	}
}

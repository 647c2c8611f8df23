package query

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
)

func TestMatch(t *testing.T) {
	e := &domain.Event{
		ID: "01JD0000000000000000000000", OrgID: "acme", Source: domain.SourceInsightIDR, Type: "USER_CREATED",
		OccurredAt: time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC),
		Actor:      domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Grace Hopper", Email: "grace@example.com"},
		Target:     &domain.Target{Kind: "USER", ID: "u-2"},
		IPAddress:  "10.1.2.3", UserAgent: "curl/8.1", RequestID: "req-7",
		Details: json.RawMessage(`{"userId":"u-2","userEmail":"ada@example.com","count":3,"minLength":1.50e1,"mfaRequired":true,"userName":{"k":"v"},"changedFields":["a"]}`),
	}
	v6 := *e
	v6.IPAddress = "2001:db8::7"
	bare := &domain.Event{ID: "01JD0000000000000000000001", OrgID: "acme", Source: domain.SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Actor: domain.Actor{Kind: domain.ActorSystem, ID: "sys"},
		IPAddress: "not an address"}

	tests := []struct {
		q    string
		e    *domain.Event
		want bool
	}{
		{"", e, true},
		{"type:USER_CREATED", e, true},
		{"type:USER_DELETED", e, false},
		{"type:USER_*", e, true},
		{"type:*_DELETED", e, false},
		{"category:USER", e, true},
		{"category:MFA", e, false},
		{"source:INSIGHT_IDR", e, true},
		{"-source:PLATFORM", e, true},
		{"-source:INSIGHT_*", e, false},
		{"actor:u-1", e, true},
		{"actor:*@example.com", e, true},
		{`actor:"Grace Hopper"`, e, true},
		{"actor:grace", e, false}, // qualifiers compare whole values, case included
		{"actor.id:u-1", e, true},
		{"actor.name:Grace*", e, true},
		{"actor.name:grace*", e, false},
		{"actor.email:*@example.org", e, false},
		{"actor.kind:USER", e, true},
		{"actor.kind:SYSTEM", e, false},
		{"actor.email:*", bare, false}, // absent, like NULL
		{"-actor.email:*", bare, true},
		{"target:u-2", e, true},
		{"target.kind:USER target.id:u-2", e, true},
		{"target.name:*", e, false},
		{"target:*", bare, false},
		{"-target.kind:USER", bare, true},
		{"ip:10.1.2.3", e, true},
		{"ip:10.0.0.0/8", e, true},
		{"ip:10.1.2.4", e, false},
		{"ip:192.168.0.0/16", e, false},
		{"ip:2001:db8::/32", &v6, true},
		{"ip:2001:db9::/32", &v6, false},
		{"ip:10.0.0.0/8", &v6, false},
		{"ip:0.0.0.0/0", bare, false},
		{"-ip:0.0.0.0/0", bare, true},
		{"request:req-7", e, true},
		{"agent:curl/*", e, true},
		{"agent:wget*", e, false},
		{"id:01JD0000000000000000000000", e, true},
		{"details.userId:u-2", e, true},
		{"details.userEmail:*@example.com", e, true},
		{"details.userId:u-3", e, false},
		{"details.count:3", e, true},
		{"details.count:3.0", e, false},
		{"details.minLength:15.0", e, true}, // as Postgres prints 1.50e1
		{"details.mfaRequired:true", e, true},
		{"details.userName.k:v", e, true}, // nested keys
		{"details.userName.k:w", e, false},
		{"details.userId.k:*", e, false},
		{"details.userName:*", e, false}, // objects and lists are not values
		{"details.changedFields:*", e, false},
		{"details.userId:*", bare, false},
		{"occurred:2026-11-25", e, true},
		{"occurred:2026-11-24", e, false},
		{"occurred:2026-11-01..2026-11-30", e, true},
		{"occurred:2026-11-26..*", e, false},
		{"occurred:>=2026-11-25T10:00:00.123456Z", e, true},
		{"occurred:>2026-11-25T10:00:00.123456Z", e, false}, // Postgres keeps microseconds
		{"occurred:2026-11-25T10:00:00.123456Z", e, true},
		{"occurred:<2026-11-25", e, false},
		{"occurred:<=2026-11-25", e, true},
		{"occurred:>2026-11-25", e, false},
		{"grace", e, true},
		{"GRACE", e, true},
		{"ada@example", e, true},      // payload values
		{`"new user was"`, e, true},   // the type's description
		{"hopper nobody", e, false},   // every word must match
		{"hopper OR nobody", e, true}, // either
		{"type:USER_CREATED -grace", e, false},
		{"(type:USER_DELETED OR source:INSIGHT_IDR) grace", e, true},
		{"NOT (type:USER_DELETED OR source:INSIGHT_IDR)", e, false},
	}
	for _, tt := range tests {
		q, err := Parse(tt.q)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.q, err)
			continue
		}
		if got := q.Match(tt.e); got != tt.want {
			t.Errorf("Parse(%q).Match(%s) = %v, want %v", tt.q, tt.e.Type, got, tt.want)
		}
	}
}

// Free text means what domain.Filter.Search means.
func TestTextMatchesSearch(t *testing.T) {
	e := &domain.Event{Type: "USER_CREATED", Actor: domain.Actor{Name: "Grace Hopper"}, Details: json.RawMessage(`{"userId":"u_2%"}`)}
	for _, term := range []string{"grace", "HOP", "u_2%", "created", "new user", "nobody", "g"} {
		q, err := Parse(quote(term))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := q.Match(e), (domain.Filter{Search: term}).Matches(e); got != want {
			t.Errorf("%q matches %v, Filter.Search %v", term, got, want)
		}
	}
}

func TestNumericText(t *testing.T) {
	// What Postgres prints for (('{"n":' || lit || '}')::jsonb)->>'n';
	// readmodel's tests ask Postgres the same.
	for lit, want := range map[string]string{
		"3": "3", "-3": "-3", "0": "0", "-0": "0", "1.50": "1.50", "-0.0": "0.0",
		"1e2": "100", "1E+2": "100", "1.5e1": "15", "1.50e1": "15.0", "1e-2": "0.01", "-2.5E-3": "-0.0025",
		"12.345e1": "123.45", "0.001": "0.001",
	} {
		if got := numericText(lit); got != want {
			t.Errorf("numericText(%s) = %s, want %s", lit, got, want)
		}
	}
}

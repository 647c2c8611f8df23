package domain

import (
	"errors"
	"testing"
	"time"
)

// A settings change's actor becomes its event's actor, so an actor the log
// cannot store is refused before the change is made.
func TestSettingsChangesNeedAStorableActor(t *testing.T) {
	at := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	bad := Actor{Kind: ActorUser, ID: "u1", Name: "nul\x00"}
	if _, _, err := (Settings{OrgID: "acme"}).Enable(RegionUS, bad, at); !errors.Is(err, ErrBadInput) {
		t.Fatalf("enable: %v", err)
	}
	on := Settings{OrgID: "acme", Enabled: true, Region: RegionUS}
	if _, _, err := on.Disable(bad, at); !errors.Is(err, ErrBadInput) {
		t.Fatalf("disable: %v", err)
	}
}

func TestSettingsTransitions(t *testing.T) {
	at := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	by := Actor{Kind: ActorUser, ID: "u1"}
	never := Settings{OrgID: "acme"}

	c, ok, err := never.Enable(RegionEU, by, at)
	if err != nil || !ok || c.Type != TypeAuditLogOptIn || c.Region != RegionEU {
		t.Fatalf("first opt-in: %+v %v %v", c, ok, err)
	}
	on := never.Apply(c, 1)
	if !on.Enabled || on.Region != RegionEU || on.Version != 1 || on.UpdatedBy.ID != "u1" {
		t.Fatalf("after opt-in: %+v", on)
	}
	if _, ok, err := on.Enable(RegionEU, by, at); ok || err != nil {
		t.Fatalf("enabling twice must be a no-op, got ok=%v err=%v", ok, err)
	}
	if _, _, err := on.Enable(RegionUS, by, at); !errors.Is(err, ErrRegionImmutable) {
		t.Fatalf("other region: got %v, want REGION_IMMUTABLE", err)
	}
	if _, _, err := never.Enable("MARS", by, at); !errors.Is(err, ErrBadInput) {
		t.Fatalf("unknown region: got %v", err)
	}

	c, ok, _ = on.Disable(by, at)
	if !ok || c.Type != TypeAuditLogOptOut || c.Region != RegionEU {
		t.Fatalf("opt-out: %+v %v", c, ok)
	}
	off := on.Apply(c, 2)
	if off.Enabled || off.Region != RegionEU {
		t.Fatalf("after opt-out: %+v", off)
	}
	if _, ok, _ := off.Disable(by, at); ok {
		t.Fatal("disabling twice must be a no-op")
	}
	if _, ok, _ := never.Disable(by, at); ok {
		t.Fatal("disabling a never-enabled org must be a no-op")
	}
	if _, _, err := off.Enable(RegionUS, by, at); !errors.Is(err, ErrRegionImmutable) {
		t.Fatalf("re-opt-in elsewhere: got %v", err)
	}
	if c, ok, err := off.Enable(RegionEU, by, at); !ok || err != nil || c.Type != TypeAuditLogOptIn {
		t.Fatalf("re-opt-in same region: %+v %v %v", c, ok, err)
	}
}

func TestFilterMatchesAndValidate(t *testing.T) {
	e := validEvent()
	e.Target = &Target{Kind: "USER", ID: "u1", Name: "Ann 100%_done"}
	from := e.OccurredAt
	to := e.OccurredAt.Add(time.Second)
	tests := []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty", Filter{}, true},
		{"source", Filter{Sources: []Source{SourcePlatform}}, true},
		{"other source", Filter{Sources: []Source{SourceInsightVM}}, false},
		{"category", Filter{Categories: []Category{CategoryUser}}, true},
		{"type", Filter{Types: []EventType{"USER_CREATED"}}, false},
		{"actor", Filter{ActorID: "u1"}, true},
		{"from inclusive", Filter{From: &from}, true},
		{"to exclusive", Filter{To: &from}, false},
		{"range", Filter{From: &from, To: &to}, true},
		{"search email", Filter{Search: "ANN@ACME"}, true},
		{"search description", Filter{Search: "logged out"}, true},
		{"search literal percent", Filter{Search: "100%_"}, true},
		{"search miss", Filter{Search: "zebra"}, false},
	}
	for _, tc := range tests {
		if got := tc.f.Matches(&e); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
		if err := tc.f.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
	}
	bad := []Filter{
		{Sources: []Source{"X"}}, {Types: []EventType{"X"}}, {Categories: []Category{"X"}},
		{From: &to, To: &from}, {Search: string(make([]byte, MaxSearchLen+1))},
	}
	for i, f := range bad {
		if err := f.Validate(); !errors.Is(err, ErrBadInput) {
			t.Errorf("bad filter %d: got %v", i, err)
		}
	}
}

func TestPrincipalCanRecord(t *testing.T) {
	svc := &Principal{Kind: PrincipalService, Sources: []Source{SourcePlatform}, Orgs: []string{"acme"}}
	if err := svc.CanRecord("acme", SourcePlatform); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p   *Principal
		org string
		src Source
	}{
		{svc, "acme", SourceInsightIDR},
		{svc, "globex", SourcePlatform},
		{&Principal{Kind: PrincipalUser, Roles: []string{RoleAdmin}}, "acme", SourcePlatform},
	} {
		if err := tc.p.CanRecord(tc.org, tc.src); !errors.Is(err, ErrForbidden) {
			t.Errorf("%+v recording %s/%s: got %v, want FORBIDDEN", tc.p, tc.org, tc.src, err)
		}
	}
}

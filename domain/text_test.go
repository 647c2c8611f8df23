package domain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// Every string an event carries ends up in Postgres text or jsonb, which
// hold no NUL, no invalid UTF-8 and no lone surrogate: each must be refused
// at ingest with the field named, or it would stop the region's projection.
func TestValidateRefusesWhatPostgresCannotHold(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	policy := func(details string) func(*Event) {
		return func(e *Event) { e.Type = TypePolicyUpdated; e.Details = json.RawMessage(details) }
	}
	tests := []struct {
		name      string
		mutate    func(*Event)
		wantField string
	}{
		{"actor.name NUL", func(e *Event) { e.Actor.Name = "nul\x00name" }, "actor.name"},
		{"actor.id NUL", func(e *Event) { e.Actor.ID = "u\x00" }, "actor.id"},
		{"actor.email NUL", func(e *Event) { e.Actor.Email = "a\x00@b.example" }, "actor.email"},
		{"target.kind NUL", func(e *Event) { e.Target = &Target{Kind: "U\x00", ID: "x"} }, "target.kind"},
		{"target.id NUL", func(e *Event) { e.Target = &Target{Kind: "U", ID: "\x00"} }, "target.id"},
		{"target.name NUL", func(e *Event) { e.Target = &Target{Kind: "U", ID: "x", Name: "a\x00"} }, "target.name"},
		{"userAgent NUL", func(e *Event) { e.UserAgent = "curl\x00" }, "userAgent"},
		{"requestId NUL", func(e *Event) { e.RequestID = "r\x00" }, "requestId"},
		{"requestId invalid UTF-8", func(e *Event) { e.RequestID = "r\xc3" }, "requestId"},
		{"details string escaped NUL", func(e *Event) { e.Details = json.RawMessage(`{"userId":"u\u0000"}`) }, "details.userId"},
		{"details string lone high surrogate", func(e *Event) { e.Details = json.RawMessage(`{"userId":"u\ud800"}`) }, "details.userId"},
		{"details string lone low surrogate", func(e *Event) { e.Details = json.RawMessage(`{"userId":"\udc00x"}`) }, "details.userId"},
		{"details raw invalid UTF-8", func(e *Event) { e.Details = json.RawMessage("{\"userId\":\"u\xff\"}") }, "details"},
		{"details key NUL", func(e *Event) { e.Details = json.RawMessage(`{"userId":"u","a\u0000":1}`) }, "details"},
		{"change before NUL", policy(`{"policyId":"p","changes":[{"field":"f","before":"x\u0000","after":"y"}]}`), "details.changes"},
		{"change after nested NUL", policy(`{"policyId":"p","changes":[{"field":"f","after":{"a":["\u0000"]}}]}`), "details.changes"},
		{"change nested key NUL", policy(`{"policyId":"p","changes":[{"field":"f","after":{"k\u0000":1}}]}`), "details.changes"},
		{"change field NUL", policy(`{"policyId":"p","changes":[{"field":"f\u0000"}]}`), "details.changes"},
		{"change number overflow", policy(`{"policyId":"p","changes":[{"field":"f","after":1e999}]}`), "details.changes[0].after"},
		{"change number huge exponent", policy(`{"policyId":"p","changes":[{"field":"f","after":1e-99999}]}`), "details.changes[0].after"},
		{"change nested too deep", policy(`{"policyId":"p","changes":[{"field":"f","after":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}]}`), "details.changes[0].after" + strings.Repeat("[0]", 32)},
		{"string list NUL", func(e *Event) {
			e.Type = "MFA_UPDATED"
			e.Details = json.RawMessage(`{"changedFields":["a\u0000"]}`)
		}, "details.changedFields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validEvent()
			tc.mutate(&e)
			err := e.Validate(now)
			var de *Error
			if !errors.As(err, &de) || de.Code != CodeBadUserInput {
				t.Fatalf("got %v, want BAD_USER_INPUT", err)
			}
			if !strings.HasPrefix(de.Field, tc.wantField) {
				t.Fatalf("error names %q, want a field under %q (%v)", de.Field, tc.wantField, err)
			}
		})
	}
}

func TestValidateAcceptsOrdinaryText(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for name, details := range map[string]string{
		"surrogate pair":   `{"policyId":"p","changes":[{"field":"f","before":"\ud83d\ude00","after":"ok"}]}`,
		"escaped controls": `{"policyId":"p","changes":[{"field":"f","before":"a\n\t\\u0000 is text","after":null}]}`,
		"numbers":          `{"policyId":"p","changes":[{"field":"f","before":-1.5e10,"after":{"n":[1,2,3e-300]}}]}`,
		"unicode":          `{"policyId":"p","changes":[{"field":"名前","before":"Zoë","after":"Ωmega"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := validEvent()
			e.Type, e.Details = TypePolicyUpdated, json.RawMessage(details)
			if err := e.Validate(now); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFilterRefusesNUL(t *testing.T) {
	for field, f := range map[string]Filter{
		"filter.search":       {Search: "a\x00"},
		"filter.actorId":      {ActorID: "\x00"},
		"filter.excludeTypes": {ExcludeTypes: []EventType{"NOPE"}},
	} {
		err := f.Validate()
		var de *Error
		if !errors.As(err, &de) || de.Field != field || de.Code != CodeBadUserInput {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// occurredAt may lie at most the configured skew ahead of the recording
// time; beyond it the event is refused with BAD_USER_INPUT on occurredAt.
func TestOccurredAtFutureSkewIsConfigurable(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		ahead     time.Duration
		maxFuture time.Duration
		ok        bool
	}{
		{"default, inside", 4 * time.Minute, MaxClockSkew, true},
		{"default, beyond", 6 * time.Minute, MaxClockSkew, false},
		{"an hour allowed, 50 minutes ahead", 50 * time.Minute, time.Hour, true},
		{"an hour allowed, 200 days ahead", 200 * Day, time.Hour, false},
		{"one second allowed, two ahead", 2 * time.Second, time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validEvent()
			e.OccurredAt = now.Add(tc.ahead)
			err := e.ValidateWithin(now, tc.maxFuture)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || de.Code != CodeBadUserInput || de.Field != "occurredAt" {
				t.Fatalf("got %v, want BAD_USER_INPUT on occurredAt", err)
			}
		})
	}
}

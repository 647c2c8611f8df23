package domain

import (
	"errors"
	"strings"
	"testing"
)

// goodEvent is an event as a producer sends it over NATS; %s marks where a
// test puts extra fields of details.
const goodEvent = `{"id":"01JDQ8Z6V1K9E3M4N5P6Q7R8S9","orgId":"acme","source":"PLATFORM","type":"USER_LOGOUT",` +
	`"occurredAt":"2026-11-01T00:00:00Z","actor":{"kind":"USER","id":"u1","name":"Ann"},` +
	`"target":{"kind":"USER","id":"u1"},"details":{"userId":"u1"}}`

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		wantField string // "-": accepted
	}{
		{"good", goodEvent, "-"},
		{"details key twice, NUL first", strings.Replace(goodEvent, `"details":{"userId":"u1"}`, `"details":{"userId":"\u0000","userId":"u1"}`, 1), "details.userId"},
		{"details key twice, surrogate first", strings.Replace(goodEvent, `"details":{"userId":"u1"}`, `"details":{"userId":"\ud800","userId":"u1"}`, 1), "details.userId"},
		{"orgId twice", strings.Replace(goodEvent, `"orgId":"acme"`, `"orgId":"acme","orgId":"globex"`, 1), "orgId"},
		{"actor id twice", strings.Replace(goodEvent, `"id":"u1","name"`, `"id":"u1","id":"u2","name"`, 1), "actor.id"},
		{"target kind twice", strings.Replace(goodEvent, `"target":{"kind":"USER"`, `"target":{"kind":"USER","kind":"ROLE"`, 1), "target.kind"},
		{"lone surrogate in actor name", strings.Replace(goodEvent, `"name":"Ann"`, `"name":"Ann\ud800"`, 1), "actor.name"},
		{"NUL in actor name", strings.Replace(goodEvent, `"name":"Ann"`, `"name":"A\u0000"`, 1), "actor.name"},
		{"second spelling of orgId", strings.Replace(goodEvent, `"orgId":"acme"`, `"orgId":"acme","ORGID":"globex"`, 1), "ORGID"},
		{"second spelling in actor", strings.Replace(goodEvent, `"name":"Ann"`, `"name":"Ann","Name":"Eve"`, 1), "actor.Name"},
		{"unknown field", strings.Replace(goodEvent, `"orgId"`, `"extra":1,"orgId"`, 1), "extra"},
		{"wrong type", strings.Replace(goodEvent, `"orgId":"acme"`, `"orgId":7`, 1), "orgId"},
		{"not an object", `[1]`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := DecodeEvent([]byte(tc.raw))
			if tc.wantField == "-" {
				if err != nil || e.OrgID != "acme" || e.Actor.Name != "Ann" {
					t.Fatalf("got %+v, %v", e, err)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || de.Code != CodeBadUserInput || de.Field != tc.wantField {
				t.Fatalf("got %v (field %q), want BAD_USER_INPUT on %q", err, fieldOf(err), tc.wantField)
			}
		})
	}
}

func fieldOf(err error) string {
	var de *Error
	if errors.As(err, &de) {
		return de.Field
	}
	return ""
}

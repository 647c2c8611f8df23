package query

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
)

// FuzzParse checks that Parse never panics, that what it accepts prints as
// text it reads back as the same query, and that an accepted query matches
// and compiles without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "a", `"two words"`, `"say \"hi\""`, `a\ b`, "a OR b c", "(a OR b) -c", "NOT (a b)", "--a",
		"type:USER_* actor:*@example.com -source:PLATFORM occurred:>=2026-11-01",
		"category:mfa actor.kind:user target.kind:POLICY target.id:p-1 target.name:\"Prod (eu)\"",
		"occurred:2026-11-01..2026-11-30", "occurred:*..2026-11-01T10:00:00.5+02:00", "occurred:2026-11-01",
		"ip:10.0.0.0/8", "ip:2001:db8::/32", "ip:::ffff:1.2.3.4", "details.policyId:p-* details.changes.0.field:x",
		"request:r-1 agent:curl/* id:01J", `actor.name:Gr\*ce*`, "a AND (b OR (c OR -d)) AND e",
		"occurred:<=9999-12-31", "occurred:0000-01-01T00:00:00+01:00", "(a", "a)", "OR", "a -", `"x"y`, "type:", "12:30", "é\x00", "\xff",
	} {
		f.Add(s)
	}
	e := &domain.Event{Type: "USER_CREATED", Source: domain.SourcePlatform, OccurredAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Actor: domain.Actor{Kind: domain.ActorUser, ID: "u"}, Target: &domain.Target{Kind: "K", ID: "i"}, IPAddress: "10.0.0.1",
		Details: json.RawMessage(`{"policyId":"p-1","count":2}`)}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			if domain.CodeOf(err) != domain.CodeBadUserInput || !strings.Contains(err.Error(), "query: ") {
				t.Fatalf("Parse(%q) = %v, want a BAD_USER_INPUT error on query", s, err)
			}
			return
		}
		text := q.String()
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) succeeded, but its String %q does not parse: %v", s, text, err)
		}
		if !reflect.DeepEqual(again, q) {
			t.Fatalf("Parse(%q) = %#v; its String %q parses as %#v", s, q.Root(), text, again.Root())
		}
		q.Match(e)
		n := 0
		q.SQL(func(any) string { n++; return "$" })
	})
}

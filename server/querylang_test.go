package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

// The filter's query reaches every read path through the API: a good one
// filters lists, counts and live feeds; a bad one is BAD_USER_INPUT naming
// the column, in the list, the export and the subscription alike.
func TestQueryLanguageThroughTheAPI(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	at := time.Now().Add(-time.Hour)
	ada, bob := userCreated("acme", at, "ada@example.com"), userCreated("acme", at.Add(time.Second), "bob@example.org")
	bob["ipAddress"] = "10.20.30.40"
	mustRecord(t, env, []map[string]any{ada, bob})
	env.WaitProjected(t)

	for q, want := range map[string]any{
		"details.userEmail:*@example.com":            ada["id"],
		"type:USER_CREATED ip:10.0.0.0/8":            bob["id"],
		`-target.name:"ada@example.com" type:USER_*`: bob["id"],
	} {
		c := list(t, env, "acme", map[string]any{"query": q}, 10, "")
		if c.TotalCount != 1 || len(c.Edges) != 1 || c.Edges[0].Node.ID != want {
			t.Errorf("query %q: %d events (total %d), want only %s", q, len(c.Edges), c.TotalCount, want)
		}
	}

	admin := testenv.AdminToken(t, "acme")
	for name, call := range map[string]string{
		"list":   `query($f: AuditEventFilter) { auditEvents(filter: $f) { totalCount } }`,
		"export": `mutation($f: AuditEventFilter) { startAuditExport(filter: $f) { id } }`,
	} {
		r := env.Do(t, admin, call, map[string]any{"f": map[string]any{"query": "type:USER_CREATED actr:ada"}})
		if code := r.ErrorCode(t); code != "BAD_USER_INPUT" {
			t.Errorf("%s with a bad query: %s, want BAD_USER_INPUT", name, code)
			continue
		}
		if field := r.Errors[0].Extensions["field"]; field != "filter.query" {
			t.Errorf("%s with a bad query: extensions.field %v, want filter.query", name, field)
		}
		if msg := r.Errors[0].Message; !strings.Contains(msg, "at column 19") || !strings.Contains(msg, `unknown field "actr"`) {
			t.Errorf("%s with a bad query: message %q does not name the column and field", name, msg)
		}
	}

	w := connectWS(t, env, admin)
	w.subscribe("bad", liveSubscription, map[string]any{"f": map[string]any{"query": "(type:USER_CREATED"}})
	if code := w.errorCode("bad"); code != "BAD_USER_INPUT" {
		t.Fatalf("live with a bad query: %s, want BAD_USER_INPUT", code)
	}
	w.subscribe("s", liveSubscription, map[string]any{"f": map[string]any{"query": "actor.email:grace@* details.userEmail:*.org"}})
	waitActive(t, env, 1)
	dot := userCreated("acme", time.Now(), "dot@example.com")
	org := userCreated("acme", time.Now(), "carol@example.org")
	mustRecord(t, env, []map[string]any{dot, org})
	if got := w.nextEvent("s"); got.ID != org["id"] {
		t.Fatalf("live: got %s, want only the .org event %s", got.ID, org["id"])
	}
}

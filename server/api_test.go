package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

func TestPageInfoAndDateOnlyBounds(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	mustRecord(t, env, []map[string]any{
		userCreated("acme", day.Add(-time.Second), "before@example.com"),
		userCreated("acme", day, "midnight@example.com"),
		userCreated("acme", day.Add(12*time.Hour), "noon@example.com"),
		userCreated("acme", day.Add(24*time.Hour), "next@example.com"),
	})
	env.WaitProjected(t)

	// A date alone is the midnight (UTC) that starts it: from inclusive,
	// to exclusive.
	f := map[string]any{"types": []string{"USER_CREATED"}, "from": "2026-03-10", "to": "2026-03-11"}
	c := list(t, env, "acme", f, 1, "")
	if c.TotalCount != 2 || c.Edges[0].Node.Target.Name != "noon@example.com" {
		t.Fatalf("date-only range: %d events, first %+v", c.TotalCount, c.Edges[0].Node.Target)
	}
	var page struct {
		AuditEvents struct {
			PageInfo struct{ HasNextPage, HasPreviousPage bool }
		}
	}
	q := `query($f: AuditEventFilter, $after: String) { auditEvents(filter: $f, first: 1, after: $after) { pageInfo { hasNextPage hasPreviousPage } } }`
	env.Do(t, testenv.AdminToken(t, "acme"), q, map[string]any{"f": f}).MustData(t, &page)
	if !page.AuditEvents.PageInfo.HasNextPage || page.AuditEvents.PageInfo.HasPreviousPage {
		t.Fatalf("page 1: %+v", page.AuditEvents.PageInfo)
	}
	env.Do(t, testenv.AdminToken(t, "acme"), q, map[string]any{"f": f, "after": *c.PageInfo.EndCursor}).MustData(t, &page)
	if page.AuditEvents.PageInfo.HasNextPage || !page.AuditEvents.PageInfo.HasPreviousPage {
		t.Fatalf("page 2: %+v", page.AuditEvents.PageInfo)
	}
}

func TestRecordAnswersSayWhy(t *testing.T) {
	env := testenv.Start(t)
	at := time.Now().Add(-time.Minute)
	res := record(t, env, []map[string]any{userCreated("optedout", at, "x@example.com")})
	if res[0].Status != "DROPPED_DISABLED" || res[0].Reason == nil || !strings.Contains(*res[0].Reason, "disabled for org optedout") {
		t.Fatalf("dropped: %+v %s", res[0], deref(res[0].Reason))
	}

	env.EnableOrg(t, "acme", domain.RegionUS)
	bad := userCreated("acme", at, "y@example.com")
	bad["occurredAt"] = "26/11/2026 10:00"
	r := env.Do(t, testenv.ServiceToken(t), recordMutation, map[string]any{"events": []any{userCreated("acme", at, "z@example.com"), bad}})
	if r.ErrorCode(t) != "BAD_USER_INPUT" {
		t.Fatalf("malformed occurredAt: %+v", r.Errors)
	}
	e := r.Errors[0]
	if !strings.Contains(e.Message, "2026-11-25T10:00:00Z") || !strings.Contains(e.Message, `"26/11/2026 10:00"`) {
		t.Fatalf("message gives no example or value: %q", e.Message)
	}
	if path := fmt.Sprint(e.Path); !strings.Contains(path, "occurredAt") || !strings.Contains(path, "1") {
		t.Fatalf("path %v does not name events[1].occurredAt", e.Path)
	}
	r = env.Do(t, testenv.ServiceToken(t), recordMutation, map[string]any{"events": []any{
		ev("acme", "USER_LOGOUT", "PLATFORM", at, map[string]any{"userId": "u"}, map[string]any{"occurredAt": "0001-01-01T00:00:00Z"})}})
	var out struct {
		RecordAuditEvents struct{ Results []recordResult }
	}
	r.MustData(t, &out)
	if reason := deref(out.RecordAuditEvents.Results[0].Reason); !strings.Contains(reason, "occurredAt: is required") || !strings.Contains(reason, "zero time") {
		t.Fatalf("zero occurredAt: %q", reason)
	}
}

// The playground is served from the binary and reaches no other host.
func TestPlaygroundIsSelfContained(t *testing.T) {
	env := testenv.Start(t)
	for path, ctype := range map[string]string{"/": "text/html", "/playground.js": "text/javascript", "/playground.css": "text/css"} {
		resp, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("%s: CSP %q", path, resp.Header.Get("Content-Security-Policy"))
		}
		if bytes.Contains(body, []byte("http://")) || bytes.Contains(body, []byte("https://")) || bytes.Contains(body, []byte("//cdn")) {
			t.Fatalf("%s refers to another host", path)
		}
		if path == "/playground.js" && !bytes.Contains(body, []byte("#token=")) && !bytes.Contains(body, []byte("token=")) {
			t.Fatal("the playground does not take a token from the fragment")
		}
	}
}

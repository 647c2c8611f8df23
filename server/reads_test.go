package server_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

// clock is a settable clock for auditd.
type clock struct {
	mu sync.Mutex
	at time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.at }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.at = c.at.Add(d); c.mu.Unlock() }

type viewed struct {
	Action, Filter, EventID, ResourceKind, ResourceID, ExportID *string
	Actor                                                       struct{ Kind, ID string }
	IPAddress, UserAgent                                        *string
	Details                                                     struct {
		Count, Distinct int
		Reads           []string
	}
}

// viewedEvents reads org's AUDIT_LOG_VIEWED events straight from the read
// model's query path, newest first.
func viewedEvents(t *testing.T, env *testenv.Env, org string) []viewed {
	t.Helper()
	env.WaitProjected(t)
	var out struct {
		AuditEvents struct {
			Edges []struct{ Node viewed }
		}
	}
	env.Do(t, testenv.AdminToken(t, org), `{ auditEvents(first: 100, filter: {types: [AUDIT_LOG_VIEWED]}) {
	  edges { node { actor { kind id } ipAddress userAgent details ... on AuditLogEvent { action filter eventId resourceKind resourceId exportId } } } } }`, nil).MustData(t, &out)
	var vs []viewed
	for _, e := range out.AuditEvents.Edges {
		vs = append(vs, e.Node)
	}
	return vs
}

// counted adds up the reads the events of action stand for.
func counted(vs []viewed, action string) int {
	n := 0
	for _, v := range vs {
		if v.Action != nil && *v.Action == action {
			n += v.Details.Count
		}
	}
	return n
}

func count(vs []viewed, action string) int {
	n := 0
	for _, v := range vs {
		if v.Action != nil && *v.Action == action {
			n++
		}
	}
	return n
}

// Reading the audit trail is itself audited, once per reader, read and
// ten minutes, so paging and polling do not flood the log.
func TestReadsOfTheLogAreRecorded(t *testing.T) {
	clk := &clock{at: time.Now()}
	env := testenv.Start(t, func(c *server.Config) { c.Now = clk.Now })
	env.EnableOrg(t, "acme", domain.RegionUS)
	var events []map[string]any
	for range 5 {
		events = append(events, userCreated("acme", clk.Now().Add(-time.Hour), "r@example.com"))
	}
	mustRecord(t, env, events)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")

	// One search, paged through and polled: one event.
	f := map[string]any{"types": []string{"USER_CREATED"}}
	first := list(t, env, "acme", f, 2, "")
	list(t, env, "acme", f, 2, *first.PageInfo.EndCursor)
	list(t, env, "acme", f, 2, "")
	// Another search, an event opened, a history read: one event each.
	list(t, env, "acme", map[string]any{"search": "r@example"}, 2, "")
	id := first.Edges[0].Node.ID
	for range 3 {
		env.Do(t, admin, `query($id: ID!) { auditEvent(id: $id) { id } }`, map[string]any{"id": id}).MustData(t, &struct{}{})
	}
	env.Do(t, admin, `{ resourceHistory(kind: "USER", id: "u-r@example.com") { totalCount } }`, nil).MustData(t, &struct{}{})

	// The first read of each kind is recorded at once; the others of the
	// window are counted, to be recorded when it ends.
	vs := viewedEvents(t, env, "acme")
	if count(vs, "search") != 1 || count(vs, "view") != 1 || count(vs, "history") != 1 {
		t.Fatalf("want one event of each kind: %+v", vs)
	}
	for _, v := range vs {
		if v.Actor.ID != "user:admin@acme" || v.IPAddress == nil || *v.IPAddress != "127.0.0.1" || v.UserAgent == nil || v.Details.Count != 1 {
			t.Fatalf("read event without its reader or count: %+v", v)
		}
		if *v.Action == "view" && (v.EventID == nil || *v.EventID != id) {
			t.Fatalf("view names %v, want %s", v.EventID, id)
		}
		if *v.Action == "history" && (v.ResourceKind == nil || *v.ResourceKind != "USER") {
			t.Fatalf("history: %+v", v)
		}
		if *v.Action == "search" && (v.Filter == nil || *v.Filter != `{"types":["USER_CREATED"]}`) {
			t.Fatalf("search: %+v", v)
		}
	}

	// When the window ends, the counted reads are recorded: the four
	// searches after the first (and viewedEvents' own), naming the other
	// filter, and the two views after the first.
	clk.Add(11 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for counted(vs, "search") < 5 || counted(vs, "view") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after the window, %d searches and %d views counted: %+v", counted(vs, "search"), counted(vs, "view"), vs)
		}
		vs = viewedEvents(t, env, "acme")
	}
	found := false
	for _, v := range vs {
		for _, r := range v.Details.Reads {
			var f map[string]any
			if json.Unmarshal([]byte(r), &f) == nil && f["search"] == "r@example" {
				found = v.Details.Distinct >= 2
			}
		}
	}
	if !found {
		t.Fatalf("no search event names the second filter: %+v", vs)
	}

	// A download through a signed link is recorded too, with the link as
	// the reader.
	job := startExport(t, env, admin, f, "CSV")
	job = waitExport(t, env, admin, job.ID)
	resp := get(t, *job.DownloadURL, "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	vs = viewedEvents(t, env, "acme")
	found = false
	for _, v := range vs {
		if *v.Action == "download" && v.ExportID != nil && *v.ExportID == job.ID && v.Actor.Kind == "SYSTEM" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no download event for %s: %+v", job.ID, vs)
	}
}

// An organization that opted out stores nothing, reads included, and its
// administrators still read their old events.
func TestReadsOfAnOptedOutOrgAreServed(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	mustRecord(t, env, []map[string]any{userCreated("acme", time.Now().Add(-time.Hour), "o@example.com")})
	admin := testenv.AdminToken(t, "acme")
	settingsMutation(t, env, admin, disable, nil)
	env.WaitProjected(t)
	if c := list(t, env, "acme", map[string]any{"types": []string{"USER_CREATED"}}, 10, ""); c.TotalCount != 1 {
		t.Fatalf("old events: %d", c.TotalCount)
	}
	if vs := viewedEvents(t, env, "acme"); len(vs) != 0 {
		t.Fatalf("an opted-out org's reads were stored: %+v", vs)
	}
}

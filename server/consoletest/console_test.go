//go:build browser

// Package consoletest drives the console at /console/ in headless Chromium
// (Debian's chromium package) against a real auditd with real Postgres and
// JetStream. Run it with make test-browser. Every request a page makes must
// go to a loopback host, or the test fails.
package consoletest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

// chromiumPath is Debian's chromium; CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

type suite struct {
	env     *testenv.Env
	browser context.Context
	admin   string
	shots   string // directory for screenshots; empty takes none
	axe     string // axe-core's source; empty skips the audits
	mu      sync.Mutex
	bad     []string // requests to hosts that are not loopback
}

func TestConsole(t *testing.T) {
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Fatalf("chromium not found at %s (apt-get install chromium, or set CHROMIUM): %v", chromiumPath(), err)
	}
	// The page of another origin: same loopback host, another port.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	otherHost := other.Addr().String()
	env := testenv.Start(t, func(c *server.Config) {
		c.AllowedOrigins = []string{otherHost}
		// Log streams may deliver to the test's webhook receiver on loopback.
		c.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.LogStreamTick = 100 * time.Millisecond
	})
	s := &suite{env: env, admin: testenv.AdminToken(t, "acme"), shots: os.Getenv("CONSOLE_SCREENSHOTS")}
	if p := os.Getenv("AXE_CORE_JS"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("axe-core: %v", err)
		}
		s.axe = string(b)
	} else {
		t.Log("AXE_CORE_JS not set: accessibility audits skipped (make test-browser installs axe-core)")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath()),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		// Nothing but loopback resolves, as a second guard.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	b, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Run(b); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	s.browser = b
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, u := range s.bad {
			t.Errorf("request to a host that is not loopback: %s", u)
		}
	})

	t.Run("SettingsEnable", s.testSettingsEnable)
	s.seed(t)
	t.Run("Table", s.testTable)
	t.Run("Filters", s.testFilters)
	t.Run("ViewMoreAndHistory", s.testViewMoreAndHistory)
	t.Run("Export", s.testExport)
	t.Run("Live", s.testLive)
	t.Run("SearchLanguage", s.testSearchLanguage)
	t.Run("PartialSearch", s.testPartialSearch)
	t.Run("Catalog", s.testCatalog)
	t.Run("NonAdmin", s.testNonAdmin)
	t.Run("Errors", s.testErrors)
	t.Run("CORSPersistedQuery", func(t *testing.T) { s.testCORS(t, other) })
	t.Run("LogStreams", s.testLogStreams)
	t.Run("LogStreamDestinations", s.testLogStreamDestinations)
}

// tab opens a new tab whose requests are watched and whose script errors
// fail t.
func (s *suite) tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s.browser)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	var mu sync.Mutex
	var errs []string
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if !loopback(e.Request.URL) {
				s.mu.Lock()
				s.bad = append(s.bad, e.Request.URL)
				s.mu.Unlock()
			}
		case *network.EventWebSocketCreated:
			if !loopback(e.URL) {
				s.mu.Lock()
				s.bad = append(s.bad, e.URL)
				s.mu.Unlock()
			}
		case *runtime.EventExceptionThrown:
			mu.Lock()
			errs = append(errs, e.ExceptionDetails.Error())
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Errorf("uncaught script error: %s", e)
		}
	})
	run(t, ctx, network.Enable(), runtime.Enable())
	return ctx
}

func loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about", "chrome", "devtools":
		return true
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// waitJS waits until expr is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Poll(expr, nil, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		var html string
		_ = chromedp.Run(ctx, chromedp.Evaluate(`(document.querySelector('#alert:not([hidden])')?.innerText || '') + ' | ' + location.href`, &html))
		t.Fatalf("waiting for %s (%s): %v; page: %s", what, expr, err, html)
	}
}

// waitFor waits until cond holds, outside the page.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("waiting for %s: gave up after 20s", what)
		}
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	var v T
	run(t, ctx, chromedp.Evaluate(expr, &v))
	return v
}

// open loads the console at query (e.g. "?view=settings") signed in with token.
func (s *suite) open(t *testing.T, ctx context.Context, query, token string) {
	t.Helper()
	run(t, ctx, chromedp.Navigate(s.env.URL+"/console/"+query+"#token="+url.QueryEscape(token)))
}

func (s *suite) screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if s.shots == "" {
		return
	}
	var png []byte
	run(t, ctx, chromedp.CaptureScreenshot(&png)) // the viewport, as PNG
	if err := os.WriteFile(filepath.Join(s.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// audit runs axe-core on the page and fails t on serious or critical
// violations.
func (s *suite) audit(t *testing.T, ctx context.Context, screen string) {
	t.Helper()
	if s.axe == "" {
		return
	}
	var res []struct {
		ID, Impact, Help string
		Nodes            []struct{ Target []any }
	}
	run(t, ctx, chromedp.Evaluate(s.axe, nil), chromedp.Evaluate(`axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)`, &res,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	t.Logf("axe on %s: %d violations", screen, len(res))
	for _, v := range res {
		if v.Impact != "serious" && v.Impact != "critical" {
			t.Logf("axe on %s, %s: %s (%s)", screen, v.Impact, v.ID, v.Help)
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			var where []string
			for _, n := range v.Nodes {
				where = append(where, fmt.Sprint(n.Target...))
			}
			t.Errorf("axe on %s: %s (%s): %s at %v", screen, v.ID, v.Impact, v.Help, where)
		}
	}
}

// ------------------------------------------------------------------ seeding

const (
	orgID       = "acme"
	seedUsers   = 60 // USER_CREATED on PLATFORM
	seedVM      = 7  // events on INSIGHT_VM: 5 policy events and 2 others
	zedCount    = 3  // users named Zed, for search
	policyID    = "pol-1"
	policyName  = "CIS Level 1"
	policyIP    = "203.0.113.7"
	policyAgent = "PolicyBuilder/2.1"
)

func event(typ, source string, at time.Time, name, email string, details, extra map[string]any) map[string]any {
	e := map[string]any{
		"id": ulid.Make().String(), "orgId": orgID, "type": typ, "source": source,
		"occurredAt": at.UTC().Format(time.RFC3339Nano),
		"actor":      map[string]any{"kind": "USER", "id": "u-" + email, "name": name, "email": email},
		"details":    details,
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

func (s *suite) record(t *testing.T, events []map[string]any) {
	t.Helper()
	r := s.env.Do(t, testenv.ServiceToken(t), `mutation($e: [AuditEventInput!]!) { recordAuditEvents(events: $e) { results { status reason } } }`,
		map[string]any{"e": events})
	var out struct {
		RecordAuditEvents struct {
			Results []struct{ Status, Reason string }
		}
	}
	r.MustData(t, &out)
	for i, res := range out.RecordAuditEvents.Results {
		if res.Status != "RECORDED" {
			t.Fatalf("event %d: %s %s", i, res.Status, res.Reason)
		}
	}
}

// seedBase is when the seeded events start: the oldest is two hours ago.
var seedBase = time.Now().Add(-2 * time.Hour).Truncate(time.Minute)

func (s *suite) seed(t *testing.T) {
	var evs []map[string]any
	for i := range seedUsers {
		name, email := fmt.Sprintf("User %02d", i), fmt.Sprintf("user%02d@acme.example", i)
		if i < zedCount {
			name, email = fmt.Sprintf("Zed Zebra %d", i), fmt.Sprintf("zed%d@acme.example", i)
		}
		evs = append(evs, event("USER_CREATED", "PLATFORM", seedBase.Add(time.Duration(i)*time.Minute), "Grace Hopper", "grace@acme.example",
			map[string]any{"userId": "u" + email, "userEmail": email, "userName": name},
			map[string]any{"target": map[string]any{"kind": "USER", "id": "u" + email, "name": name}}))
	}
	target := map[string]any{"kind": "POLICY", "id": policyID, "name": policyName}
	change := func(field string, before, after any) map[string]any {
		return map[string]any{"field": field, "before": before, "after": after}
	}
	pol := func(typ string, min int, details map[string]any) map[string]any {
		details["policyId"] = policyID
		return event(typ, "INSIGHT_VM", seedBase.Add(time.Duration(70+min)*time.Minute), "Paula Policy", "paula@acme.example", details,
			map[string]any{"target": target, "ipAddress": policyIP, "userAgent": policyAgent, "requestId": fmt.Sprintf("req-%d", min)})
	}
	evs = append(evs,
		pol("POLICY_CREATED", 0, map[string]any{"policyName": policyName}),
		pol("POLICY_UPDATED", 1, map[string]any{"changes": []any{change("threshold", 3, 5), change("enabled", false, true)}}),
		pol("POLICY_UPDATED", 2, map[string]any{"changes": []any{change("rules", []any{"a"}, []any{"a", "b"})}}),
		pol("POLICY_UPDATED", 3, map[string]any{"changes": []any{change("severity", "low", "high")}}),
		pol("POLICY_DELETED", 4, map[string]any{}),
		event("USER_TO_PRODUCT_NAVIGATION", "INSIGHT_VM", seedBase.Add(80*time.Minute), "Victor Vm", "victor@acme.example",
			map[string]any{"userId": "u-v", "productCode": "IVM"}, nil),
		event("USER_TO_PRODUCT_NAVIGATION", "INSIGHT_VM", seedBase.Add(81*time.Minute), "Victor Vm", "victor@acme.example",
			map[string]any{"userId": "u-v", "productCode": "IVM"}, nil),
	)
	s.record(t, evs)
	s.env.WaitProjected(t)
}

// ------------------------------------------------------------------- screens

func (s *suite) testSettingsEnable(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "?view=settings", s.admin)
	// The token left the address bar for session storage.
	waitJS(t, ctx, "the token stored", `sessionStorage.getItem('auditlog.console.token') !== null`)
	if u := eval[string](t, ctx, `location.href`); strings.Contains(u, "token") {
		t.Fatalf("token still in the URL: %s", u)
	}
	waitJS(t, ctx, "settings loaded", `document.getElementById('toggle-state').textContent === 'Disabled' && !document.getElementById('audit-toggle').disabled`)
	s.audit(t, ctx, "settings (disabled)")
	run(t, ctx, chromedp.Click("#audit-toggle", chromedp.ByQuery))
	waitJS(t, ctx, "the region dialog", `document.getElementById('enable-dialog').open`)
	if txt := eval[string](t, ctx, `document.getElementById('enable-dialog').innerText`); !strings.Contains(txt, "cannot be changed later") {
		t.Errorf("region dialog does not warn: %q", txt)
	}
	s.screenshot(t, ctx, "settings-region")
	s.audit(t, ctx, "region dialog")
	run(t, ctx, chromedp.Click(`input[name=region][value=EU]`, chromedp.ByQuery), chromedp.Click("#enable-confirm", chromedp.ByQuery))
	waitJS(t, ctx, "the confirmation", `!document.getElementById('settings-done').hidden`)
	done := eval[string](t, ctx, `document.getElementById('settings-done').innerText`)
	if !strings.Contains(done, "You enabled audit logging!") || !strings.Contains(done, "ollection starts immediately") {
		t.Errorf("confirmation: %q", done)
	}
	facts := eval[string](t, ctx, `document.getElementById('settings-facts').innerText`)
	if !strings.Contains(facts, "EU") || !strings.Contains(facts, "Ada Admin") || !strings.Contains(facts, "ada@acme.example") {
		t.Errorf("settings facts: %q", facts)
	}
	if f := eval[string](t, ctx, `document.activeElement.id`); f != "audit-toggle" {
		t.Errorf("focus after the dialog is on %q, want the switch", f)
	}
	if st := eval[string](t, ctx, `document.getElementById('audit-toggle').getAttribute('aria-checked')`); st != "true" {
		t.Errorf("switch aria-checked %q", st)
	}
	s.screenshot(t, ctx, "settings-enabled")
	// Off and on again: the region is kept and not asked for.
	run(t, ctx, chromedp.Click("#audit-toggle", chromedp.ByQuery))
	waitJS(t, ctx, "disabled", `document.getElementById('toggle-state').textContent === 'Disabled'`)
	run(t, ctx, chromedp.Click("#audit-toggle", chromedp.ByQuery))
	waitJS(t, ctx, "enabled again without a dialog", `document.getElementById('toggle-state').textContent === 'Enabled' && !document.getElementById('enable-dialog').open`)
}

// seen counts the rows other than AUDIT_LOG_VIEWED: every search is itself
// recorded as one, its filter (and so the search text) in its payload.
const seen = `[...document.querySelectorAll('#event-rows tr')].filter(r => r.children[1].innerText !== 'AUDIT_LOG_VIEWED').length`

func rowCount(t *testing.T, ctx context.Context) int {
	return eval[int](t, ctx, seen)
}

func (s *suite) testTable(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "", s.admin)
	waitJS(t, ctx, "50 rows", `document.querySelectorAll('#event-rows tr').length === 50 && window.consoleMetrics`)
	var m struct {
		FirstTableRender struct {
			Rows                       int
			FetchMs, RenderMs, TotalMs float64
		}
	}
	run(t, ctx, chromedp.Evaluate(`window.consoleMetrics`, &m))
	r := m.FirstTableRender
	t.Logf("first render of the table: %d rows, %.1f ms request, %.1f ms render, %.1f ms in all", r.Rows, r.FetchMs, r.RenderMs, r.TotalMs)
	if r.TotalMs > 1000 {
		t.Errorf("first render took %.0f ms, over 1 s", r.TotalMs)
	}
	var heads []string
	run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll('#event-table thead th')].map(th => th.innerText.trim())`, &heads))
	if strings.Join(heads, "|") != "Time|Action|Description|Name|Email|Product|View More" {
		t.Errorf("columns: %q", heads)
	}
	// Newest first: the seeded INSIGHT_VM navigation at +81 min is newer
	// than every seeded user; the settings changes are newer still.
	times := eval[[]string](t, ctx, `[...document.querySelectorAll('#event-rows time')].map(t => t.getAttribute('datetime'))`)
	for i := 1; i < len(times); i++ {
		if times[i] > times[i-1] {
			t.Fatalf("row %d (%s) is newer than row %d (%s)", i, times[i], i-1, times[i-1])
		}
	}
	if title := eval[string](t, ctx, `document.querySelector('#event-rows time').title`); !strings.HasPrefix(title, "UTC: ") || !strings.HasSuffix(title, "Z") {
		t.Errorf("time title %q", title)
	}
	total := eval[string](t, ctx, `document.getElementById('total').textContent`)
	if !strings.HasPrefix(total, "Showing 50 of ") {
		t.Errorf("total: %q", total)
	}
	s.screenshot(t, ctx, "table")
	s.audit(t, ctx, "audit table")
	run(t, ctx, chromedp.Click("#load-more", chromedp.ByQuery))
	waitJS(t, ctx, "more rows", `document.querySelectorAll('#event-rows tr').length > 50`)
	n := eval[int](t, ctx, `document.querySelectorAll('#event-rows tr').length`)
	ids := eval[int](t, ctx, `new Set([...document.querySelectorAll('#event-rows tr')].map(r => r.dataset.id)).size`)
	if ids != n {
		t.Errorf("%d rows but %d distinct events", n, ids)
	}
	if n := rowCount(t, ctx); n < seedUsers+seedVM {
		t.Errorf("%d rows after load more, want at least %d", n, seedUsers+seedVM)
	}
}

func (s *suite) testFilters(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "", s.admin)
	waitJS(t, ctx, "rows", `document.querySelectorAll('#event-rows tr').length === 50`)

	// Search: typed, debounced, in the URL.
	run(t, ctx, chromedp.SendKeys("#f-search", "zed", chromedp.ByQuery))
	waitJS(t, ctx, "search results", `location.search.includes('q=zed') && `+seen+` === `+fmt.Sprint(zedCount))

	// Source, on top of the search cleared.
	run(t, ctx, chromedp.Click("#clear-filters", chromedp.ByQuery))
	waitJS(t, ctx, "cleared", `location.search === '' && document.querySelectorAll('#event-rows tr').length === 50`)
	run(t, ctx, chromedp.Evaluate(`(() => { const s = document.getElementById('f-source'); s.value = 'INSIGHT_VM'; s.dispatchEvent(new Event('change')); })()`, nil))
	waitJS(t, ctx, "InsightVM only", `location.search.includes('source=INSIGHT_VM') && document.querySelectorAll('#event-rows tr').length === `+fmt.Sprint(seedVM))
	if p := eval[[]string](t, ctx, `[...new Set([...document.querySelectorAll('#event-rows tr td:nth-child(6)')].map(td => td.innerText))]`); len(p) != 1 || p[0] != "InsightVM" {
		t.Errorf("products shown: %q", p)
	}

	// Date range: the policy events (+70..+74 min) without the navigations.
	from := seedBase.Add(70 * time.Minute).Local().Format("2006-01-02T15:04:05")
	to := seedBase.Add(75 * time.Minute).Local().Format("2006-01-02T15:04:05")
	run(t, ctx, chromedp.Evaluate(fmt.Sprintf(`(() => {
		for (const [id, v] of [['f-from', %q], ['f-to', %q]]) { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('change')); }
	})()`, from, to), nil))
	waitJS(t, ctx, "the date range", `location.search.includes('from=') && location.search.includes('to=') && document.querySelectorAll('#event-rows tr').length === 5`)
	q := eval[string](t, ctx, `location.search`)
	vals, _ := url.ParseQuery(strings.TrimPrefix(q, "?"))
	if vals.Get("from") != seedBase.Add(70*time.Minute).UTC().Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("from in the URL: %q", vals.Get("from"))
	}
	s.screenshot(t, ctx, "filters")
	s.audit(t, ctx, "filtered table")

	// A bookmark of this view shows the same rows.
	bookmark := eval[string](t, ctx, `location.href`)
	ctx2 := s.tab(t)
	s.open(t, ctx2, strings.TrimPrefix(bookmark, s.env.URL+"/console/"), s.admin)
	waitJS(t, ctx2, "the bookmarked view", `document.querySelectorAll('#event-rows tr').length === 5 && document.getElementById('f-source').value === 'INSIGHT_VM' && document.getElementById('f-from').value !== ''`)

	// Back: to the date range's "to" removed, then source only.
	run(t, ctx, chromedp.NavigateBack())
	waitJS(t, ctx, "back to from only", `!location.search.includes('to=') && location.search.includes('from=') && document.getElementById('f-to').value === ''`)
	run(t, ctx, chromedp.NavigateBack())
	waitJS(t, ctx, "back to the source filter", `location.search === '?source=INSIGHT_VM' && document.getElementById('f-from').value === '' && document.querySelectorAll('#event-rows tr').length === `+fmt.Sprint(seedVM))
	run(t, ctx, chromedp.NavigateBack())
	waitJS(t, ctx, "back to no filter", `location.search === '' && document.getElementById('f-source').value === '' && document.querySelectorAll('#event-rows tr').length === 50`)
	run(t, ctx, chromedp.NavigateBack())
	waitJS(t, ctx, "back to the search", `location.search === '?q=zed' && document.getElementById('f-search').value === 'zed' && `+seen+` === `+fmt.Sprint(zedCount))
}

func (s *suite) testViewMoreAndHistory(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "?source=INSIGHT_VM&q="+policyID, s.admin)
	waitJS(t, ctx, "policy rows", seen+` === 5`)
	// The second newest policy event is the last update (severity).
	run(t, ctx, chromedp.Evaluate(`document.querySelectorAll('#event-rows tr')[1].querySelector('button[data-open]').id = 'opener'`, nil))
	run(t, ctx, chromedp.Focus("#opener", chromedp.ByQuery), chromedp.KeyEvent("\r"))
	waitJS(t, ctx, "the detail", `document.getElementById('detail').open && document.getElementById('detail-body').innerText.includes('Raw JSON')`)
	txt := eval[string](t, ctx, `document.getElementById('detail').innerText`)
	for _, want := range []string{"POLICY_UPDATED", "Paula Policy", "paula@acme.example", policyIP, policyAgent, "req-3",
		"A policy was updated in the Custom Policy Builder", "POLICY", "policyId", "changes", "severity", `"type": "POLICY_UPDATED"`, "Change history of"} {
		if !strings.Contains(txt, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	s.screenshot(t, ctx, "view-more")
	s.audit(t, ctx, "view more dialog")
	// Focus stays in the dialog.
	for i := range 12 {
		run(t, ctx, chromedp.KeyEvent("\t"))
		if in := eval[bool](t, ctx, `document.getElementById('detail').contains(document.activeElement)`); !in {
			t.Fatalf("after %d tabs focus left the dialog for %s", i+1, eval[string](t, ctx, `document.activeElement.outerHTML.slice(0, 80)`))
		}
	}
	run(t, ctx, chromedp.KeyEvent("\x1b")) // Escape
	waitJS(t, ctx, "closed", `!document.getElementById('detail').open`)
	if id := eval[string](t, ctx, `document.activeElement.id`); id != "opener" {
		t.Errorf("focus returned to %q, want the View More button", id)
	}

	// The history link.
	run(t, ctx, chromedp.Click("#opener", chromedp.ByQuery))
	waitJS(t, ctx, "the history link", `!!document.getElementById('history-link')`)
	run(t, ctx, chromedp.Click("#history-link", chromedp.ByQuery))
	waitJS(t, ctx, "the history", `location.search.includes('view=history') && document.querySelectorAll('#history-list > li').length === 5`)
	types := eval[[]string](t, ctx, `[...document.querySelectorAll('#history-list > li h2')].map(h => h.innerText.split(' ')[0])`)
	if strings.Join(types, ",") != "POLICY_CREATED,POLICY_UPDATED,POLICY_UPDATED,POLICY_UPDATED,POLICY_DELETED" {
		t.Errorf("history order: %q", types)
	}
	var diff [][]string
	run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll('#history-list > li')[1].querySelectorAll('table.diff tbody tr')].map(tr => [...tr.children].map(c => c.innerText))`, &diff))
	if fmt.Sprint(diff) != "[[threshold 3 5] [enabled false true]]" {
		t.Errorf("first update's diff: %q", diff)
	}
	if title := eval[string](t, ctx, `document.getElementById('history-title').innerText`); !strings.Contains(title, policyName) {
		t.Errorf("history title %q", title)
	}
	s.screenshot(t, ctx, "history")
	s.audit(t, ctx, "change history")
	run(t, ctx, chromedp.NavigateBack())
	waitJS(t, ctx, "back at the table", `!document.getElementById('events').hidden && `+seen+` === 5`)
}

func (s *suite) testExport(t *testing.T) {
	ctx := s.tab(t)
	dir := t.TempDir()
	done := make(chan string, 1)
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- e.GUID:
			default:
			}
		}
	})
	run(t, ctx, browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dir).WithEventsEnabled(true))
	s.open(t, ctx, "?source=INSIGHT_VM", s.admin)
	waitJS(t, ctx, "rows", `document.querySelectorAll('#event-rows tr').length === `+fmt.Sprint(seedVM))
	run(t, ctx, chromedp.Click("#export-csv", chromedp.ByQuery))
	waitJS(t, ctx, "the green bar", `!!document.querySelector('#export-status.success #download')`)
	bar := eval[string](t, ctx, `document.getElementById('export-status').innerText`)
	if !strings.Contains(bar, fmt.Sprintf("%d events", seedVM)) {
		t.Errorf("green bar: %q", bar)
	}
	if bg := eval[string](t, ctx, `getComputedStyle(document.getElementById('export-status')).backgroundColor`); bg != "rgb(218, 251, 225)" {
		t.Errorf("bar colour %s, want green", bg)
	}
	s.screenshot(t, ctx, "export")
	s.audit(t, ctx, "export done")
	run(t, ctx, chromedp.Click("#download", chromedp.ByQuery))
	var guid string
	select {
	case guid = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("no download finished")
	}
	f, err := os.Open(filepath.Join(dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v", err)
	}
	if len(rows) != seedVM+1 {
		t.Fatalf("CSV has %d rows, want a header and %d", len(rows), seedVM)
	}
	body := fmt.Sprint(rows[1:])
	if strings.Contains(body, "PLATFORM") || !strings.Contains(body, "POLICY_UPDATED") {
		t.Errorf("CSV rows are not the filter's: %v", rows[1:])
	}
	// Listed among the recent exports.
	run(t, ctx, chromedp.Click("#exports summary", chromedp.ByQuery))
	waitJS(t, ctx, "recent exports", `!!document.querySelector('#exports-table tbody tr') && document.getElementById('exports-table').innerText.includes('SUCCEEDED')`)

	// NDJSON is the second choice.
	run(t, ctx, chromedp.Click("#export-ndjson", chromedp.ByQuery))
	waitJS(t, ctx, "the NDJSON export", `!!document.querySelector('#export-status.success #download') && document.getElementById('download').innerText.includes('NDJSON')`)
}

func (s *suite) testLive(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "?q=live-", s.admin)
	waitJS(t, ctx, "the table", `document.getElementById('total').textContent.startsWith('Showing ') && `+seen+` === 0`)
	run(t, ctx, chromedp.Click("#live-toggle", chromedp.ByQuery))
	waitJS(t, ctx, "live", `document.getElementById('live-status').textContent === 'Streaming new events'`)
	// The subscription misses nothing once its consumer exists on the
	// server, which is when the feed counts it.
	for deadline := time.Now().Add(10 * time.Second); s.env.Feed().Active() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the live subscription was not served after 10s")
		}
	}
	newUser := func(n int) map[string]any {
		email := fmt.Sprintf("live-%d@acme.example", n)
		return event("USER_CREATED", "PLATFORM", time.Now(), "Live Larry", "larry@acme.example",
			map[string]any{"userId": "u" + email, "userEmail": email}, map[string]any{"target": map[string]any{"kind": "USER", "id": "u" + email, "name": email}})
	}
	s.record(t, []map[string]any{newUser(1)})
	waitJS(t, ctx, "the first live event", seen+` === 1`)
	s.screenshot(t, ctx, "live")

	// A dropped connection resumes after the last event: the one recorded
	// while it was down arrives once, and nothing repeats.
	run(t, ctx, chromedp.Evaluate(`window.consoleLive.drop()`, nil))
	s.record(t, []map[string]any{newUser(2)})
	waitJS(t, ctx, "the event recorded while dropped", seen+` === 2`)
	s.record(t, []map[string]any{newUser(3)})
	waitJS(t, ctx, "the third", seen+` === 3`)
	// A repeat of an earlier event would arrive before a later one: once a
	// fourth is shown, every repeat would have been.
	fourth := newUser(4)
	s.record(t, []map[string]any{fourth})
	waitJS(t, ctx, "the fourth", fmt.Sprintf(`!!document.querySelector('#event-rows tr[data-id="%s"]')`, fourth["id"]))
	targets := eval[string](t, ctx, `document.getElementById('event-rows').innerText`)
	if n := rowCount(t, ctx); n != 4 {
		t.Fatalf("%d rows after reconnect, want 4: %s", n, targets)
	}
	order := eval[[]string](t, ctx, `[...document.querySelectorAll('#event-rows tr')].filter(r => r.children[1].innerText === 'USER_CREATED').map(r => r.dataset.id)`)
	if len(order) != 4 || order[0] < order[3] {
		t.Errorf("live rows not newest first: %v", order)
	}
	run(t, ctx, chromedp.Click("#live-toggle", chromedp.ByQuery))
	waitJS(t, ctx, "off", `document.getElementById('live-toggle').getAttribute('aria-checked') === 'false'`)
}

func (s *suite) testCatalog(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "?view=catalog", s.admin)
	waitJS(t, ctx, "the catalog", `document.querySelectorAll('#catalog-body section.category').length > 10`)
	txt := eval[string](t, ctx, `document.getElementById('catalog-body').innerText`)
	for _, want := range []string{"POLICY", "POLICY_UPDATED", "A policy was updated in the Custom Policy Builder", "changes", "USER_CREATED", "AUDIT_LOG_OPT_IN"} {
		if !strings.Contains(txt, want) {
			t.Errorf("catalog lacks %q", want)
		}
	}
	s.screenshot(t, ctx, "catalog")
	s.audit(t, ctx, "event catalog")
}

func (s *suite) testNonAdmin(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "?view=settings", testenv.UserToken(t, orgID))
	waitJS(t, ctx, "the explanation", `!document.getElementById('settings-forbidden').hidden`)
	txt := eval[string](t, ctx, `document.getElementById('settings-forbidden').innerText`)
	if !strings.Contains(txt, "Only administrators") || !strings.Contains(txt, "Uma User") || !strings.Contains(txt, "Ask an administrator") {
		t.Errorf("explanation: %q", txt)
	}
	if !eval[bool](t, ctx, `document.getElementById('audit-toggle').disabled`) {
		t.Error("the switch is usable for a user who is not an administrator")
	}
	s.screenshot(t, ctx, "non-admin")
	s.audit(t, ctx, "settings for a non-admin")
	run(t, ctx, chromedp.Click(`#nav a[data-view=events]`, chromedp.ByQuery))
	waitJS(t, ctx, "the refusal of the table", `!document.getElementById('alert').hidden && document.getElementById('alert-title').textContent === 'Administrator rights needed'`)
}

func (s *suite) testErrors(t *testing.T) {
	ctx := s.tab(t)
	// A token the server refuses: the user is told and can sign in again.
	s.open(t, ctx, "", "not-a-token")
	waitJS(t, ctx, "the refusal", `!document.getElementById('alert').hidden && document.getElementById('alert-title').textContent === 'Your sign-in was refused'`)
	s.screenshot(t, ctx, "error-signin")
	run(t, ctx, chromedp.Click(`//div[@id="alert-actions"]/button[text()="Sign in again"]`, chromedp.BySearch))
	waitJS(t, ctx, "the sign-in box", `!document.getElementById('signin').hidden && document.activeElement.id === 'token-input'`)
	s.audit(t, ctx, "sign-in")
	s.screenshot(t, ctx, "signin")
	run(t, ctx, chromedp.SendKeys("#token-input", s.admin, chromedp.ByQuery), chromedp.Click(`#signin-form button[type=submit]`, chromedp.ByQuery))
	waitJS(t, ctx, "the table after signing in", `document.querySelectorAll('#event-rows tr').length === 50`)

	// The service unreachable: the error says so, and Try again works
	// once it is back.
	run(t, ctx, network.SetBlockedURLs([]string{"*/query*"}))
	run(t, ctx, chromedp.SendKeys("#f-search", "zed", chromedp.ByQuery))
	waitJS(t, ctx, "the network error", `!document.getElementById('alert').hidden && document.getElementById('alert-text').textContent.includes('could not be reached') && !!document.getElementById('alert-retry')`)
	run(t, ctx, network.SetBlockedURLs([]string{}))
	run(t, ctx, chromedp.Click("#alert-retry", chromedp.ByQuery))
	waitJS(t, ctx, "the rows after trying again", `document.getElementById('alert').hidden && `+seen+` === `+fmt.Sprint(zedCount))
}

// otherPage is the page of another origin: it calls the API with fetch,
// by persisted query, the way a platform SPA would.
const otherPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Other origin</title>
<script src="/app.js" defer></script></head><body><pre id="out"></pre></body></html>`

const otherScript = `
(async () => {
  const out = document.getElementById('out');
  const token = decodeURIComponent(location.hash.slice('#token='.length));
  const api = new URLSearchParams(location.search).get('api');
  history.replaceState(null, '', location.pathname);
  const query = 'query Settings { auditLogSettings { enabled region } }';
  const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(query));
  const hash = [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
  const ext = { persistedQuery: { version: 1, sha256Hash: hash } };
  const post = (body) => fetch(api, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify(body),
  }).then((r) => r.json());
  const steps = [];
  try {
    steps.push(await post({ extensions: ext }));
    steps.push(await post({ query, extensions: ext }));
    steps.push(await post({ extensions: ext }));
  } catch (e) {
    steps.push({ fetchError: String(e) });
  }
  out.textContent = JSON.stringify(steps);
  out.dataset.done = '1';
})();
`

func (s *suite) testCORS(t *testing.T, l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(otherPage))
	})
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write([]byte(otherScript))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	type step struct {
		Data       json.RawMessage
		Errors     []struct{ Extensions struct{ Code string } }
		FetchError string
	}
	call := func(origin string) []step {
		ctx := s.tab(t)
		run(t, ctx, chromedp.Navigate(origin+"/?api="+url.QueryEscape(s.env.URL+"/query")+"#token="+url.QueryEscape(s.admin)))
		waitJS(t, ctx, "the other origin's calls", `document.getElementById('out').dataset.done === '1'`)
		var steps []step
		if err := json.Unmarshal([]byte(eval[string](t, ctx, `document.getElementById('out').textContent`)), &steps); err != nil {
			t.Fatal(err)
		}
		return steps
	}

	steps := call(fmt.Sprintf("http://127.0.0.1:%d", port))
	if len(steps) != 3 {
		t.Fatalf("allowed origin: %+v", steps)
	}
	if len(steps[0].Errors) != 1 || steps[0].Errors[0].Extensions.Code != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("hash first: %+v", steps[0])
	}
	want := `{"auditLogSettings":{"enabled":true,"region":"EU"}}`
	for i := 1; i < 3; i++ {
		if len(steps[i].Errors) != 0 || !bytes.Equal(steps[i].Data, []byte(want)) {
			t.Errorf("step %d: %+v %s", i+1, steps[i], steps[i].Data)
		}
	}
	// The same page from an origin not allowed (localhost is another
	// origin than 127.0.0.1): the browser withholds the answer.
	steps = call(fmt.Sprintf("http://localhost:%d", port))
	if len(steps) != 1 || steps[0].FetchError == "" {
		t.Errorf("origin not allowed: %+v", steps)
	}
}

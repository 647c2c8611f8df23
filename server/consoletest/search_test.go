//go:build browser

package consoletest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

// noReads is true while the table shows none of the log's own reads.
const noReads = `[...document.querySelectorAll('#event-rows tr')].every(r => r.children[1].innerText !== 'AUDIT_LOG_VIEWED')`

// testSearchLanguage: the search box takes the query language, completes
// field names and event types from the catalog, explains itself, and the
// log's own reads stay hidden until the toggle shows them.
func (s *suite) testSearchLanguage(t *testing.T) {
	ctx := s.tab(t)
	s.open(t, ctx, "", s.admin)
	waitJS(t, ctx, "rows", `document.querySelectorAll('#event-rows tr').length === 50`)
	// Every earlier test's searches were recorded as reads, newer than
	// anything seeded, and none is shown.
	if !eval[bool](t, ctx, noReads) {
		t.Fatal("AUDIT_LOG_VIEWED rows shown without the toggle")
	}
	run(t, ctx, chromedp.Click("#f-reads", chromedp.ByQuery))
	waitJS(t, ctx, "the reads shown", `location.search.includes('reads=1') && !(`+noReads+`)`)
	run(t, ctx, chromedp.Click("#f-reads", chromedp.ByQuery))
	waitJS(t, ctx, "the reads hidden again", `!location.search.includes('reads') && `+noReads)

	// Completion of a field name, then of an event type from the catalog.
	run(t, ctx, chromedp.SendKeys("#f-search", "ty", chromedp.ByQuery))
	waitJS(t, ctx, "field suggestions", `!document.getElementById('search-suggest').hidden &&
		[...document.querySelectorAll('#search-suggest [role=option]')].some(o => o.dataset.value === 'type:')`)
	if e := eval[string](t, ctx, `document.getElementById('f-search').getAttribute('aria-expanded')`); e != "true" {
		t.Errorf("aria-expanded %q with suggestions open", e)
	}
	s.audit(t, ctx, "search suggestions")
	run(t, ctx, chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "the field taken", `document.getElementById('f-search').value === 'type:'`)
	run(t, ctx, chromedp.SendKeys("#f-search", "POLICY_UP", chromedp.ByQuery))
	waitJS(t, ctx, "type suggestions", `[...document.querySelectorAll('#search-suggest [role=option]')].some(o => o.dataset.value === 'type:POLICY_UPDATED ')`)
	run(t, ctx, chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "the type's events", `document.getElementById('f-search').value === 'type:POLICY_UPDATED ' &&
		document.getElementById('search-suggest').hidden && new URLSearchParams(location.search).get('q') === 'type:POLICY_UPDATED' &&
		document.querySelectorAll('#event-rows tr').length === 3`)
	s.screenshot(t, ctx, "search-language")

	// A negation and an OR, typed whole.
	run(t, ctx, chromedp.Click("#clear-filters", chromedp.ByQuery))
	waitJS(t, ctx, "cleared", `location.search === '' && document.querySelectorAll('#event-rows tr').length === 50`)
	run(t, ctx, chromedp.SendKeys("#f-search", "-source:PLATFORM", chromedp.ByQuery))
	waitJS(t, ctx, "everything but the platform", `document.querySelectorAll('#event-rows tr').length === `+fmt.Sprint(seedVM))
	run(t, ctx, chromedp.Evaluate(`document.getElementById('f-search').value = ''`, nil), chromedp.SendKeys("#f-search", "type:POLICY_CREATED OR type:POLICY_DELETED", chromedp.ByQuery))
	waitJS(t, ctx, "either type", `document.querySelectorAll('#event-rows tr').length === 2`)

	// A mistake is explained, naming the column.
	run(t, ctx, chromedp.Evaluate(`document.getElementById('f-search').value = ''`, nil), chromedp.SendKeys("#f-search", "actr:ada", chromedp.ByQuery))
	waitJS(t, ctx, "the error", `!document.getElementById('alert').hidden && document.getElementById('alert').innerText.includes('unknown field')`)

	run(t, ctx, chromedp.Click("#search-help summary", chromedp.ByQuery))
	waitJS(t, ctx, "the help", `document.getElementById('search-help').open && document.getElementById('search-help').innerText.includes('field:value')`)
	s.audit(t, ctx, "search help")
}

// testPartialSearch runs a second auditd whose searches stop after every
// slice of 150 events (the newest 150 hold 11 of u9's events, a page
// would need 50): the console says how far back it searched, and
// Continue finds the rest, each event once, until the search is complete.
func (s *suite) testPartialSearch(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.SearchBudget, c.SearchFirstSlice = time.Nanosecond, 150 })
	env.EnableOrg(t, "org-000", domain.RegionUS)
	st := env.EventStore(domain.RegionUS)
	if err := synthetic.Seed(context.Background(), st, 2_000, 1, "org-"); err != nil {
		t.Fatal(err)
	}
	// The seeded types include AUDIT_LOG_VIEWED, which the console hides.
	var want int
	if err := st.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM audit_us.events WHERE org_id = 'org-000' AND actor_id LIKE 'u9%' AND type <> 'AUDIT_LOG_VIEWED'`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	p := &suite{env: env, browser: s.browser, admin: testenv.AdminToken(t, "org-000"), axe: s.axe, shots: s.shots}
	t.Cleanup(func() {
		for _, u := range p.bad {
			t.Errorf("request to a host that is not loopback: %s", u)
		}
	})
	ctx := p.tab(t)
	p.open(t, ctx, "?q="+strings.ReplaceAll("actor:u9*", ":", "%3A"), p.admin)
	waitJS(t, ctx, "a partial search", `!document.getElementById('partial').hidden &&
		document.getElementById('partial-text').innerText.startsWith('Searched back to ') &&
		document.querySelector('#partial-text time') !== null && document.getElementById('load-more').hidden`)
	p.screenshot(t, ctx, "search-partial")
	p.audit(t, ctx, "partial search")
	state := `JSON.stringify([document.querySelectorAll('#event-rows tr').length, document.getElementById('partial-text').innerText, document.getElementById('partial').hidden, document.getElementById('load-more').hidden])`
	for i := 0; ; i++ {
		if i > 60 {
			t.Fatal("the search never completes")
		}
		before := eval[string](t, ctx, state)
		button := ""
		switch {
		case !eval[bool](t, ctx, `document.getElementById('partial').hidden`):
			button = "#continue-search"
		case !eval[bool](t, ctx, `document.getElementById('load-more').hidden`):
			button = "#load-more"
		}
		if button == "" {
			break
		}
		run(t, ctx, chromedp.Click(button, chromedp.ByQuery))
		waitJS(t, ctx, "the search continued", `!document.getElementById('event-table').hasAttribute('aria-busy') && `+state+` !== `+fmt.Sprintf("%q", before))
	}
	rows := eval[int](t, ctx, `document.querySelectorAll('#event-rows tr').length`)
	ids := eval[int](t, ctx, `new Set([...document.querySelectorAll('#event-rows tr')].map(r => r.dataset.id)).size`)
	if rows != want || ids != want {
		t.Fatalf("%d rows, %d distinct, after continuing to the end; %d events match", rows, ids, want)
	}
}

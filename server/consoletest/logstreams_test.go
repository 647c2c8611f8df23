//go:build browser

package consoletest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/auditlog/auditlog/internal/testenv"
)

// streamSecret is a webhook signing secret: whsec_ and base64 of 33 bytes.
const streamSecret = "whsec_QUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJD"

// receiver is a webhook receiver on loopback that keeps the ids of the
// events it got.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	ids []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var p struct {
			Data struct{ Events []struct{ ID string } }
		}
		if json.Unmarshal(body, &p) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, e := range p.Data.Events {
			r.ids = append(r.ids, e.ID)
		}
		r.mu.Unlock()
		_, _ = io.WriteString(w, `{"accepted":true}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.ids, id)
}

// streamRow is a JavaScript expression for the table row of the stream
// named siem.
const streamRow = `[...document.querySelectorAll('#stream-rows tr')].find(r => r.querySelector('.name').innerText === 'siem')`

// testLogStreams: an admin creates a webhook stream with the form, sees it
// deliver an event to a receiver on loopback, tests, pauses, resumes and
// deletes it; a user who is not an admin is told the view is for admins.
func (s *suite) testLogStreams(t *testing.T) {
	rcv := newReceiver(t)
	ctx := s.tab(t)
	s.open(t, ctx, "?view=streams", s.admin)
	waitJS(t, ctx, "the streams view", `!document.getElementById('streams-admin').hidden && !document.getElementById('streams-empty').hidden &&
		document.querySelector('#nav a[data-view=streams]').getAttribute('aria-current') === 'page'`)
	s.audit(t, ctx, "log streams, none yet")

	// Generate makes a secret of the form the API takes, shown to be copied.
	run(t, ctx, chromedp.Click("#s-secret-new", chromedp.ByQuery))
	waitJS(t, ctx, "a generated secret", `/^whsec_[A-Za-z0-9+\/]{43}=$/.test(document.getElementById('s-secret').value) &&
		document.getElementById('s-secret').type === 'text'`)
	run(t, ctx, chromedp.Evaluate(`document.getElementById('s-secret').value = ''`, nil))

	run(t, ctx,
		chromedp.SendKeys("#s-name", "siem", chromedp.ByQuery),
		chromedp.SendKeys("#s-url", rcv.URL+"/hook", chromedp.ByQuery),
		chromedp.SendKeys("#s-secret", streamSecret, chromedp.ByQuery),
		chromedp.Click("#s-create", chromedp.ByQuery))
	waitJS(t, ctx, "the stream listed as ACTIVE", streamRow+`?.dataset.status === 'ACTIVE' &&
		document.getElementById('streams-status').innerText.includes('Created siem') && document.getElementById('s-name').value === ''`)
	dest := eval[string](t, ctx, streamRow+`.querySelector('.dest').innerText`)
	if !strings.Contains(dest, "Webhook") || !strings.Contains(dest, rcv.URL+"/hook") {
		t.Errorf("destination cell: %q", dest)
	}

	// An event recorded now reaches the receiver, and the table, refreshed
	// every 5 s, counts it.
	e := event("USER_CREATED", "PLATFORM", time.Now(), "Grace Hopper", "grace@acme.example",
		map[string]any{"userId": "u-stream", "userEmail": "stream@acme.example", "userName": "Stream"}, nil)
	s.record(t, []map[string]any{e})
	waitJS(t, ctx, "a delivery counted", `Number(`+streamRow+`.querySelector('.delivered').innerText.replace(/,/g, '')) >= 1 &&
		`+streamRow+`.querySelector('.last time') !== null`)
	if id := e["id"].(string); !rcv.got(id) {
		t.Errorf("the receiver did not get event %s", id)
	}
	s.screenshot(t, ctx, "log-streams")
	s.audit(t, ctx, "log streams")

	run(t, ctx, chromedp.Click(`button[aria-label="Test siem"]`, chromedp.ByQuery))
	waitJS(t, ctx, "the test's answer", `document.getElementById('streams-status').innerText.includes('siem accepted the test event') &&
		document.getElementById('streams-status').innerText.includes('HTTP 200') &&
		document.getElementById('stream-answer')?.innerText === '{"accepted":true}'`)

	run(t, ctx, chromedp.Click(`button[aria-label="Pause siem"]`, chromedp.ByQuery))
	waitJS(t, ctx, "PAUSED", streamRow+`.dataset.status === 'PAUSED' && `+streamRow+`.querySelector('.state').innerText.startsWith('PAUSED') &&
		document.querySelector('button[aria-label="Resume siem"]') !== null`)
	run(t, ctx, chromedp.Click(`button[aria-label="Resume siem"]`, chromedp.ByQuery))
	waitJS(t, ctx, "ACTIVE again", streamRow+`.dataset.status === 'ACTIVE' && document.querySelector('button[aria-label="Pause siem"]') !== null`)

	// Delete asks first; Cancel keeps the stream.
	run(t, ctx, chromedp.Click(`button[aria-label="Delete siem"]`, chromedp.ByQuery))
	waitJS(t, ctx, "the confirmation", `document.getElementById('stream-delete-dialog').open &&
		document.getElementById('stream-delete-text').innerText.includes('Delete siem?')`)
	s.audit(t, ctx, "log stream delete confirmation")
	run(t, ctx, chromedp.Click("#stream-delete-cancel", chromedp.ByQuery))
	waitJS(t, ctx, "cancelled", `!document.getElementById('stream-delete-dialog').open && `+streamRow+` !== undefined`)
	run(t, ctx, chromedp.Click(`button[aria-label="Delete siem"]`, chromedp.ByQuery))
	waitJS(t, ctx, "the confirmation again", `document.getElementById('stream-delete-dialog').open`)
	run(t, ctx, chromedp.Click("#stream-delete-confirm", chromedp.ByQuery))
	waitJS(t, ctx, "the stream gone", streamRow+` === undefined && !document.getElementById('streams-empty').hidden &&
		document.getElementById('streams-status').innerText.includes('Deleted siem')`)

	// A user who is not an admin is told the view is for admins.
	user := s.tab(t)
	s.open(t, user, "?view=streams", testenv.UserToken(t, orgID))
	waitJS(t, user, "the refusal", `!document.getElementById('streams-forbidden').hidden && document.getElementById('streams-admin').hidden`)
	if txt := eval[string](t, user, `document.getElementById('streams-forbidden').innerText`); !strings.Contains(txt, "Only administrators") || !strings.Contains(txt, "Uma User") {
		t.Errorf("explanation: %q", txt)
	}
	s.audit(t, user, "log streams for a non-admin")
}

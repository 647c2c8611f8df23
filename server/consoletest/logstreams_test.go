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

// hecReceiver is a Splunk HTTP Event Collector on loopback: it takes
// newline-joined event envelopes at /services/collector/event from a
// client with the right token, and keeps the event ids and the envelopes'
// sourcetype.
type hecReceiver struct {
	*httptest.Server
	mu          sync.Mutex
	ids         []string
	sourcetypes []string
}

const hecToken = "0f3c2e1a-hec-token"

func newHECReceiver(t *testing.T) *hecReceiver {
	r := &hecReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/services/collector/event" || req.Header.Get("Authorization") != "Splunk "+hecToken {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"text":"Invalid token","code":4}`)
			return
		}
		dec := json.NewDecoder(req.Body)
		for {
			var env struct {
				SourceType string `json:"sourcetype"`
				Event      struct{ ID string }
			}
			if err := dec.Decode(&env); err == io.EOF {
				break
			} else if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			r.mu.Lock()
			r.ids = append(r.ids, env.Event.ID)
			r.sourcetypes = append(r.sourcetypes, env.SourceType)
			r.mu.Unlock()
		}
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hecReceiver) got(id string) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.ids, id); i >= 0 {
		return true, r.sourcetypes[i]
	}
	return false, ""
}

// rowNamed is a JavaScript expression for the table row of the stream
// named name.
func rowNamed(name string) string {
	return `[...document.querySelectorAll('#stream-rows tr')].find(r => r.querySelector('.name').innerText === '` + name + `')`
}

// testLogStreamDestinations: the form creates Splunk HEC and syslog
// streams too, showing only the chosen destination's fields, and Edit
// changes a stream's name, settings and filter while keeping its stored
// token.
func (s *suite) testLogStreamDestinations(t *testing.T) {
	hec := newHECReceiver(t)
	ctx := s.tab(t)
	s.open(t, ctx, "?view=streams", s.admin)
	waitJS(t, ctx, "the streams view", `!document.getElementById('streams-admin').hidden`)

	// Splunk: its fields replace the webhook's, which are no longer required.
	run(t, ctx, chromedp.SetValue("#s-kind", "splunk", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('s-kind').dispatchEvent(new Event('change'))`, nil))
	waitJS(t, ctx, "the Splunk fields", `!document.getElementById('s-splunk').hidden && document.getElementById('s-webhook').hidden &&
		document.getElementById('s-webhook').disabled && document.getElementById('s-syslog').hidden`)
	s.audit(t, ctx, "log stream form, Splunk")
	run(t, ctx,
		chromedp.SendKeys("#s-name", "splunk", chromedp.ByQuery),
		chromedp.SendKeys("#s-hec-url", hec.URL, chromedp.ByQuery),
		chromedp.SendKeys("#s-hec-token", hecToken, chromedp.ByQuery),
		chromedp.SendKeys("#s-hec-sourcetype", "auditlog:json", chromedp.ByQuery),
		chromedp.Click("#s-create", chromedp.ByQuery))
	waitJS(t, ctx, "the Splunk stream listed", rowNamed("splunk")+`?.dataset.status === 'ACTIVE' &&
		document.getElementById('streams-status').innerText.includes('Created splunk') && document.getElementById('s-webhook').hidden === false`)
	if dest := eval[string](t, ctx, rowNamed("splunk")+`.querySelector('.dest').innerText`); !strings.Contains(dest, "Splunk HEC") || !strings.Contains(dest, hec.URL) {
		t.Errorf("destination cell: %q", dest)
	}
	e := event("USER_CREATED", "PLATFORM", time.Now(), "Grace Hopper", "grace@acme.example",
		map[string]any{"userId": "u-hec", "userEmail": "hec@acme.example", "userName": "Hec"}, nil)
	s.record(t, []map[string]any{e})
	waitFor(t, "the HEC receiver to get the event", func() bool { ok, _ := hec.got(e["id"].(string)); return ok })
	if _, st := hec.got(e["id"].(string)); st != "auditlog:json" {
		t.Errorf("sourcetype %q", st)
	}

	// Edit: the form shows the stream's settings, the token stays stored
	// when left empty, and the filter narrows what is delivered.
	run(t, ctx, chromedp.Click(`button[aria-label="Edit splunk"]`, chromedp.ByQuery))
	waitJS(t, ctx, "the form filled in", `document.getElementById('stream-form-title').innerText === 'Edit splunk' &&
		document.getElementById('s-hec-url').value === '`+hec.URL+`' && document.getElementById('s-hec-sourcetype').value === 'auditlog:json' &&
		document.getElementById('s-kind').disabled && document.getElementById('s-hec-token').value === '' && !document.getElementById('s-hec-token').required &&
		document.getElementById('s-create').innerText === 'Save changes'`)
	s.audit(t, ctx, "log stream form, editing")
	run(t, ctx,
		chromedp.Evaluate(`document.getElementById('s-name').value = ''`, nil), chromedp.SendKeys("#s-name", "splunk-insight", chromedp.ByQuery),
		chromedp.SendKeys("#s-query", "source:INSIGHT_VM", chromedp.ByQuery),
		chromedp.Click("#s-create", chromedp.ByQuery))
	waitJS(t, ctx, "the stream renamed", rowNamed("splunk-insight")+` !== undefined && `+rowNamed("splunk")+` === undefined &&
		document.getElementById('streams-status').innerText.includes('Saved splunk-insight') &&
		document.getElementById('stream-form-title').innerText === 'New log stream' && !document.getElementById('s-kind').disabled`)
	platform := event("USER_CREATED", "PLATFORM", time.Now(), "Grace Hopper", "grace@acme.example",
		map[string]any{"userId": "u-hec2", "userEmail": "hec2@acme.example", "userName": "Hec"}, nil)
	vm := event("USER_CREATED", "INSIGHT_VM", time.Now(), "Grace Hopper", "grace@acme.example",
		map[string]any{"userId": "u-hec3", "userEmail": "hec3@acme.example", "userName": "Hec"}, nil)
	s.record(t, []map[string]any{platform, vm})
	// Delivered with the token kept, and in order: once the later event
	// is there, the earlier one was filtered out, not still on its way.
	waitFor(t, "the INSIGHT_VM event at the receiver", func() bool { ok, _ := hec.got(vm["id"].(string)); return ok })
	if ok, _ := hec.got(platform["id"].(string)); ok {
		t.Error("the PLATFORM event was delivered through a source:INSIGHT_VM filter")
	}

	// Syslog: host and port, shown in the table as host:port.
	run(t, ctx, chromedp.SetValue("#s-kind", "syslog", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('s-kind').dispatchEvent(new Event('change'))`, nil))
	waitJS(t, ctx, "the syslog fields", `!document.getElementById('s-syslog').hidden && document.getElementById('s-splunk').hidden`)
	run(t, ctx,
		chromedp.SendKeys("#s-name", "rsyslog", chromedp.ByQuery),
		chromedp.SendKeys("#s-sys-host", "127.0.0.1", chromedp.ByQuery),
		chromedp.SetValue("#s-sys-port", "16514", chromedp.ByQuery),
		chromedp.SendKeys("#s-sys-server-name", "siem.internal", chromedp.ByQuery),
		chromedp.Click("#s-create", chromedp.ByQuery))
	waitJS(t, ctx, "the syslog stream listed", rowNamed("rsyslog")+` !== undefined && document.getElementById('streams-status').innerText.includes('Created rsyslog')`)
	if dest := eval[string](t, ctx, rowNamed("rsyslog")+`.querySelector('.dest').innerText`); !strings.Contains(dest, "Syslog") || !strings.Contains(dest, "127.0.0.1:16514") {
		t.Errorf("destination cell: %q", dest)
	}
	var out struct {
		LogStreams []struct {
			Name        string
			Destination struct {
				Kind       string
				ServerName *string
				Port       int
			}
			Filter struct{ Query *string }
		}
	}
	s.env.Do(t, s.admin, `{ logStreams { name destination { kind serverName port } filter { query } } }`, nil).MustData(t, &out)
	found := 0
	for _, ls := range out.LogStreams {
		switch ls.Name {
		case "rsyslog":
			found++
			if ls.Destination.Kind != "SYSLOG" || ls.Destination.Port != 16514 || ls.Destination.ServerName == nil || *ls.Destination.ServerName != "siem.internal" {
				t.Errorf("syslog stream: %+v", ls.Destination)
			}
		case "splunk-insight":
			found++
			if ls.Filter.Query == nil || *ls.Filter.Query != "source:INSIGHT_VM" {
				t.Errorf("edited filter: %v", ls.Filter.Query)
			}
		}
	}
	if found != 2 {
		t.Errorf("logStreams: %+v", out.LogStreams)
	}
	// Remove both, so later screens start from none.
	for _, name := range []string{"splunk-insight", "rsyslog"} {
		run(t, ctx, chromedp.Click(`button[aria-label="Delete `+name+`"]`, chromedp.ByQuery))
		waitJS(t, ctx, "the confirmation", `document.getElementById('stream-delete-dialog').open`)
		run(t, ctx, chromedp.Click("#stream-delete-confirm", chromedp.ByQuery))
		waitJS(t, ctx, name+" gone", rowNamed(name)+` === undefined`)
	}
}

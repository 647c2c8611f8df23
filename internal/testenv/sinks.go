package testenv

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/auditlog/auditlog/logstream/splunk/hectest"
	"github.com/auditlog/auditlog/logstream/syslog/rsyslogtest"
)

// SinkKind is a log stream destination, named as the API's
// LogStreamDestinationKind names it.
type SinkKind string

// The destinations a sink can be.
const (
	SinkWebhook SinkKind = "WEBHOOK"
	SinkSplunk  SinkKind = "SPLUNK_HEC"
	// SinkSyslog is a real rsyslogd (make test-syslog), so tests of it
	// carry the rsyslog build tag.
	SinkSyslog SinkKind = "SYSLOG"
)

// SinkWebhookSecret signs what webhook sinks receive; SinkSplunkToken
// authenticates what Splunk sinks receive.
const (
	SinkWebhookSecret = "whsec_QUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJD"
	SinkSplunkToken   = "3f6d2a8e-5c1b-4e7a-9d0f-2b8c4a6e1f3d"
)

// Sink is a real log stream receiver on loopback that end-to-end tests
// point a stream at and read back the same way whatever it is: a webhook,
// a Splunk HTTP Event Collector with indexer acknowledgement, or rsyslog
// over TLS. Each is reached through a proxy, so that it can fail the ways
// a receiver does (Fail).
type Sink struct {
	// Kind is what the sink is.
	Kind SinkKind
	// Destination is createLogStream's destination input pointing at it
	// (plain HTTP for the HTTP kinds, which AUDITD_EGRESS_ALLOW of
	// loopback admits).
	Destination map[string]any
	// URL is an HTTP sink's base URL: a webhook sink takes deliveries at
	// any path under it.
	URL string
	// Port is a syslog sink's TLS port on 127.0.0.1, for serverName
	// "localhost".
	Port int
	// RootCAs and CAFile (PEM) trust a syslog sink's certificate; nil and
	// "" for the others.
	RootCAs *x509.CertPool
	CAFile  string

	received  func() []SinkEvent
	held      <-chan struct{}
	proxy     *Proxy
	rejecting atomic.Bool

	mu         sync.Mutex
	events     []SinkEvent
	batches    map[string][]string
	mismatched []string
}

// SinkEvent is one event a sink received.
type SinkEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	LeafIndex *int64 `json:"leafIndex"`
}

// SinkOptions change how a sink behaves.
type SinkOptions struct {
	// Hold, if not 0, is the delivery (from 1: an HTTP request, or a
	// syslog connection) that the sink takes in whole and never answers
	// until the test ends: a batch in flight. An HTTP sink drops the
	// held batch; rsyslog writes it, and its sender never hears so.
	Hold int
}

// StartSink starts a sink of kind on loopback until t ends.
func StartSink(t testing.TB, kind SinkKind, o SinkOptions) *Sink {
	t.Helper()
	s := &Sink{Kind: kind, batches: map[string][]string{}, received: func() []SinkEvent { return nil }}
	switch kind {
	case SinkWebhook:
		s.URL = s.serveHTTP(t, "/hook", o.Hold, http.HandlerFunc(s.webhook))
		s.Destination = map[string]any{"webhook": map[string]any{"url": s.URL + "/hook", "secrets": []string{SinkWebhookSecret}}}
		s.received = s.kept
	case SinkSplunk:
		h := hectest.New(SinkSplunkToken)
		t.Cleanup(h.Close)
		h.Set(func(h *hectest.Receiver) { h.AckEnabled = true })
		s.URL = s.serveHTTP(t, "/services/collector/event", o.Hold, h.Config.Handler)
		s.Destination = map[string]any{"splunk": map[string]any{"url": s.URL, "token": SinkSplunkToken, "ack": true}}
		s.received = func() []SinkEvent { return splunkEvents(h.Received()) }
	case SinkSyslog:
		rs := rsyslogtest.Start(t)
		s.proxy = StartProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(rs.Port)))
		if o.Hold > 0 {
			s.held = s.proxy.HoldClose(o.Hold)
		}
		_, port, _ := net.SplitHostPort(s.proxy.Addr())
		s.Port, _ = strconv.Atoi(port)
		s.Destination = map[string]any{"syslog": map[string]any{"host": "127.0.0.1", "port": s.Port, "serverName": "localhost"}}
		s.RootCAs, s.CAFile = rs.RootCAs(), rs.CAFile
		s.received = func() []SinkEvent { return syslogEvents(rs.Written()) }
	default:
		t.Fatalf("no sink of kind %q", kind)
	}
	return s
}

// serveHTTP serves next on loopback, except that the hold-th request to
// path (any path, for "/hook") is read whole and never answered; it
// returns the server's URL.
func (s *Sink) serveHTTP(t testing.TB, path string, hold int, next http.Handler) string {
	held, release := make(chan struct{}), make(chan struct{})
	if hold > 0 {
		s.held = held
	}
	var (
		mu sync.Mutex
		n  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path || path == "/hook" {
			if s.rejecting.Load() {
				_, _ = io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `{"text":"Server is busy","code":9}`) // HEC's answer; any 503 for a webhook
				return
			}
			mu.Lock()
			n++
			this := n
			mu.Unlock()
			if this == hold {
				_, _ = io.ReadAll(r.Body)
				close(held)
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	s.proxy = StartProxy(t, srv.Listener.Addr().String())
	return "http://" + s.proxy.Addr()
}

// webhook keeps the events of a Standard Webhooks delivery, and notes a
// webhook-id that comes again with other events.
func (s *Sink) webhook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p struct {
		Data struct{ Events []SinkEvent }
	}
	if json.Unmarshal(body, &p) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ids := make([]string, len(p.Data.Events))
	for i, e := range p.Data.Events {
		ids[i] = e.ID
	}
	s.mu.Lock()
	s.events = append(s.events, p.Data.Events...)
	if id := r.Header.Get("webhook-id"); id != "" {
		if prev, ok := s.batches[id]; ok && !slices.Equal(prev, ids) {
			s.mismatched = append(s.mismatched, id)
		}
		s.batches[id] = ids
	}
	s.mu.Unlock()
	_, _ = io.WriteString(w, `{"accepted":true}`)
}

func (s *Sink) kept() []SinkEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// splunkEvents reads the events out of HEC envelopes.
func splunkEvents(envelopes []map[string]any) []SinkEvent {
	out := make([]SinkEvent, 0, len(envelopes))
	for _, env := range envelopes {
		ev, _ := env["event"].(map[string]any)
		var e SinkEvent
		e.ID, _ = ev["id"].(string)
		e.Type, _ = ev["type"].(string)
		if leaf, ok := ev["leafIndex"].(float64); ok {
			n := int64(leaf)
			e.LeafIndex = &n
		}
		out = append(out, e)
	}
	return out
}

// syslogEvents reads the events out of rsyslog's lines, the MSG of each a
// JSON event.
func syslogEvents(lines []string) []SinkEvent {
	out := make([]SinkEvent, 0, len(lines))
	for _, line := range lines {
		var e SinkEvent
		if f := rsyslogtest.Fields(line); len(f) == 8 {
			_ = json.Unmarshal([]byte(strings.TrimSpace(f[7])), &e)
		}
		out = append(out, e)
	}
	return out
}

// Received is every event the sink has received, in order, repeats
// included; the events of a held delivery only for syslog.
func (s *Sink) Received() []SinkEvent { return s.received() }

// IDs is the ids of the events of type typ received, in order, repeats
// included.
func (s *Sink) IDs(typ string) []string {
	var ids []string
	for _, e := range s.Received() {
		if e.Type == typ {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// Distinct is the ids of the events of type typ received, each at its
// first arrival.
func (s *Sink) Distinct(typ string) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range s.IDs(typ) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// SinkOutage is a way a receiver fails.
type SinkOutage int

// The outages Fail can stage.
const (
	// SinkRejecting: HTTP sinks answer 503 (a Splunk sink: busy, code 9);
	// a syslog sink cuts each connection as soon as it takes it.
	SinkRejecting SinkOutage = iota + 1
	// SinkSilent: connections are taken and never answered (time-outs).
	SinkSilent
	// SinkRefusing: connections are refused.
	SinkRefusing
)

// Fail makes the sink fail every delivery the way o says, until Recover.
func (s *Sink) Fail(o SinkOutage) {
	switch o {
	case SinkRejecting:
		if s.Kind == SinkSyslog {
			s.proxy.Cut(true)
		} else {
			s.rejecting.Store(true)
		}
	case SinkSilent:
		s.proxy.Freeze()
	case SinkRefusing:
		s.proxy.Refuse()
	}
}

// Recover ends every outage: the sink takes deliveries again.
func (s *Sink) Recover() {
	s.rejecting.Store(false)
	s.proxy.Cut(false)
	s.proxy.Listen()
	s.proxy.Thaw()
}

// Held is closed once the held delivery has been taken in; nil without
// SinkOptions.Hold.
func (s *Sink) Held() <-chan struct{} { return s.held }

// Mismatched is the webhook-ids that came again with other events: a
// webhook sink's check that a batch sent again is the same batch.
func (s *Sink) Mismatched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mismatched)
}

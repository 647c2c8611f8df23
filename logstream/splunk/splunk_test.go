package splunk

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/splunk/hectest"
	"github.com/auditlog/auditlog/ocsf"
)

const token = "11111111-2222-3333-4444-555555555555"

var loopback = egress.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})

func events(n int) []*domain.Event {
	out := make([]*domain.Event, n)
	for i := range out {
		leaf := int64(300 + i)
		out[i] = &domain.Event{
			ID: fmt.Sprintf("01JHEC%04d", i), OrgID: "org-1", Source: domain.SourcePlatform, Type: "API_KEY_CREATED",
			OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 250e6, time.UTC), RecordedAt: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
			Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u-1"},
			Details: json.RawMessage(`{"apiKeyId":"k-1"}`), LeafIndex: &leaf,
		}
	}
	return out
}

// newHEC starts a collector over TLS for t.
func newHEC(t *testing.T, token string) *hectest.Receiver {
	t.Helper()
	h := hectest.NewTLS(token)
	t.Cleanup(h.Close)
	return h
}

func newSender(t *testing.T, h *hectest.Receiver, cfg logstream.SplunkConfig, opts logstream.Options) *Sender {
	t.Helper()
	cfg.URL = h.URL
	if cfg.Token == "" {
		cfg.Token = token
	}
	if cfg.Format == "" {
		cfg.Format = logstream.FormatJSON
	}
	opts.Policy = loopback
	opts.RootCAs = x509.NewCertPool()
	opts.RootCAs.AddCert(h.Certificate())
	opts.OrgID, opts.StreamID = "org-1", "stream-1"
	opts.Product = ocsf.Product{Name: "Audit Log", VendorName: "Example"}
	s, err := New(cfg, opts, AckTiming{Poll: 10 * time.Millisecond, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendWithAck(t *testing.T) {
	for _, format := range []logstream.Format{logstream.FormatJSON, logstream.FormatOCSF} {
		h := newHEC(t, token)
		h.Set(func(h *hectest.Receiver) {
			h.AckEnabled, h.AckAfter, h.Indexes = true, 2, map[string]bool{"audit": true}
		})
		s := newSender(t, h, logstream.SplunkConfig{Index: "audit", Host: "auditd-1", Ack: true, Format: format},
			logstream.Options{Limits: logstream.Limits{MaxEvents: 2}})
		batch := events(5)
		res, err := s.Send(context.Background(), batch)
		if err != nil || res.Delivered != 5 || res.Requests != 3 {
			t.Fatalf("%s: %+v, %v", format, res, err)
		}
		got := h.Received()
		if len(got) != 5 {
			t.Fatalf("%s: HEC got %d events, want 5", format, len(got))
		}
		for i, env := range got {
			if env["time"] != 1772366400.25 || env["host"] != "auditd-1" || env["index"] != "audit" ||
				env["source"] != DefaultSource || env["sourcetype"] != DefaultSourceType {
				t.Errorf("%s: envelope %d: %v", format, i, env)
			}
			ev := env["event"].(map[string]any)
			id, leaf := ev["id"], ev["leafIndex"]
			if format == logstream.FormatOCSF {
				md := ev["metadata"].(map[string]any)
				id, leaf = md["uid"], md["sequence"]
			}
			if id != batch[i].ID || leaf != float64(*batch[i].LeafIndex) {
				t.Errorf("%s: event %d: id %v leaf %v", format, i, id, leaf)
			}
		}
		if n := h.Channels(); n != 1 {
			t.Errorf("%s: %d channels, want one per sender", format, n)
		}
		for id, n := range h.Polls() {
			if n != 3 {
				t.Errorf("%s: ack %d polled %d times, want 3 (false, false, true)", format, id, n)
			}
		}
	}
}

func TestSendWithoutAck(t *testing.T) {
	h := newHEC(t, token)
	s := newSender(t, h, logstream.SplunkConfig{}, logstream.Options{})
	if res, err := s.Send(context.Background(), events(3)); err != nil || res.Delivered != 3 || res.Requests != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	if env := h.Received()[0]; env["index"] != nil || env["host"] != nil {
		t.Errorf("empty index and host are sent: %v", env)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(h *hectest.Receiver)
		cfg       logstream.SplunkConfig
		class     logstream.Class
		status    int
		code      string
		delivered int
	}{
		{"invalid token", func(h *hectest.Receiver) { h.Token = "another" }, logstream.SplunkConfig{}, logstream.Permanent, 403, "4", 0},
		{"busy", func(h *hectest.Receiver) { h.Busy = true }, logstream.SplunkConfig{}, logstream.Retryable, 503, "9", 0},
		{"incorrect index", func(h *hectest.Receiver) { h.Indexes = map[string]bool{"main": true} }, logstream.SplunkConfig{Index: "audit"}, logstream.Permanent, 400, "7", 0},
		{"ack never comes", func(h *hectest.Receiver) { h.AckEnabled, h.AckAfter = true, -1 }, logstream.SplunkConfig{Ack: true}, logstream.Retryable, 0, "", 0},
		{"ack asked, token has none", func(h *hectest.Receiver) {}, logstream.SplunkConfig{Ack: true}, logstream.Permanent, 200, "", 0},
	}
	for _, tt := range tests {
		h := newHEC(t, token)
		h.Set(tt.setup)
		s := newSender(t, h, tt.cfg, logstream.Options{})
		res, err := s.Send(context.Background(), events(2))
		var le *logstream.Error
		if !errors.As(err, &le) || le.Class != tt.class || le.Status != tt.status || le.Code != tt.code || res.Delivered != tt.delivered {
			t.Errorf("%s: %+v, %#v; want %v status %d code %q", tt.name, res, le, tt.class, tt.status, tt.code)
			continue
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%s: the error shows the token: %v", tt.name, err)
		}
	}

	// The second request of a batch fails: the first one's events count.
	h := newHEC(t, token)
	h.Set(func(h *hectest.Receiver) { h.BusyAfter = 1 })
	s := newSender(t, h, logstream.SplunkConfig{}, logstream.Options{Limits: logstream.Limits{MaxEvents: 2}})
	res, err := s.Send(context.Background(), events(5))
	if logstream.ClassOf(err) != logstream.Retryable || res.Delivered != 2 || res.Requests != 2 {
		t.Errorf("busy on the second request: %+v, %v; want 2 delivered", res, err)
	}
}

func TestTest(t *testing.T) {
	h := newHEC(t, token)
	h.Set(func(h *hectest.Receiver) { h.AckEnabled, h.AckAfter = true, 0 })
	s := newSender(t, h, logstream.SplunkConfig{Ack: true, Format: logstream.FormatOCSF}, logstream.Options{})
	res, err := s.Test(context.Background())
	if err != nil || res.Status != 200 || res.Code != "0" || !strings.Contains(res.Body, `"ackId":0`) {
		t.Fatalf("Test = %+v, %v", res, err)
	}
	ev := h.Received()[0]["event"].(map[string]any)
	if ev["unmapped"].(map[string]any)["event_type"] != string(logstream.TestEventType) {
		t.Errorf("test event: %v", ev)
	}
	h.Set(func(h *hectest.Receiver) { h.Token = "rotated" })
	res, err = s.Test(context.Background())
	if logstream.ClassOf(err) != logstream.Permanent || res.Status != 403 || res.Code != "4" || !strings.Contains(res.Body, "Invalid token") {
		t.Errorf("Test with a revoked token = %+v, %v", res, err)
	}
}

func TestURLForms(t *testing.T) {
	h := newHEC(t, token)
	for _, suffix := range []string{"", "/", "/services/collector", "/services/collector/event"} {
		s, err := New(logstream.SplunkConfig{URL: h.URL + suffix, Token: token, Format: logstream.FormatJSON},
			logstream.Options{Policy: loopback}, AckTiming{})
		if err != nil {
			t.Fatal(err)
		}
		if s.eventURL != h.URL+"/services/collector/event" {
			t.Errorf("%q: event URL %s", suffix, s.eventURL)
		}
	}
	if _, err := New(logstream.SplunkConfig{URL: h.URL, Format: logstream.FormatJSON}, logstream.Options{Policy: loopback}, AckTiming{}); domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("no token: %v", err)
	}
}

// The sender is what the delivery engine drives.
var _ logstream.Sender = (*Sender)(nil)

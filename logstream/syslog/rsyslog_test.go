//go:build rsyslog

package syslog

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/syslog/rsyslogtest"
	"github.com/auditlog/auditlog/ocsf"
)

func newSender(t *testing.T, r *rsyslogtest.Receiver, format logstream.Format, opts logstream.Options) *Sender {
	t.Helper()
	if opts.Policy == nil {
		opts.Policy = loopback
	}
	if opts.RootCAs == nil {
		opts.RootCAs = r.RootCAs()
	}
	opts.OrgID, opts.StreamID = "org-1", "stream-1"
	opts.Product = ocsf.Product{Name: "Audit Log", VendorName: "Example"}
	s, err := New(logstream.SyslogConfig{Host: "127.0.0.1", Port: r.Port, ServerName: "localhost", Format: format}, opts, "auditd-1.example")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A real rsyslog receives the batch over TLS, splits the octet-counted
// frames and parses every RFC 5424 field as meant.
func TestRsyslogReceives(t *testing.T) {
	r := rsyslogtest.Start(t)
	ctx := context.Background()

	s := newSender(t, r, logstream.FormatJSON, logstream.Options{Limits: logstream.Limits{MaxEvents: 2}})
	batch := events(5)
	res, err := s.Send(ctx, batch)
	if err != nil || res.Delivered != 5 {
		t.Fatalf("Send: %+v, %v", res, err)
	}
	ocsfSender := newSender(t, r, logstream.FormatOCSF, logstream.Options{})
	if _, err := ocsfSender.Send(ctx, batch[:1]); err != nil {
		t.Fatalf("Send OCSF: %v", err)
	}
	if _, err := s.Test(ctx); err != nil {
		t.Fatalf("Test: %v", err)
	}

	lines := r.Lines(t, 7)
	for i, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			t.Fatalf("line %d has %d fields: %q", i, len(f), line)
		}
		pri, ts, host, app, procid, msgid, sd, msg := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
		if pri != "110" || host != "auditd-1.example" || app != AppName || procid != "-" {
			t.Errorf("line %d: pri %s host %s app %s procid %s", i, pri, host, app, procid)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(msg)), &ev); err != nil {
			t.Fatalf("line %d: MSG is not JSON: %v: %q", i, err, msg)
		}
		switch {
		case i < 5:
			e := batch[i]
			if msgid != string(e.Type) || !strings.HasPrefix(ts, "2026-03-01T12:00:00.123456") {
				t.Errorf("line %d: msgid %s time %s", i, msgid, ts)
			}
			wantSD := fmt.Sprintf(`[%s id="%s" leafIndex="%d" org="org-1"]`, SDID, e.ID, *e.LeafIndex)
			if sd != wantSD {
				t.Errorf("line %d: structured data %s, want %s", i, sd, wantSD)
			}
			if ev["id"] != e.ID || ev["leafIndex"] != float64(*e.LeafIndex) || ev["actor"].(map[string]any)["name"] != e.Actor.Name {
				t.Errorf("line %d: event %v", i, ev)
			}
		case i == 5:
			if ev["class_uid"] != float64(ocsf.ClassAccountChange) || ev["metadata"].(map[string]any)["uid"] != batch[0].ID {
				t.Errorf("OCSF line: %v", ev)
			}
		case i == 6:
			if msgid != string(logstream.TestEventType) || !strings.HasPrefix(ev["id"].(string), "test-") {
				t.Errorf("test line: msgid %s event %v", msgid, ev)
			}
		}
	}
}

// A receiver whose certificate the sender's roots do not vouch for, or a
// name the certificate does not carry, is refused, as is an address the
// egress policy refuses: all permanent.
func TestRsyslogRefusals(t *testing.T) {
	r := rsyslogtest.Start(t)
	ctx := context.Background()
	tests := []struct {
		name, want string
		opts       logstream.Options
		serverName string
	}{
		{"unknown CA", "certificate", logstream.Options{RootCAs: x509.NewCertPool()}, "localhost"},
		{"wrong name", "certificate", logstream.Options{}, "logs.example.com"},
		{"egress", "egress policy", logstream.Options{Policy: egress.NewPolicy(nil)}, "localhost"},
	}
	for _, tt := range tests {
		s := newSender(t, r, logstream.FormatJSON, tt.opts)
		s.cfg.ServerName = tt.serverName
		res, err := s.Send(ctx, events(1))
		if logstream.ClassOf(err) != logstream.Permanent || res.Delivered != 0 || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %+v, %v; want a permanent failure about %s", tt.name, res, err, tt.want)
		}
	}
	// Nothing listening: retryable.
	s := newSender(t, r, logstream.FormatJSON, logstream.Options{})
	s.cfg.Port = rsyslogtest.FreePort(t)
	if _, err := s.Send(ctx, events(1)); logstream.ClassOf(err) != logstream.Retryable {
		t.Errorf("closed port: %v, want retryable", err)
	}
}

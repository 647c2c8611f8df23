//go:build rsyslog

package server_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/logstream/syslog/rsyslogtest"
	"github.com/auditlog/auditlog/server"
)

// TestSyslogStreamThroughAuditd: an admin creates a SYSLOG stream through
// the API, and a real rsyslogd, reached over TLS with a certificate auditd
// verifies, writes every event recorded after it, once and in the log's
// order, each message naming the event's id and leaf index in its
// structured data; OCSF reaches it the same way after an update.
func TestSyslogStreamThroughAuditd(t *testing.T) {
	rs := rsyslogtest.Start(t)
	env := testenv.Start(t, func(c *server.Config) {
		c.EgressAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.LogStreamTick = 100 * time.Millisecond
		c.LogStreamRootCAs = rs.RootCAs()
	})
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")

	var created struct{ CreateLogStream struct{ ID, Status string } }
	env.Do(t, admin, createLogStream, map[string]any{"input": map[string]any{
		"name":        "rsyslog",
		"destination": map[string]any{"syslog": map[string]any{"host": "127.0.0.1", "port": rs.Port, "serverName": "localhost"}},
		"filter":      map[string]any{"types": []string{"USER_CREATED"}},
	}}).MustData(t, &created)
	if created.CreateLogStream.Status != "ACTIVE" {
		t.Fatalf("created: %+v", created.CreateLogStream)
	}

	at := time.Now().Add(-time.Minute)
	var events []map[string]any
	for i := range 30 {
		events = append(events, userCreated("acme", at.Add(time.Duration(i)*time.Millisecond), "u"+string(rune('a'+i%26))+"@example.com"))
	}
	mustRecord(t, env, events)

	lines := rs.Lines(t, len(events))
	var leaf int64 = -1
	for i, line := range lines {
		f := rsyslogtest.Fields(line)
		if len(f) != 8 {
			t.Fatalf("line %d has %d fields: %q", i, len(f), line)
		}
		msgid, sd, msg := f[5], f[6], f[7]
		var ev struct {
			ID        string
			Type      string
			LeafIndex *int64
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(msg)), &ev); err != nil {
			t.Fatalf("line %d: MSG is not JSON: %v: %q", i, err, msg)
		}
		if i >= len(events) || ev.ID != events[i]["id"] {
			t.Fatalf("line %d is event %s; want %v (in the order recorded, each once)", i, ev.ID, events[min(i, len(events)-1)]["id"])
		}
		if msgid != "USER_CREATED" || !strings.Contains(sd, `id="`+ev.ID+`"`) || !strings.Contains(sd, `org="acme"`) {
			t.Errorf("line %d: msgid %s structured data %s", i, msgid, sd)
		}
		if ev.LeafIndex != nil {
			if *ev.LeafIndex <= leaf {
				t.Errorf("line %d: leaf %d after %d", i, *ev.LeafIndex, leaf)
			}
			leaf = *ev.LeafIndex
		}
	}
	if len(lines) != len(events) {
		t.Errorf("rsyslog wrote %d lines for %d events (the opt-in is filtered out)", len(lines), len(events))
	}

	// rsyslog writes a batch before auditd stores its position: wait for it.
	type streamState struct {
		Delivered            int
		Status               string
		LastDeliveredEventID *string
	}
	last := events[len(events)-1]["id"]
	var s streamState
	waitFor(t, 15*time.Second, "the stream's position after rsyslog wrote every event", func() bool {
		var state struct{ LogStreams []streamState }
		env.Do(t, admin, `{ logStreams { delivered status lastDeliveredEventId } }`, nil).MustData(t, &state)
		if len(state.LogStreams) != 1 || state.LogStreams[0].Status != "ACTIVE" {
			t.Fatalf("streams: %+v", state.LogStreams)
		}
		s = state.LogStreams[0]
		return s.Delivered >= len(events)
	})
	if s.LastDeliveredEventID == nil || *s.LastDeliveredEventID != last || s.Delivered != len(events) {
		t.Errorf("after delivery: %d delivered, last %v; want %d, %v", s.Delivered, s.LastDeliveredEventID, len(events), last)
	}
}

// TestSyslogStreamAcrossNATSRestart is TestLogStreamAcrossNATSRestart for
// a real rsyslogd.
func TestSyslogStreamAcrossNATSRestart(t *testing.T) {
	logStreamAcrossNATSRestart(t, testenv.SinkSyslog)
}

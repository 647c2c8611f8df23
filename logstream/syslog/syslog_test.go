package syslog

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
)

var loopback = egress.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})

func events(n int) []*domain.Event {
	out := make([]*domain.Event, n)
	for i := range out {
		leaf := int64(200 + i)
		out[i] = &domain.Event{
			ID: fmt.Sprintf("01JSYSLOG%04d", i), OrgID: "org-1", Source: domain.SourcePlatform, Type: "USER_CREATED",
			OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC), RecordedAt: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
			Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Zoë \"Z\" Ünal"},
			Details: json.RawMessage(`{"userId":"u-2","userEmail":"b@example.com"}`), LeafIndex: &leaf,
		}
	}
	return out
}

func TestMessage(t *testing.T) {
	e := events(1)[0]
	e.ID = `a"b]c\d`
	e.Type = domain.TypeAuditLogSettingsDenied
	got := string(Message(e, "host name with spaces", []byte(`{"x":1}`)))
	want := `<108>1 2026-03-01T12:00:00.123456Z host_name_with_spaces auditlog - AUDIT_LOG_SETTINGS_DENIED [auditlog@32473 id="a\"b\]c\\d" leafIndex="200" org="org-1"] {"x":1}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e.LeafIndex = nil
	e.Type = "A_VERY_LONG_EVENT_TYPE_NAME_BEYOND_THIRTY_TWO"
	got = string(Message(e, "", nil))
	if !strings.Contains(got, " - auditlog - A_VERY_LONG_EVENT_TYPE_NAME_BEYO [") || strings.Contains(got, "leafIndex") {
		t.Errorf("empty host, long type, no leaf: %s", got)
	}
	for _, tt := range []struct{ msg, want string }{
		{"", "0 "},
		{"abc", "3 abc"},
		{"é", "2 é"},
	} {
		if got := string(Frame([]byte(tt.msg))); got != tt.want {
			t.Errorf("Frame(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(logstream.SyslogConfig{Host: "x.example", Port: 6514, Format: logstream.FormatJSON}, logstream.Options{}, "h"); err == nil {
		t.Error("no policy was accepted")
	}
	_, err := New(logstream.SyslogConfig{Host: "x.example", Port: 0, Format: logstream.FormatJSON}, logstream.Options{Policy: loopback}, "h")
	if domain.CodeOf(err) != domain.CodeBadUserInput {
		t.Errorf("port 0: %v", err)
	}
}

// The sender is what the delivery engine drives.
var _ logstream.Sender = (*Sender)(nil)

package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
)

func TestDefuse(t *testing.T) {
	tests := []struct{ in, want string }{
		{"=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"},
		{"+1+2", "'+1+2"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tcmd", "'\tcmd"},
		{"\rcmd", "'\rcmd"},
		{"", ""},
		{"grace@example.com", "grace@example.com"},
		{"a=b", "a=b"},
		{"{\"k\":\"=1\"}", "{\"k\":\"=1\"}"},
		{" =1+2", "' =1+2"},
		{"\u00a0\u3000@SUM(A1)", "'\u00a0\u3000@SUM(A1)"},
		{"\n-1", "'\n-1"},
		{"＝HYPERLINK(\"x\")", "'＝HYPERLINK(\"x\")"},
		{"  ＋1", "'  ＋1"},
		{"   ", "   "},
		{" plain", " plain"},
	}
	for _, tt := range tests {
		if got := Defuse(tt.in); got != tt.want {
			t.Errorf("Defuse(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCSVRowsParseBackWithFormulasDefused(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.FixedZone("X", 3600))
	e := &domain.Event{
		ID: "01J0000000000000000000000", OrgID: "acme", Source: domain.SourcePlatform, Type: "USER_CREATED",
		OccurredAt: at,
		Actor:      domain.Actor{Kind: domain.ActorUser, ID: "-u1", Name: "=cmd|' /C calc'!A0", Email: "@evil.example"},
		Target:     &domain.Target{Kind: "USER", ID: "u2", Name: "Line\nbreak, \"quoted\""},
		IPAddress:  "10.0.0.1",
		Details:    json.RawMessage(`{"userId":"u2","userEmail":"+x@example.com"}`),
	}
	var buf bytes.Buffer
	enc, err := newEncoder(domain.ExportCSV, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || strings.Join(rows[0], "|") != strings.Join(CSVHeader, "|") {
		t.Fatalf("rows = %q", rows)
	}
	want := []string{
		"2026-11-25T09:00:00.123Z", "USER_CREATED", "New user was created", "USER", "PLATFORM",
		"'=cmd|' /C calc'!A0", "'@evil.example", "'-u1", "USER:u2 (Line\nbreak, \"quoted\")", "10.0.0.1",
		`{"userId":"u2","userEmail":"+x@example.com"}`, "01J0000000000000000000000",
	}
	for i := range want {
		if rows[1][i] != want[i] {
			t.Errorf("column %s = %q, want %q", CSVHeader[i], rows[1][i], want[i])
		}
	}
}

func TestNDJSONLines(t *testing.T) {
	var buf bytes.Buffer
	enc, _ := newEncoder(domain.ExportNDJSON, &buf)
	for _, id := range []string{"a", "b"} {
		if err := enc.Encode(&domain.Event{ID: id, Type: "USER_LOGOUT", Actor: domain.Actor{Kind: domain.ActorUser, ID: "u"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines = %q", lines)
	}
	var got struct {
		ID, Category, Description string
		Details                   json.RawMessage
	}
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "b" || got.Category != "USER" || got.Description != "User logged out" || string(got.Details) != "{}" {
		t.Fatalf("line = %+v", got)
	}
}

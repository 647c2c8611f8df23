package config_test

import (
	"bytes"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/config"
)

// The reference in docs/operations.md is generated from config.Settings:
// `auditd config --markdown > ...` between the markers.
func TestOperationsDocMatchesSettings(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- config:begin -->\n")
	got, _, ok2 := strings.Cut(rest, "<!-- config:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/operations.md has no <!-- config:begin --> ... <!-- config:end --> block")
	}
	var want bytes.Buffer
	if err := config.Markdown(&want); err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Fatalf("docs/operations.md's configuration tables differ from config.Settings; replace them with the output of `go run ./cmd/auditd config --markdown`:\n%s", want.String())
	}
}

func load(t *testing.T, env map[string]string, args ...string) (*config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return config.Load(config.Serve, fs, args, func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
}

func TestDefaultsAndNever(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.ExportWorkers != 2 || c.ReconcileEvery != time.Hour || c.CheckpointEvery != time.Minute ||
		!c.Introspection || c.Streams.Replicas != 1 || c.HolderTimeout != 10*time.Second || c.ProjectionPartitions != 4 ||
		c.SearchBudget != 80*time.Millisecond {
		t.Fatalf("defaults: %+v", c)
	}
	// 0 means never (none), which the struct holds as a negative value.
	c, err = load(t, nil, "--export-workers", "0", "--reconcile-every", "0", "--checkpoint-every", "0")
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportWorkers >= 0 || c.ReconcileEvery >= 0 || c.CheckpointEvery >= 0 {
		t.Fatalf("0 is never: %d %s %s", c.ExportWorkers, c.ReconcileEvery, c.CheckpointEvery)
	}
	// Flags override the environment.
	c, err = load(t, map[string]string{"AUDITD_ADDR": ":1", "AUDITD_HOLDER_TIMEOUT": "3s", "AUDITD_SEARCH_BUDGET": "250ms"}, "--addr", ":2")
	if err != nil || c.Addr != ":2" || c.HolderTimeout != 3*time.Second || c.SearchBudget != 250*time.Millisecond {
		t.Fatalf("%v %+v", err, c)
	}
}

// A malformed or out-of-range value is an error naming the setting, never
// its default.
func TestMalformedValuesAreNamed(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"AUDITD_PROJECTION_PARTITIONS": "x"}, nil, "AUDITD_PROJECTION_PARTITIONS"},
		{map[string]string{"AUDITD_PROJECTION_PARTITIONS": "3"}, nil, "power of two"},
		{map[string]string{"AUDITD_HOLDER_TIMEOUT": "soon"}, nil, "AUDITD_HOLDER_TIMEOUT"},
		{map[string]string{"AUDITD_HOLDER_TIMEOUT": "10ms"}, nil, "at least 1s"},
		{map[string]string{"AUDITD_EXPORT_ACK_WAIT": "0"}, nil, "AUDITD_EXPORT_ACK_WAIT"},
		{map[string]string{"AUDITD_MAX_FUTURE_SKEW": "13h"}, nil, "AUDITD_MAX_FUTURE_SKEW"},
		{map[string]string{"AUDITD_INTROSPECTION": "yes"}, nil, "AUDITD_INTROSPECTION"},
		{map[string]string{"AUDITD_REGION_PLACEMENT": "on"}, nil, "AUDITD_REGION_PLACEMENT"},
		{map[string]string{"AUDITD_LOG_LEVEL": "loud"}, nil, "AUDITD_LOG_LEVEL"},
		{nil, []string{"--export-workers", "-1"}, "export-workers"},
		{nil, []string{"--reconcile-every", "-1h"}, "reconcile-every"},
		{nil, []string{"--stall-after", "0"}, "stall-after"},
		{nil, []string{"--search-budget", "0s"}, "search-budget"},
		{map[string]string{"AUDITD_SEARCH_BUDGET": "fast"}, nil, "AUDITD_SEARCH_BUDGET"},
		{nil, []string{"--dedupe-window", "x"}, "dedupe-window"},
		{nil, []string{"--nats-listen", "127.0.0.1:4222"}, "--nats-listen needs AUDITD_NATS_INGEST_USER"},
		{map[string]string{"NATS_URL": "nats://x:4222"}, nil, "NATS_URL needs a responder user"},
	} {
		_, err := load(t, tc.env, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want %q", tc.env, tc.args, err, tc.want)
		}
	}
}

func TestPrintHidesSecrets(t *testing.T) {
	c, err := load(t, map[string]string{
		"AUDITD_JWT_SECRET": "hunter2", "NATS_PASSWORD": "pw1", "AUDITD_SIGNING_KEY": "PRIVATE+KEY",
		"DATABASE_URL": "postgres://u:pgpw@db/x", "DATABASE_URL_EU": "postgres://u:eupw@db/eu",
	}, "--download-key", "dlkey")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := c.Print(&out, config.Serve); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, secret := range []string{"hunter2", "pw1", "PRIVATE", "pgpw", "eupw", "dlkey"} {
		if strings.Contains(s, secret) {
			t.Errorf("config shows %q:\n%s", secret, s)
		}
	}
	for _, line := range []string{"--jwt-secret", "(set) (environment)", "AUDITD_NATS_INGEST_PASSWORD", "(unset)", "--addr", ":8080 (default)", "DATABASE_URL_EU"} {
		if !strings.Contains(s, line) {
			t.Errorf("config lacks %q:\n%s", line, s)
		}
	}
}

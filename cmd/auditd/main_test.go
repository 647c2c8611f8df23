package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
)

func TestTokenCommand(t *testing.T) {
	v := auth.NewHMACVerifier([]byte("s3cret"))
	tests := []struct {
		args  []string
		check func(*domain.Principal) bool
	}{
		{[]string{"--org", "acme", "--role", "ADMIN", "--email", "a@acme.example"}, func(p *domain.Principal) bool {
			return p.IsAdmin() && p.OrgID == "acme" && p.Email == "a@acme.example"
		}},
		{[]string{"--org", "acme", "--role", "user"}, func(p *domain.Principal) bool { return !p.IsAdmin() && p.Kind == domain.PrincipalUser }},
		{[]string{"--role", "SERVICE", "--sources", "PLATFORM,INSIGHT_VM"}, func(p *domain.Principal) bool {
			return p.Kind == domain.PrincipalService && slices.Equal(p.Sources, []domain.Source{"PLATFORM", "INSIGHT_VM"}) && len(p.Orgs) == 0
		}},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		args := append([]string{"token", "--jwt-secret", "s3cret"}, tc.args...)
		if err := run(context.Background(), args, &out, &out); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		p, err := v.Verify(lines[len(lines)-1])
		if err != nil || !tc.check(p) {
			t.Fatalf("%v: token gives %+v, %v", tc.args, p, err)
		}
	}
	for _, bad := range [][]string{
		{"token", "--role", "ADMIN"},
		{"token", "--org", "acme", "--role", "ROOT"},
		{"token", "--role", "SERVICE", "--sources", "NOPE"},
		{"frobnicate"},
		{},
	} {
		if err := run(context.Background(), bad, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestReconcileCommandFindsAndRepairsGaps(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	body := map[string]any{"events": []map[string]any{}}
	var ids []string
	for i := range 20 {
		id := ulid.Make().String()
		ids = append(ids, id)
		body["events"] = append(body["events"].([]map[string]any), map[string]any{
			"id": id, "orgId": "acme", "source": "PLATFORM", "type": "USER_LOGOUT",
			"occurredAt": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano),
			"actor":      map[string]any{"kind": "USER", "id": fmt.Sprintf("u%d", i)},
			"details":    map[string]any{"userId": fmt.Sprintf("u%d", i)},
		})
	}
	r := env.Do(t, testenv.ServiceToken(t), `mutation($events: [AuditEventInput!]!) { recordAuditEvents(events: $events) { results { status } } }`, body)
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	env.WaitProjected(t)
	ctx := context.Background()
	pool := env.EventStore(domain.RegionUS).Pool()
	if _, err := pool.Exec(ctx, `DELETE FROM audit_us.events WHERE org_id = 'acme' AND id = $1`, ids[4]); err != nil {
		t.Fatal(err)
	}
	if err := env.Stop(); err != nil { // the command opens the same embedded NATS storage
		t.Fatal(err)
	}
	args := []string{"projections", "reconcile", "--database-url", env.DBURL, "--data-dir", env.Config.DataDir, "--log-level", "warn"}

	var out bytes.Buffer
	err := run(ctx, args, &out, &bytes.Buffer{})
	if !errors.Is(err, errGaps) || !strings.Contains(out.String(), "org acme") ||
		!strings.Contains(out.String(), "event "+ids[4]) || strings.Count(out.String(), "gap:") != 1 {
		t.Fatalf("reconcile: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, append(args, "--repair"), &out, &bytes.Buffer{}); err != nil || !strings.Contains(out.String(), "1 repaired") {
		t.Fatalf("reconcile --repair: %v\n%s", err, out.String())
	}
	conn, err := pgx.Connect(ctx, env.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_us.events WHERE org_id = 'acme' AND id = $1`, ids[4]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("repaired row: %d, %v", n, err)
	}
	out.Reset()
	if err := run(ctx, args, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("after repair: %v\n%s", err, out.String())
	}
}

func TestDevelopmentSecretMeansLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":          "127.0.0.1:8080",
		"127.0.0.1:9000": "127.0.0.1:9000",
		"[::1]:9000":     "[::1]:9000",
		"localhost:80":   "localhost:80",
		"0.0.0.0:8080":   "",
		"[::]:8080":      "",
		"10.1.2.3:8080":  "",
	} {
		got, err := loopbackOnly(addr)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("loopbackOnly(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

// A retention below the floor, or no floor, stops every command before it
// opens a store.
func TestRetentionFlagsAreCheckedFirst(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--retention", "30d"}, "--retention of US: retention 30d is below the floor of 365d"},
		{[]string{"--retention", "US=400d,EU=400h"}, "--retention of EU: retention 400h0m0s is below the floor of 365d"},
		{[]string{"--retention", "400d", "--retention-floor", "500d"}, "below the floor of 500d"},
		{[]string{"--retention", "400d", "--retention-floor", "0"}, "--retention-floor must be positive"},
		{[]string{"--retention", "US=forever,XX=400d"}, "unknown region"},
	}
	for _, tc := range tests {
		// An unreachable database: the command must fail before it is used.
		args := append([]string{"projections", "reconcile", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, tc.args...)
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// More than one replica, or region placement, needs a NATS cluster: with
// the embedded server they stop the command before it opens a store, and so
// does a replica count JetStream cannot hold.
func TestReplicasAreCheckedFirst(t *testing.T) {
	t.Setenv("NATS_URL", "")
	t.Setenv("AUDITD_REPLICAS", "")
	t.Setenv("AUDITD_REGION_PLACEMENT", "")
	tests := []struct {
		args []string
		env  string // AUDITD_REPLICAS
		want string
	}{
		{[]string{"--replicas", "3"}, "", "--replicas 3 needs a NATS cluster: set NATS_URL"},
		{nil, "3", "--replicas 3 needs a NATS cluster: set NATS_URL"},
		{[]string{"--region-placement"}, "", "--region-placement needs a NATS cluster"},
		{[]string{"--replicas", "0"}, "", `must be a number from 1 to 5, JetStream's limit, not "0"`},
		{nil, "three", `must be a number from 1 to 5, JetStream's limit, not "three"`},
		{[]string{"--replicas", "7", "--nats-url", "nats://127.0.0.1:1"}, "", `not "7"`},
	}
	for _, tc := range tests {
		t.Setenv("AUDITD_REPLICAS", tc.env)
		// An unreachable database: the command must fail before it is used.
		args := append([]string{"projections", "reconcile", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, tc.args...)
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, AUDITD_REPLICAS=%q: %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// keygen makes a signer key and prints its verifier key; verify refuses a
// file that is not a proved export, naming the line, with a non-zero exit.
func TestKeygenAndVerifyCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "--name", "audit.example.com"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	skey := strings.TrimSpace(out.String())
	vkey := strings.TrimPrefix(strings.TrimSpace(errOut.String()), "verifier key (public): ")
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("signer key %q: %v", skey, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("verifier key %q: %v", vkey, err)
	}
	msg, _ := note.Sign(&note.Note{Text: "x\n"}, signer)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("the keys do not match: %v", err)
	}
	file := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(file, []byte(`{"id":"x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"verify", "--key", vkey, file}, &out, &out)
	if !errors.Is(err, errUnverified) || !strings.Contains(err.Error(), "line 1:") {
		t.Fatalf("verify: %v", err)
	}
}

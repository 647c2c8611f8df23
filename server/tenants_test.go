package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// streamHeads are the last sequences of the US events stream and the
// checkpoint stream: what a request wrote, if anything.
func streamHeads(t *testing.T, env *testenv.Env) [2]uint64 {
	t.Helper()
	var out [2]uint64
	for i, name := range []string{natsx.AuditStream(domain.RegionUS), natsx.CheckpointStream} {
		s, err := env.JetStream().Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = info.State.LastSeq
	}
	return out
}

// Integrity fields are limited per request: a second alias of
// verifyAuditLog (the attack held four connections for 15 s) is refused
// before anything runs, with a code, quickly, and writes nothing.
func TestIntegrityFieldsAreLimitedPerRequest(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	seed(t, env, "acme", 20)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")

	tests := []struct {
		name, query, code string
	}{
		{"one verify runs", `{ verifyAuditLog { ok } }`, ""},
		{"four aliased verifies", aliased(4, "verifyAuditLog { ok checked }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"two aliased verifies", aliased(2, "verifyAuditLog { ok }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"verifies through a fragment", `fragment V on Query { verifyAuditLog { ok } } { ...V x: verifyAuditLog(from: 1) { ok } }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"two aliased checkpoints", aliased(2, "auditLogCheckpoint { treeSize }"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"three aliased consistency proofs", aliased(3, "auditLogConsistencyProof(from: 1, to: 2)"), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"two consistency proofs run", aliased(2, "auditLogConsistencyProof(from: 1, to: 2)"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := streamHeads(t, env)
			start := time.Now()
			r := env.Do(t, admin, tc.query, nil)
			took := time.Since(start)
			if tc.code == "" {
				r.MustData(t, &struct{}{})
				return
			}
			if got := r.ErrorCode(t); got != tc.code {
				t.Fatalf("code %s, want %s: %+v", got, tc.code, r.Errors)
			}
			if !strings.Contains(r.Errors[0].Message, "at most") || len(r.Data) > 0 && string(r.Data) != "null" {
				t.Fatalf("refusal %q with data %s", r.Errors[0].Message, r.Data)
			}
			if took > refusalBudget {
				t.Fatalf("refused after %v", took)
			}
			if after := streamHeads(t, env); after != before {
				t.Fatalf("a refused request wrote: streams %v → %v", before, after)
			}
			t.Logf("%s: refused %s in %v, nothing written", tc.name, tc.code, took)
		})
	}
}

// integritySessions counts auditd's integrity pool sessions running a
// statement.
func integritySessions(t *testing.T, pool *pgxpool.Pool) (active, all int) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE state = 'active'), count(*)
		FROM pg_stat_activity WHERE application_name = 'auditd-integrity' AND datname = current_database()`).Scan(&active, &all)
	if err != nil {
		t.Fatal(err)
	}
	return active, all
}

// One tenant's integrity checks cannot freeze another's reads: they run on
// connections of their own (seen in pg_stat_activity), at most one request
// of an organization at a time (the rest refused RATE_LIMITED at once),
// while another tenant's first page answers quickly.
func TestIntegrityChecksDoNotStarveOtherTenants(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	base := time.Now().Add(-12 * time.Hour)
	for start := 0; start < 20_000; start += 1000 {
		var batch []map[string]any
		for i := start; i < start+1000; i++ {
			batch = append(batch, ev("acme", "USER_LOGOUT", "PLATFORM", base.Add(time.Duration(i)*time.Second),
				map[string]any{"userId": "u1"}, nil))
		}
		mustRecord(t, env, batch)
	}
	seed(t, env, "globex", 50)
	env.WaitProjected(t)
	db, err := pgxpool.New(context.Background(), env.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	attacker := testenv.AdminToken(t, "acme")
	var (
		stop                atomic.Bool
		ran, refused, other atomic.Int64
		slowestRefusal      atomic.Int64
		wg                  sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				r := env.Do(t, attacker, `{ verifyAuditLog { ok treeSize } }`, nil)
				took := time.Since(start)
				switch {
				case len(r.Errors) == 0:
					ran.Add(1)
				case r.Errors[0].Code() == "RATE_LIMITED":
					refused.Add(1)
					if int64(took) > slowestRefusal.Load() {
						slowestRefusal.Store(int64(took))
					}
				default:
					other.Add(1)
					t.Errorf("verify: %+v", r.Errors)
				}
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	// The checks run, on the integrity pool.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if active, _ := integritySessions(t, db); active > 0 {
			break
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-time.After(time.Until(deadline)):
			t.Fatal("no integrity pool session ran a statement while acme verified its log")
		}
	}

	victim := testenv.AdminToken(t, "globex")
	var slowest time.Duration
	for range 10 {
		start := time.Now()
		var out struct{ AuditEvents struct{ TotalCount int } }
		env.Do(t, victim, `{ auditEvents(first: 50) { totalCount edges { node { id type occurredAt } } } }`, nil).MustData(t, &out)
		slowest = max(slowest, time.Since(start))
		if out.AuditEvents.TotalCount < 50 {
			t.Fatalf("globex sees %d events", out.AuditEvents.TotalCount)
		}
	}
	_, sessions := integritySessions(t, db)
	stop.Store(true)
	wg.Wait()
	t.Logf("acme: %d verifies of 20,000 events ran, %d refused RATE_LIMITED (slowest refusal %v); globex's slowest first page %v; %d integrity sessions",
		ran.Load(), refused.Load(), time.Duration(slowestRefusal.Load()), slowest, sessions)
	if slowest > 2*time.Second {
		t.Fatalf("globex's first page took %v while acme verified", slowest)
	}
	if refused.Load() == 0 || time.Duration(slowestRefusal.Load()) > refusalBudget {
		t.Fatalf("%d refusals, slowest %v: four concurrent verifies of one org were not refused quickly", refused.Load(), time.Duration(slowestRefusal.Load()))
	}
	if sessions > 4 {
		t.Fatalf("%d integrity sessions, want at most the pool's 4", sessions)
	}

	// Another organization still verifies while acme does.
	var v struct{ VerifyAuditLog struct{ Ok bool } }
	env.Do(t, victim, `{ verifyAuditLog { ok } }`, nil).MustData(t, &v)
	if !v.VerifyAuditLog.Ok {
		t.Fatal("globex's log does not verify")
	}
}

// A hundred aliased searches in one request, each with another filter,
// leave one AUDIT_LOG_VIEWED at once and one counting the other 99 when the
// window ends; reads cannot flood the log, and the tree (and so the
// checkpoints it triggers) grows by two leaves, not a hundred.
func TestAliasedSearchesMakeABoundedNumberOfViews(t *testing.T) {
	clk := &clock{at: time.Now()}
	env := testenv.Start(t, func(c *server.Config) { c.Now = clk.Now })
	env.EnableOrg(t, "acme", domain.RegionUS)
	seed(t, env, "acme", 5)
	env.WaitProjected(t)
	attacker := testenv.Token(t, auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "user:mallory@acme"}, Org: "acme", Kind: "user",
		Roles: []string{domain.RoleAdmin}, Name: "Mallory", Email: "mallory@acme.example",
	})
	var b strings.Builder
	b.WriteString("{ ")
	for i := range 100 {
		fmt.Fprintf(&b, `s%d: auditEvents(first: 1, filter: {search: "term%d"}) { totalCount } `, i, i)
	}
	b.WriteString("}")
	before := streamHeads(t, env)
	start := time.Now()
	env.Do(t, attacker, b.String(), nil).MustData(t, &struct{}{})
	took := time.Since(start)
	env.WaitProjected(t)
	written := streamHeads(t, env)[0] - before[0]
	if written != 1 {
		t.Fatalf("100 aliased searches appended %d events, want 1", written)
	}

	clk.Add(11 * time.Minute) // the window ends; Run records the count
	mallory := func() (events, reads int) {
		for _, v := range viewedEvents(t, env, "acme") {
			if v.Actor.ID == "user:mallory@acme" && v.Action != nil && *v.Action == "search" {
				events++
				reads += v.Details.Count
			}
		}
		return events, reads
	}
	deadline := time.Now().Add(15 * time.Second)
	events, reads := mallory()
	for reads < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events counting %d reads after the window, want 100 reads", events, reads)
		}
		events, reads = mallory()
	}
	if events != 2 || reads != 100 {
		t.Fatalf("%d events counting %d reads, want 2 counting 100", events, reads)
	}
	t.Logf("100 aliased searches: answered in %v, %d event at once, %d events counting %d reads in all", took, written, events, reads)
}

// Every use of a signed download link counts: fifty downloads show as
// fifty, in at most two events.
func TestEachDownloadOfALinkIsCounted(t *testing.T) {
	clk := &clock{at: time.Now()}
	env := testenv.Start(t, func(c *server.Config) { c.Now = clk.Now })
	env.EnableOrg(t, "acme", domain.RegionUS)
	seed(t, env, "acme", 5)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")
	job := waitExport(t, env, admin, startExport(t, env, admin, nil, "CSV").ID)
	if job.DownloadURL == nil {
		t.Fatalf("export %+v has no link", job)
	}
	const n = 50
	for range n {
		resp, err := http.Get(*job.DownloadURL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("download: %d", resp.StatusCode)
		}
	}
	clk.Add(11 * time.Minute)
	downloads := func() (events, count int) {
		for _, v := range viewedEvents(t, env, "acme") {
			if v.Action != nil && *v.Action == "download" && v.Actor.Kind == "SYSTEM" {
				events++
				count += v.Details.Count
			}
		}
		return events, count
	}
	deadline := time.Now().Add(15 * time.Second)
	events, count := downloads()
	for count < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d download events counting %d, want %d", events, count, n)
		}
		events, count = downloads()
	}
	if events != 2 || count != n {
		t.Fatalf("%d download events counting %d, want 2 counting %d", events, count, n)
	}
}

// Reads that issue a signed checkpoint issue at most one per organization
// and interval: within it they get the latest, and the checkpoint stream
// does not grow however often they ask.
func TestReadsIssueAtMostOneCheckpointPerInterval(t *testing.T) {
	clk := &clock{at: time.Now()}
	env := testenv.Start(t, func(c *server.Config) { c.Now = clk.Now; c.CheckpointEvery = -1 })
	env.EnableOrg(t, "acme", domain.RegionUS)
	seed(t, env, "acme", 5)
	env.WaitProjected(t)
	admin := testenv.AdminToken(t, "acme")

	first := checkpointOf(t, env, "acme")
	heads := streamHeads(t, env)
	for range 20 {
		seed(t, env, "acme", 1) // the tree grows between the asks
		env.WaitProjected(t)
		if cp := checkpointOf(t, env, "acme"); cp.TreeSize != first.TreeSize {
			t.Fatalf("a checkpoint of %d leaves issued within the interval of one of %d", cp.TreeSize, first.TreeSize)
		}
	}
	if after := streamHeads(t, env); after[1] != heads[1] {
		t.Fatalf("the checkpoint stream grew from %d to %d within the interval", heads[1], after[1])
	}
	// An event the latest checkpoint does not cover yet cannot be proved
	// against it: RATE_LIMITED, saying when.
	late := ev("acme", "USER_LOGOUT", "PLATFORM", time.Now().Add(-time.Minute), map[string]any{"userId": "u1"}, nil)
	mustRecord(t, env, []map[string]any{late})
	env.WaitProjected(t)
	r := env.Do(t, admin, `query($id: ID!) { auditEventProof(id: $id) { treeSize } }`, map[string]any{"id": late["id"]})
	if code := r.ErrorCode(t); code != "RATE_LIMITED" {
		t.Fatalf("proof of an uncovered event: %s", code)
	}

	clk.Add(server.DefaultCheckpointMinInterval)
	if cp := checkpointOf(t, env, "acme"); cp.TreeSize < first.TreeSize+21 {
		t.Fatalf("after the interval, a checkpoint of %d leaves; want %d", cp.TreeSize, first.TreeSize+21)
	}
	if after := streamHeads(t, env); after[1] != heads[1]+1 {
		t.Fatalf("the checkpoint stream went from %d to %d, want one more", heads[1], after[1])
	}
}

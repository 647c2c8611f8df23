package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

func TestParseRetention(t *testing.T) {
	all := func(d time.Duration) map[domain.Region]time.Duration {
		out := map[domain.Region]time.Duration{}
		for _, r := range domain.Regions {
			out[r] = d
		}
		return out
	}
	mixed := all(400 * domain.Day)
	mixed[domain.RegionEU] = 730 * domain.Day
	tests := []struct {
		spec    string
		want    map[domain.Region]time.Duration
		wantErr string
	}{
		{spec: "", want: map[domain.Region]time.Duration{}},
		{spec: "400d", want: all(400 * domain.Day)},
		{spec: "9600h", want: all(400 * domain.Day)},
		{spec: "forever", want: all(0)},
		{spec: "US=400d, eu=730d", want: map[domain.Region]time.Duration{domain.RegionUS: 400 * domain.Day, domain.RegionEU: 730 * domain.Day}},
		{spec: "400d,EU=730d", want: mixed},
		{spec: "EU=730d,400d", want: mixed},
		{spec: "400", wantErr: "want days"},
		{spec: "1.5d", wantErr: "whole number"},
		{spec: "-5d", wantErr: "whole number"},
		{spec: "XX=400d", wantErr: "unknown region"},
		{spec: "US=400d,US=500d", wantErr: "given twice"},
		{spec: "400d,500d", wantErr: "more than one"},
	}
	for _, tc := range tests {
		got, err := server.ParseRetention(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.spec, got, err, tc.want)
			continue
		}
		for r, d := range tc.want {
			if got[r] != d {
				t.Errorf("%q: %s keeps %s, want %s", tc.spec, r, got[r], d)
			}
		}
	}
}

// A retention below the floor is refused before anything starts.
func TestRetentionBelowTheFloorIsRefused(t *testing.T) {
	tests := []struct {
		name      string
		retention map[domain.Region]time.Duration
		floor     time.Duration
		want      string
	}{
		{"30 days under the default floor", map[domain.Region]time.Duration{domain.RegionEU: 30 * domain.Day}, 0, "retention of EU: retention 30d is below the floor of 365d"},
		{"400 hours, not days", map[domain.Region]time.Duration{domain.RegionUS: 400 * time.Hour}, 0, "below the floor"},
		{"under a raised floor", map[domain.Region]time.Duration{domain.RegionUS: 400 * domain.Day}, 730 * domain.Day, "below the floor of 730d"},
		{"unknown region", map[domain.Region]time.Duration{"XX": 400 * domain.Day}, 0, "unknown region"},
	}
	for _, tc := range tests {
		_, err := server.New(context.Background(), server.Config{Retention: tc.retention, RetentionFloor: tc.floor})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// With a retention of 400 days, a month of the year 2000 goes as a whole
// with its partition while this month's events stay; the stream keeps its
// messages 433 days; the drop is counted on /metrics; reconciliation finds
// no gap and no unexplained row; and the settings show the retention.
func TestRetentionInServe(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) {
		c.Retention = map[domain.Region]time.Duration{domain.RegionUS: 400 * domain.Day}
	})
	ctx := context.Background()
	env.EnableOrg(t, "acme", domain.RegionUS)
	env.EnableOrg(t, "globex", domain.RegionUS)
	pool := env.EventStore(domain.RegionUS).Pool()
	if _, err := pool.Exec(ctx, `SELECT audit_us.ensure_partitions('2000-01-01', '2000-02-01')`); err != nil {
		t.Fatal(err)
	}
	jan := time.Date(2000, 1, 10, 0, 0, 0, 0, time.UTC)
	now := time.Now().Add(-time.Minute)
	events := []map[string]any{
		userCreated("acme", jan, "a@acme.example"), userCreated("acme", jan.AddDate(0, 0, 20), "b@acme.example"),
		userCreated("globex", jan, "c@globex.example"),
		userCreated("acme", now, "d@acme.example"), userCreated("globex", now, "e@globex.example"),
	}
	for i, r := range record(t, env, events) {
		if r.Status != "RECORDED" {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	env.WaitProjected(t)
	before := list(t, env, "acme", nil, 50, "").TotalCount

	drops, err := env.EnforceRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	us := drops[domain.RegionUS]
	if len(drops) != 1 || len(us) != 1 || us[0].Table != "events_2000_01" || us[0].Events != 3 || us[0].IDs != 3 {
		t.Fatalf("dropped %+v", drops)
	}
	if after := list(t, env, "acme", nil, 50, "").TotalCount; after != before-2 {
		t.Fatalf("acme reads %d events, had %d: want exactly January's 2 gone", after, before)
	}
	if c := list(t, env, "acme", map[string]any{"from": "2000-01-01T00:00:00Z", "to": "2000-02-01T00:00:00Z"}, 50, ""); c.TotalCount != 0 {
		t.Fatalf("January still lists %d events", c.TotalCount)
	}

	s, err := env.JetStream().Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 400*domain.Day+natsx.RetentionMargin {
		t.Fatalf("AUDIT_US keeps messages %s", got)
	}
	if got := s.CachedInfo().State.Msgs; got != s.CachedInfo().State.LastSeq {
		t.Fatalf("the stream holds %d of %d messages: retention must never remove messages", got, s.CachedInfo().State.LastSeq)
	}

	m := scrape(t, env)
	if p, e := m["auditlog_retention_partitions_dropped_total{stream=AUDIT_US}"], m["auditlog_retention_events_dropped_total{stream=AUDIT_US}"]; p != 1 || e != 3 {
		t.Fatalf("metrics: %v partitions, %v events dropped", p, e)
	}
	if e := m["auditlog_retention_events_dropped_total{stream=AUDIT_EU}"]; e != 0 {
		t.Fatalf("EU dropped %v", e)
	}

	reports, err := env.Reconcile(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range reports {
		want := int64(0)
		if rep.Stream == natsx.AuditStream(domain.RegionUS) {
			want = 3
		}
		if len(rep.Gaps) != 0 || rep.Repaired != 0 || rep.Unexplained != 0 || rep.Expired != want {
			t.Fatalf("%s: %d gaps, %d repaired, %d unexplained, %d expired", rep.Stream, len(rep.Gaps), rep.Repaired, rep.Unexplained, rep.Expired)
		}
	}

	// The dropped events stay provable: the tree kept their hashes, so the
	// log still verifies, with the dropped leaves counted as expired.
	var v struct {
		VerifyAuditLog struct {
			Ok               bool
			Expired, Checked int
			FirstDivergence  *struct {
				LeafIndex int
				Field     string
			}
		}
	}
	env.Do(t, testenv.AdminToken(t, "acme"), `{ verifyAuditLog { ok expired checked firstDivergence { leafIndex field } } }`, nil).MustData(t, &v)
	if !v.VerifyAuditLog.Ok || v.VerifyAuditLog.Expired != 2 {
		t.Fatalf("verify after the drop: %+v %+v", v.VerifyAuditLog, v.VerifyAuditLog.FirstDivergence)
	}

	r := env.Do(t, testenv.AdminToken(t, "acme"), `{ auditLogSettings { region retention { days floorDays oldestKept } } }`, nil)
	var out struct {
		AuditLogSettings struct {
			Retention struct {
				Days       *int
				FloorDays  int
				OldestKept *time.Time
			}
		}
	}
	r.MustData(t, &out)
	got := out.AuditLogSettings.Retention
	want := domain.Retention{Period: 400 * domain.Day}.Horizon(time.Now())
	if got.Days == nil || *got.Days != 400 || got.FloorDays != 365 || got.OldestKept == nil || !got.OldestKept.Equal(want) {
		t.Fatalf("retention %+v, want 400 days, floor 365, oldest kept %s", got, want)
	}
}

// Without a retention the settings say so: days and oldestKept are null.
func TestRetentionForeverInSettings(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionEU)
	r := env.Do(t, testenv.AdminToken(t, "acme"), `{ auditLogSettings { retention { days floorDays oldestKept } } }`, nil)
	var out struct {
		AuditLogSettings struct {
			Retention *struct {
				Days       *int
				FloorDays  int
				OldestKept *time.Time
			}
		}
	}
	r.MustData(t, &out)
	if got := out.AuditLogSettings.Retention; got == nil || got.Days != nil || got.OldestKept != nil || got.FloorDays != 365 {
		t.Fatalf("retention %+v", got)
	}
}

// A host clock 200 days ahead does not drive retention: the skew against
// the database's clock is reported (gauge, failure counter, error) and
// nothing is dropped, though by the host's clock the month is past the
// retention.
func TestRetentionWithASkewedHostClockDropsNothing(t *testing.T) {
	const ahead = 200 * domain.Day
	env := testenv.Start(t, func(c *server.Config) {
		c.Retention = map[domain.Region]time.Duration{domain.RegionUS: 400 * domain.Day}
		c.Now = func() time.Time { return time.Now().Add(ahead) }
	})
	ctx := context.Background()
	env.EnableOrg(t, "acme", domain.RegionUS)
	at := time.Now().AddDate(0, 0, -250) // inside the floor, past 400 days by the host's clock
	month := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	pool := env.EventStore(domain.RegionUS).Pool()
	mustExec(t, pool, `SELECT audit_us.ensure_partitions($1, $2)`, month, month.AddDate(0, 1, 0))
	if r := record(t, env, []map[string]any{userCreated("acme", at, "a@acme.example")}); r[0].Status != "RECORDED" {
		t.Fatalf("%+v", r[0])
	}
	env.WaitProjected(t)

	drops, err := env.EnforceRetention(ctx)
	if !errors.Is(err, server.ErrClockSkew) || len(drops) != 0 {
		t.Fatalf("drops %+v, err %v; want ErrClockSkew and nothing dropped", drops, err)
	}
	if n := list(t, env, "acme", nil, 50, "").TotalCount; n < 1 {
		t.Fatalf("acme reads %d events after retention", n)
	}
	var partitions int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = $1`, "events_"+month.Format("2006_01")).Scan(&partitions); err != nil || partitions != 1 {
		t.Fatalf("month partition: %d, %v", partitions, err)
	}
	m := scrape(t, env)
	if skew := m["auditlog_clock_skew_seconds{region=US}"]; skew < (ahead - time.Minute).Seconds() {
		t.Fatalf("reported skew %vs, want about %vs", skew, ahead.Seconds())
	}
	if f := m["auditlog_region_task_failures_total{region=US}{task=retention}"]; f < 1 {
		t.Fatalf("retention failures of US: %v", f)
	}
	if p := m["auditlog_retention_partitions_dropped_total{stream=AUDIT_US}"]; p != 0 {
		t.Fatalf("%v partitions dropped", p)
	}
}

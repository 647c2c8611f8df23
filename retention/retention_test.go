package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/integrity"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/retention"
)

// Retention removes a month only as a whole, and only once all of it is
// older than the retention: January (its own partition) and February (rows
// in events_default only) go with their event ids; March, partly inside
// the retention, stays whole with the current month; no other row goes,
// and reconciliation then reports the removed events as expired, not as
// gaps.
func TestRetentionDropsWholeExpiredMonthsOnly(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	pool := store.Pool()
	projtest.MustExec(t, pool, `SELECT audit_us.ensure_partitions('2000-01-01', '2000-02-01')`)
	projtest.MustExec(t, pool, `SELECT audit_us.ensure_partitions('2000-03-01', '2000-04-01')`)
	day := func(month time.Month, d int) time.Time { return time.Date(2000, month, d, 12, 0, 0, 0, time.UTC) }
	old := map[string][]time.Time{
		"2000-01": {day(1, 1), time.Date(2000, 1, 31, 23, 59, 59, 999_000_000, time.UTC)},
		"2000-02": {day(2, 10)},
		"2000-03": {time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC), day(3, 10), day(3, 30)},
	}
	var last uint64
	for _, org := range []string{"acme", "globex"} {
		for _, ats := range old {
			for _, at := range ats {
				last = projtest.PublishAt(t, js, org, at)
			}
		}
		last = projtest.Publish(t, js, org, 5)
	}
	projtest.RunUntil(t, newProjector(100), last)
	const total = 2 * (2 + 1 + 3 + 5)
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events_default`); n != 2 {
		t.Fatalf("events_default holds %d rows, want February's 2", n)
	}

	now := time.Now().UTC()
	cutoff := time.Date(2000, 3, 15, 0, 0, 0, 0, time.UTC) // inside March
	tests := []struct {
		name      string
		ret       domain.Retention
		wantErr   string
		wantDrops []retention.Drop
		wantRows  int64
	}{
		{name: "forever", ret: domain.Retention{Floor: 365 * domain.Day}, wantRows: total},
		{name: "below the floor", ret: domain.Retention{Period: 30 * domain.Day, Floor: 365 * domain.Day},
			wantErr: "below the floor", wantRows: total},
		{name: "cutoff inside March", ret: domain.Retention{Period: now.Sub(cutoff)},
			wantDrops: []retention.Drop{
				{Month: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Table: "events_2000_01", Events: 4, IDs: 4},
				{Month: time.Date(2000, 2, 1, 0, 0, 0, 0, time.UTC), Events: 2, IDs: 2},
			}, wantRows: total - 6},
		{name: "again: nothing left to drop", ret: domain.Retention{Period: now.Sub(cutoff)}, wantRows: total - 6},
	}
	for _, tc := range tests {
		drops, err := retention.Enforce(ctx, store, tc.ret, now)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("%s: err %v, want %q", tc.name, err, tc.wantErr)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(drops) != len(tc.wantDrops) {
			t.Fatalf("%s: dropped %+v, want %+v", tc.name, drops, tc.wantDrops)
		}
		for i, d := range drops {
			if w := tc.wantDrops[i]; !d.Month.Equal(w.Month) || d.Table != w.Table || d.Events != w.Events || d.IDs != w.IDs {
				t.Errorf("%s: drop %d is %+v, want %+v", tc.name, i, d, w)
			}
		}
		if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events`); n != tc.wantRows {
			t.Fatalf("%s: %d rows, want %d", tc.name, n, tc.wantRows)
		}
		if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.event_ids`); n != tc.wantRows {
			t.Fatalf("%s: %d event ids, want %d", tc.name, n, tc.wantRows)
		}
	}

	for _, c := range []struct {
		table  string
		exists bool
	}{
		{"events_2000_01", false}, {"events_2000_01_h0", false}, {"events_2000_01_h7", false},
		{"events_2000_03", true}, {"events_2000_03_h7", true}, {"events_default", true},
	} {
		if got := projtest.Count(t, pool, `SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)`, "audit_us."+c.table) == 1; got != c.exists {
			t.Errorf("%s exists: %v, want %v", c.table, got, c.exists)
		}
	}
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events WHERE occurred_at >= '2000-03-01' AND occurred_at < '2000-04-01'`); n != 6 {
		t.Errorf("March keeps %d of its 6 rows", n)
	}
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events WHERE occurred_at < '2000-03-01'`); n != 0 {
		t.Errorf("%d rows of dropped months remain", n)
	}
	totals, err := retention.ReadTotals(ctx, store)
	if err != nil || totals.Partitions != 1 || totals.Events != 6 || !totals.Through.Equal(time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("totals %+v, %v", totals, err)
	}

	rep, err := integrity.Reconcile(ctx, store, js, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 0 || rep.Repaired != 0 || rep.Unexplained != 0 || rep.Expired != 6 {
		t.Fatalf("after retention: %d gaps, %d repaired, %d unexplained, %d expired; want 0, 0, 0, 6",
			len(rep.Gaps), rep.Repaired, rep.Unexplained, rep.Expired)
	}
	if o := rep.Orgs["acme"]; o.Expired != 3 || o.Stored != 8 || o.Rows != 8 {
		t.Fatalf("acme: %+v", *o)
	}
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events`); n != total-6 {
		t.Fatalf("reconciliation brought expired events back: %d rows", n)
	}
}

// Whatever clock the caller goes by, a month that ends inside the floor by
// the database's clock is never dropped: a host 200 days ahead asks for
// months still inside the floor and gets ErrInsideFloor, and every row stays.
func TestRetentionRefusesMonthsInsideTheFloorByTheDatabaseClock(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	pool := store.Pool()
	real := time.Now().UTC()
	at := real.AddDate(0, 0, -250) // 250 days old: inside the 365-day floor
	month := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	projtest.MustExec(t, pool, `SELECT audit_us.ensure_partitions($1, $2)`, month, month.AddDate(0, 1, 0))
	last := projtest.PublishAt(t, js, "acme", at)
	projtest.RunUntil(t, newProjector(100), last)

	skewed := real.Add(200 * domain.Day)
	drops, err := retention.Enforce(ctx, store, domain.Retention{Period: 400 * domain.Day, Floor: 365 * domain.Day}, skewed)
	if !errors.Is(err, retention.ErrInsideFloor) || len(drops) != 0 {
		t.Fatalf("drops %+v, err %v; want ErrInsideFloor and nothing dropped", drops, err)
	}
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events WHERE org_id = 'acme'`); n != 1 {
		t.Fatalf("%d rows of acme left, want 1", n)
	}
}

package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projections"
)

// publishAt appends an event of org that occurred at at and returns the
// stream sequence it was stored at.
func publishAt(t *testing.T, js jetstream.JetStream, org string, at time.Time) uint64 {
	t.Helper()
	e := domain.Event{
		ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: at, RecordedAt: time.Now().UTC(),
		Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u1"},
		Details: json.RawMessage(`{"userId":"u1"}`),
	}
	data, _ := json.Marshal(e)
	ack, err := js.Publish(context.Background(), natsx.AuditSubject(domain.RegionUS, &e), data, jetstream.WithMsgID(org+":"+e.ID))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Retention removes a month only as a whole, and only once all of it is
// older than the retention: January (its own partition) and February (rows
// in events_default only) go with their event ids; March, partly inside
// the retention, stays whole with the current month; no other row goes,
// and reconciliation then reports the removed events as expired, not as
// gaps.
func TestRetentionDropsWholeExpiredMonthsOnly(t *testing.T) {
	js, store, newProjector := newStore(t)
	ctx := context.Background()
	pool := store.Pool()
	mustExec(t, pool, `SELECT audit_us.ensure_partitions('2000-01-01', '2000-02-01')`)
	mustExec(t, pool, `SELECT audit_us.ensure_partitions('2000-03-01', '2000-04-01')`)
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
				last = publishAt(t, js, org, at)
			}
		}
		last = publish(t, js, org, 5)
	}
	runUntil(t, newProjector(100), last)
	const total = 2 * (2 + 1 + 3 + 5)
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events_default`); n != 2 {
		t.Fatalf("events_default holds %d rows, want February's 2", n)
	}

	now := time.Now().UTC()
	cutoff := time.Date(2000, 3, 15, 0, 0, 0, 0, time.UTC) // inside March
	tests := []struct {
		name      string
		ret       domain.Retention
		wantErr   string
		wantDrops []projections.RetentionDrop
		wantRows  int64
	}{
		{name: "forever", ret: domain.Retention{Floor: 365 * domain.Day}, wantRows: total},
		{name: "below the floor", ret: domain.Retention{Period: 30 * domain.Day, Floor: 365 * domain.Day},
			wantErr: "below the floor", wantRows: total},
		{name: "cutoff inside March", ret: domain.Retention{Period: now.Sub(cutoff)},
			wantDrops: []projections.RetentionDrop{
				{Month: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Partition: "events_2000_01", Events: 4, IDs: 4},
				{Month: time.Date(2000, 2, 1, 0, 0, 0, 0, time.UTC), Events: 2, IDs: 2},
			}, wantRows: total - 6},
		{name: "again: nothing left to drop", ret: domain.Retention{Period: now.Sub(cutoff)}, wantRows: total - 6},
	}
	for _, tc := range tests {
		drops, err := store.EnforceRetention(ctx, tc.ret, now)
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
			if w := tc.wantDrops[i]; !d.Month.Equal(w.Month) || d.Partition != w.Partition || d.Events != w.Events || d.IDs != w.IDs {
				t.Errorf("%s: drop %d is %+v, want %+v", tc.name, i, d, w)
			}
		}
		if n := count(t, pool, `SELECT count(*) FROM audit_us.events`); n != tc.wantRows {
			t.Fatalf("%s: %d rows, want %d", tc.name, n, tc.wantRows)
		}
		if n := count(t, pool, `SELECT count(*) FROM audit_us.event_ids`); n != tc.wantRows {
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
		if got := count(t, pool, `SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)`, "audit_us."+c.table) == 1; got != c.exists {
			t.Errorf("%s exists: %v, want %v", c.table, got, c.exists)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events WHERE occurred_at >= '2000-03-01' AND occurred_at < '2000-04-01'`); n != 6 {
		t.Errorf("March keeps %d of its 6 rows", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events WHERE occurred_at < '2000-03-01'`); n != 0 {
		t.Errorf("%d rows of dropped months remain", n)
	}
	totals, err := store.RetentionTotals(ctx)
	if err != nil || totals.Partitions != 1 || totals.Events != 6 || !totals.Through.Equal(time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("totals %+v, %v", totals, err)
	}

	rep, err := store.Reconcile(ctx, js, true)
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
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events`); n != total-6 {
		t.Fatalf("reconciliation brought expired events back: %d rows", n)
	}
}

// Messages the stream no longer holds cannot be compared: their rows are
// neither gaps nor unexplained.
func TestReconcileIgnoresRowsWhoseMessagesAgedOut(t *testing.T) {
	js, store, newProjector := newStore(t)
	ctx := context.Background()
	runUntil(t, newProjector(100), publish(t, js, "acme", 20))
	setMaxAge := func(d, dupes time.Duration) {
		t.Helper()
		s, err := js.Stream(ctx, natsx.AuditStream(domain.RegionUS))
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxAge, cfg.Duplicates = d, dupes
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	setMaxAge(time.Second, time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := js.Stream(ctx, natsx.AuditStream(domain.RegionUS))
		if err != nil {
			t.Fatal(err)
		}
		if s.CachedInfo().State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("messages did not age out")
		}
		time.Sleep(100 * time.Millisecond)
	}
	setMaxAge(0, time.Minute)
	runUntil(t, newProjector(100), publish(t, js, "acme", 10))

	rep, err := store.Reconcile(ctx, js, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 0 || rep.Unexplained != 0 || rep.From != 21 || rep.Checked != 10 {
		t.Fatalf("%d gaps, %d unexplained, from %d, %d checked; want 0, 0, 21, 10", len(rep.Gaps), rep.Unexplained, rep.From, rep.Checked)
	}
	if o := rep.Orgs["acme"]; o.Rows != 10 || o.Stored != 10 {
		t.Fatalf("acme: %+v", *o)
	}
	if n := count(t, store.Pool(), `SELECT count(*) FROM audit_us.events`); n != 30 {
		t.Fatalf("the read model holds %d rows, want all 30", n)
	}

	// The tree outlives the messages: verification starts from the hashes
	// it kept for the first 20 leaves and checks their rows against them.
	noCheckpoints := func(string) (int64, tlog.Hash, error) { return 0, tlog.Hash{}, errors.New("no checkpoint expected") }
	v, err := store.VerifyTree(ctx, js, "acme", 0, -1, noCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Expired != 20 || v.Checked != 30 || v.TreeSize != 30 {
		t.Fatalf("verify after messages aged out: %+v %+v", v, v.First)
	}
	if _, err := store.Pool().Exec(ctx, `UPDATE audit_us.events SET record = convert_to(replace(convert_from(record, 'UTF8'), 'u3', 'u9'), 'UTF8') WHERE org_id = 'acme' AND leaf_index = 3`); err != nil {
		t.Fatal(err)
	}
	v, err = store.VerifyTree(ctx, js, "acme", 0, -1, noCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.First == nil || v.First.LeafIndex != 3 || v.First.Field != "record" {
		t.Fatalf("a changed record of an aged-out leaf: %+v %+v", v, v.First)
	}
}

// Whatever clock the caller goes by, a month that ends inside the floor by
// the database's clock is never dropped: a host 200 days ahead asks for
// months still inside the floor and gets ErrInsideFloor, and every row stays.
func TestRetentionRefusesMonthsInsideTheFloorByTheDatabaseClock(t *testing.T) {
	js, store, newProjector := newStore(t)
	ctx := context.Background()
	pool := store.Pool()
	real := time.Now().UTC()
	at := real.AddDate(0, 0, -250) // 250 days old: inside the 365-day floor
	month := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	mustExec(t, pool, `SELECT audit_us.ensure_partitions($1, $2)`, month, month.AddDate(0, 1, 0))
	last := publishAt(t, js, "acme", at)
	runUntil(t, newProjector(100), last)

	skewed := real.Add(200 * domain.Day)
	drops, err := store.EnforceRetention(ctx, domain.Retention{Period: 400 * domain.Day, Floor: 365 * domain.Day}, skewed)
	if !errors.Is(err, projections.ErrInsideFloor) || len(drops) != 0 {
		t.Fatalf("drops %+v, err %v; want ErrInsideFloor and nothing dropped", drops, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events WHERE org_id = 'acme'`); n != 1 {
		t.Fatalf("%d rows of acme left, want 1", n)
	}
}

// An event far ahead lands in events_default; creating its month later
// moves it into the month's partition in the same transaction instead of
// failing, and the event still reads.
func TestEnsurePartitionsTakesItsMonthOutOfTheDefault(t *testing.T) {
	js, store, newProjector := newStore(t)
	ctx := context.Background()
	pool := store.Pool()
	now := time.Now().UTC()
	ahead := time.Date(now.Year(), now.Month(), 10, 12, 0, 0, 0, time.UTC).AddDate(0, 5, 0) // month M+5
	last := publishAt(t, js, "acme", ahead)
	runUntil(t, newProjector(100), last)
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events_default`); n != 1 {
		t.Fatalf("events_default holds %d rows, want the M+5 event", n)
	}
	if err := store.EnsurePartitions(ctx, 6); err != nil {
		t.Fatalf("creating M+5 with its row in the default: %v", err)
	}
	part := "audit_us.events_" + ahead.Format("2006_01")
	if n := count(t, pool, `SELECT count(*) FROM `+part); n != 1 {
		t.Fatalf("%s holds %d rows, want 1", part, n)
	}
	if n := count(t, pool, `SELECT count(*) FROM audit_us.events_default`); n != 0 {
		t.Fatalf("events_default still holds %d rows", n)
	}
	if ids := firstPage(t, store, "acme"); len(ids) != 1 {
		t.Fatalf("acme reads %v", ids)
	}
}

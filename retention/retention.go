// Package retention removes expired events from a region's read model, a
// whole month at a time, judged by the database's clock and never inside
// the retention floor.
package retention

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditlog/auditlog/domain"
)

// Retention removes events from a read model only a whole month at a time:
// the month's partition (with its 8 org-hash partitions) is detached and
// dropped, and the rows of the month in events_default and in event_ids go
// with it, in one transaction. A single event is never deleted on its own,
// and no other table is touched.

// Store is the read model retention works on (readmodel.EventStore).
type Store interface {
	Pool() *pgxpool.Pool
	Schema() string
	Stream() string
}

// Drop is one expired month removed from a read model.
type Drop struct {
	// Month is the first instant of the month, UTC; the month ends at End.
	Month time.Time
	// Table is the month's table dropped (events_YYYY_MM), or "" when the
	// month had none and its events were all in events_default.
	Table string
	// Events counts the event rows removed (the partition's and those of
	// events_default in the month); IDs the event_ids rows.
	Events, IDs int64
}

// End is the first instant after the month.
func (d Drop) End() time.Time { return d.Month.AddDate(0, 1, 0) }

// monthTable matches the names ensure_partitions gives month tables.
var monthTable = regexp.MustCompile(`^events_(\d{4})_(\d{2})$`)

// retentionLockTimeout bounds the wait for the locks a drop takes (detaching
// a partition locks the whole events table). Enforcement gives up and tries
// again on its next run rather than queue every query behind a long one.
const retentionLockTimeout = "10s"

// Enforce removes every month of the read model that ended at or
// before ret.Horizon(now): each month entirely older than the retention
// period. A month partly inside it is kept whole. It refuses a retention
// below its floor, and never drops a month that ends inside the floor.
// Concurrent calls, from any instance, remove each month once.
func Enforce(ctx context.Context, s Store, ret domain.Retention, now time.Time) ([]Drop, error) {
	if ret.Forever() {
		return nil, nil
	}
	if err := ret.Check(); err != nil {
		return nil, fmt.Errorf("retention %s: %w", s.Schema(), err)
	}
	horizon := ret.Horizon(now)
	if floor := now.Add(-ret.Floor); horizon.After(floor) {
		return nil, fmt.Errorf("retention %s: months up to %s would be inside the floor %s", s.Schema(), horizon, floor)
	}
	months, err := expiredMonths(ctx, s, horizon)
	if err != nil {
		return nil, err
	}
	var drops []Drop
	for _, m := range months {
		d, err := dropMonth(ctx, s, m, ret.Floor)
		if err != nil {
			return drops, err
		}
		if d != nil {
			drops = append(drops, *d)
		}
	}
	return drops, nil
}

// expiredMonths lists the months before horizon that the read model holds:
// those with a partition and those with rows in events_default.
func expiredMonths(ctx context.Context, s Store, horizon time.Time) ([]time.Time, error) {
	rows, err := s.Pool().Query(ctx, `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)`, s.Schema()+".events")
	if err != nil {
		return nil, fmt.Errorf("retention %s: partitions: %w", s.Schema(), err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("retention %s: partitions: %w", s.Schema(), err)
	}
	var months []time.Time
	for _, name := range names {
		m, ok := monthOf(name)
		if ok && !m.AddDate(0, 1, 0).After(horizon) {
			months = append(months, m)
		}
	}
	// A month without a partition can still have rows: events_default
	// takes those of every month no partition covers.
	rows, err = s.Pool().Query(ctx, fmt.Sprintf(`
		SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
		FROM %s.events_default WHERE occurred_at < $1`, s.Schema()), horizon)
	if err != nil {
		return nil, fmt.Errorf("retention %s: default partition: %w", s.Schema(), err)
	}
	inDefault, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("retention %s: default partition: %w", s.Schema(), err)
	}
	for _, m := range inDefault {
		if m = m.UTC(); !slices.ContainsFunc(months, m.Equal) {
			months = append(months, m)
		}
	}
	slices.SortFunc(months, time.Time.Compare)
	return months, nil
}

// monthOf is the month a partition named events_YYYY_MM holds.
func monthOf(name string) (time.Time, bool) {
	m := monthTable.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("2006_01", m[1]+"_"+m[2])
	return t, err == nil
}

// ErrInsideFloor is returned when a month to drop ends inside the
// retention floor by the database's clock: whatever clock the caller went
// by, nothing younger than the floor is ever dropped.
var ErrInsideFloor = errors.New("month ends inside the retention floor by the database clock")

// dropMonth removes month from the read model in one transaction and adds
// it to retention_drops; nil when another run removed it first. It refuses
// a month that ends inside floor by the database's own clock, checked in
// the same transaction.
func dropMonth(ctx context.Context, s Store, month time.Time, floor time.Duration) (*Drop, error) {
	d := &Drop{Month: month}
	end := d.End()
	name := "events_" + month.Format("2006_01")
	err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+retentionLockTimeout+"'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "retention-drop:"+s.Schema()); err != nil {
			return err
		}
		var inside bool
		if err := tx.QueryRow(ctx, `SELECT $1::timestamptz > now() - make_interval(secs => $2)`,
			end, floor.Seconds()).Scan(&inside); err != nil {
			return err
		}
		if inside {
			return ErrInsideFloor
		}
		// Row deletes first, the partition last: detaching locks the
		// whole table, and holding that only briefly keeps reads going.
		tag, err := tx.Exec(ctx, fmt.Sprintf(
			`DELETE FROM %s.event_ids WHERE occurred_at >= $1 AND occurred_at < $2`, s.Schema()), month, end)
		if err != nil {
			return fmt.Errorf("event ids: %w", err)
		}
		d.IDs = tag.RowsAffected()
		if tag, err = tx.Exec(ctx, fmt.Sprintf(
			`DELETE FROM %s.events_default WHERE occurred_at >= $1 AND occurred_at < $2`, s.Schema()), month, end); err != nil {
			return fmt.Errorf("default partition: %w", err)
		}
		d.Events = tag.RowsAffected()
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.Schema()+"."+name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			table := pgx.Identifier{s.Schema(), name}.Sanitize()
			var n int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.events DETACH PARTITION %s", s.Schema(), table)); err != nil {
				return fmt.Errorf("detach %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+table); err != nil {
				return fmt.Errorf("drop %s: %w", name, err)
			}
			d.Table, d.Events = name, d.Events+n
		}
		if d.Table == "" && d.Events == 0 && d.IDs == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %s.retention_drops (stream, month, partitions, events, event_ids, dropped_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (stream, month) DO UPDATE SET partitions = retention_drops.partitions + excluded.partitions,
				events = retention_drops.events + excluded.events, event_ids = retention_drops.event_ids + excluded.event_ids,
				dropped_at = excluded.dropped_at`, s.Schema()),
			s.Stream(), month, boolCount(d.Table != ""), d.Events, d.IDs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retention %s: drop %s: %w", s.Schema(), month.Format("2006-01"), err)
	}
	if d.Table == "" && d.Events == 0 && d.IDs == 0 {
		return nil, nil
	}
	return d, nil
}

func boolCount(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// DatabaseNow is the read model's Postgres clock: the time retention
// trusts, since the host running auditd cannot skew it on its own.
func DatabaseNow(ctx context.Context, s Store) (time.Time, error) {
	var now time.Time
	if err := s.Pool().QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return now, fmt.Errorf("database clock %s: %w", s.Schema(), err)
	}
	return now.UTC(), nil
}

// Totals is what retention has removed from a read model so far.
type Totals struct {
	Partitions, Events int64
	// Through is the end of the latest month removed: events that occurred
	// before it are gone on purpose. Zero when nothing was removed.
	Through time.Time
}

// ReadTotals sums retention_drops.
func ReadTotals(ctx context.Context, s Store) (Totals, error) {
	var t Totals
	var latest *time.Time
	err := s.Pool().QueryRow(ctx, fmt.Sprintf(
		`SELECT coalesce(sum(partitions), 0)::bigint, coalesce(sum(events), 0)::bigint, max(month)
		 FROM %s.retention_drops WHERE stream = $1`, s.Schema()), s.Stream()).Scan(&t.Partitions, &t.Events, &latest)
	if err != nil {
		return t, fmt.Errorf("retention totals %s: %w", s.Schema(), err)
	}
	if latest != nil {
		t.Through = latest.UTC().AddDate(0, 1, 0)
	}
	return t, nil
}

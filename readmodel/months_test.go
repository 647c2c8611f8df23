package readmodel_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditlog/auditlog/internal/projtest"
)

// An event far ahead lands in events_default; creating its month later
// moves it into the month's partition in the same transaction instead of
// failing, and the event still reads.
func TestEnsurePartitionsTakesItsMonthOutOfTheDefault(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	pool := store.Pool()
	now := time.Now().UTC()
	ahead := time.Date(now.Year(), now.Month(), 10, 12, 0, 0, 0, time.UTC).AddDate(0, 5, 0) // month M+5
	last := projtest.PublishAt(t, js, "acme", ahead)
	projtest.RunUntil(t, newProjector(100), last)
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events_default`); n != 1 {
		t.Fatalf("events_default holds %d rows, want the M+5 event", n)
	}
	if err := store.EnsureMonths(ctx, 6); err != nil {
		t.Fatalf("creating M+5 with its row in the default: %v", err)
	}
	part := "audit_us.events_" + ahead.Format("2006_01")
	if n := projtest.Count(t, pool, `SELECT count(*) FROM `+part); n != 1 {
		t.Fatalf("%s holds %d rows, want 1", part, n)
	}
	if n := projtest.Count(t, pool, `SELECT count(*) FROM audit_us.events_default`); n != 0 {
		t.Fatalf("events_default still holds %d rows", n)
	}
	if ids := projtest.FirstPage(t, store, "acme"); len(ids) != 1 {
		t.Fatalf("acme reads %v", ids)
	}
}

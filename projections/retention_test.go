package projections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/natsx"
)

// Messages the stream no longer holds cannot be compared: their rows are
// neither gaps nor unexplained.
func TestReconcileIgnoresRowsWhoseMessagesAgedOut(t *testing.T) {
	js, store, newProjector := projtest.NewStore(t)
	ctx := context.Background()
	projtest.RunUntil(t, newProjector(100), projtest.Publish(t, js, "acme", 20))
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
	projtest.RunUntil(t, newProjector(100), projtest.Publish(t, js, "acme", 10))

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
	if n := projtest.Count(t, store.Pool(), `SELECT count(*) FROM audit_us.events`); n != 30 {
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
	if err := store.EnsurePartitions(ctx, 6); err != nil {
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

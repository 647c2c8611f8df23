package integrity_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/integrity"
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

	rep, err := integrity.Reconcile(ctx, store, js, false)
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
	v, err := integrity.VerifyTree(ctx, store, js, "acme", 0, -1, noCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Expired != 20 || v.Checked != 30 || v.TreeSize != 30 {
		t.Fatalf("verify after messages aged out: %+v %+v", v, v.First)
	}
	if _, err := store.Pool().Exec(ctx, `UPDATE audit_us.events SET record = convert_to(replace(convert_from(record, 'UTF8'), 'u3', 'u9'), 'UTF8') WHERE org_id = 'acme' AND leaf_index = 3`); err != nil {
		t.Fatal(err)
	}
	v, err = integrity.VerifyTree(ctx, store, js, "acme", 0, -1, noCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.First == nil || v.First.LeafIndex != 3 || v.First.Field != "record" {
		t.Fatalf("a changed record of an aged-out leaf: %+v %+v", v, v.First)
	}
}

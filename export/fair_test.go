package export_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/internal/synthetic"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
)

// An organization's small export, started while another organization's big
// one runs on an instance that encodes one export at a time, finishes while
// the big one is still running: it waits for a turn of the big one, not for
// all of it.
func TestSmallExportDoesNotWaitForAnotherOrgsBigOne(t *testing.T) {
	const bigRows, smallRows = 100_000, 300
	ctx := context.Background()
	store := readmodel.NewEventStore(testenv.Pool(t), "audit_us", natsx.AuditStream(domain.RegionUS), zerolog.Nop())
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := synthetic.Seed(ctx, store, bigRows, 1, "big-"); err != nil {
		t.Fatal(err)
	}
	if err := synthetic.Seed(ctx, store, smallRows, 1, "small-"); err != nil {
		t.Fatal(err)
	}
	js := testenv.JetStream(t, natsx.Streams{})
	jobs, err := export.NewJobs(ctx, js, enabledInUS{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done })
	w := &export.Worker{
		JS: js, Jobs: jobs, Source: store, Concurrency: 1, AckWait: 30 * time.Second, ProgressEvery: time.Millisecond,
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	}
	go func() {
		defer close(done)
		if err := w.Run(wctx); err != nil {
			t.Error(err)
		}
	}()
	start := func(org string) *domain.ExportJob {
		p := &domain.Principal{Kind: domain.PrincipalUser, Subject: "u", OrgID: org, Roles: []string{domain.RoleAdmin}}
		job, err := jobs.Start(ctx, p, domain.Filter{}, domain.ExportCSV)
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	get := func(j *domain.ExportJob) *domain.ExportJob {
		x, err := jobs.Get(ctx, j.OrgID, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	poll := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never %s", what)
			}
		}
	}

	big := start("big-000")
	poll("the big export wrote rows", func() bool { return get(big).RowCount > 0 })
	small := start("small-000")
	poll("the small export finished", func() bool { return get(small).Status.Final() })
	smallDone, bigThen := get(small), get(big)
	if smallDone.Status != domain.ExportSucceeded || smallDone.RowCount != smallRows {
		t.Fatalf("small export: %+v", smallDone)
	}
	if bigThen.Status.Final() {
		t.Fatalf("the big export (%s, %d rows) finished before the small one: the small one waited for all of it", bigThen.Status, bigThen.RowCount)
	}
	poll("the big export finished", func() bool { return get(big).Status.Final() })
	bigDone := get(big)
	if bigDone.Status != domain.ExportSucceeded || bigDone.RowCount != bigRows {
		t.Fatalf("big export: %+v", bigDone)
	}
	if !smallDone.FinishedAt.Before(*bigDone.FinishedAt) {
		t.Fatalf("small finished at %v, big at %v", smallDone.FinishedAt, bigDone.FinishedAt)
	}
	t.Logf("small export (%d rows) ran %v and finished when the big one had written %d of %d rows; the big one ran %v",
		smallRows, smallDone.FinishedAt.Sub(*smallDone.StartedAt), bigThen.RowCount, bigRows, bigDone.FinishedAt.Sub(*bigDone.StartedAt))
}

package export_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// Each active export holds a slot of export.<org> in the leases bucket: a
// refused start leaves no job behind, a job that becomes final gives its
// slot back, and slots left behind (their job final or gone, the instance
// that should have freed them dead) are reclaimed by the next start.
func TestExportSlotsFollowTheJobs(t *testing.T) {
	ctx := context.Background()
	js := testenv.JetStream(t, natsx.Streams{})
	jobs, err := export.NewJobs(ctx, js, enabledInUS{}, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	slots, err := js.KeyValue(ctx, natsx.LeasesBucket)
	if err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{Kind: domain.PrincipalUser, Subject: "u", OrgID: "acme", Roles: []string{domain.RoleAdmin}}
	start := func() (*domain.ExportJob, error) { return jobs.Start(ctx, p, domain.Filter{}, domain.ExportCSV) }
	held := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for n := range export.MaxActivePerOrg {
			key := "export.acme." + string(rune('0'+n))
			if e, err := slots.Get(ctx, key); err == nil {
				out[key] = string(e.Value())
			}
		}
		return out
	}

	var started []*domain.ExportJob
	for range export.MaxActivePerOrg {
		j, err := start()
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, j)
	}
	if _, err := start(); !isCode(err, domain.CodeRateLimited) {
		t.Fatalf("a start beyond the limit: %v", err)
	}
	listed, err := jobs.List(ctx, "acme", export.MaxListed)
	if err != nil || len(listed) != export.MaxActivePerOrg {
		t.Fatalf("a refused start left a job behind: %d listed, %v", len(listed), err)
	}

	// Cancelling frees the slot at once.
	if _, err := jobs.Cancel(ctx, "acme", started[0].ID); err != nil {
		t.Fatal(err)
	}
	for key, id := range held() {
		if id == started[0].ID {
			t.Fatalf("the cancelled job still holds %s", key)
		}
	}
	third, err := start()
	if err != nil {
		t.Fatalf("after a cancel: %v", err)
	}

	// An instance that died between finishing a job and freeing its slot,
	// and a job that expired: their slots are reclaimed when needed.
	jobKV, err := js.KeyValue(ctx, natsx.ExportJobsBucket)
	if err != nil {
		t.Fatal(err)
	}
	finished := *started[1]
	finished.Status = domain.ExportSucceeded
	data, _ := json.Marshal(&finished)
	if _, err := jobKV.Put(ctx, natsx.ExportJobKey("acme", finished.ID), data); err != nil {
		t.Fatal(err)
	}
	if err := jobKV.Purge(ctx, natsx.ExportJobKey("acme", third.ID)); err != nil {
		t.Fatal(err)
	}
	if n := len(held()); n != export.MaxActivePerOrg {
		t.Fatalf("%d slots held before the reclaim", n)
	}
	for i := range 2 {
		if _, err := start(); err != nil {
			t.Fatalf("start %d over stale slots: %v", i, err)
		}
	}
	if _, err := start(); !isCode(err, domain.CodeRateLimited) {
		t.Fatalf("a start beyond the limit after reclaiming: %v", err)
	}
	for key, id := range held() {
		if id == finished.ID || id == third.ID {
			t.Fatalf("%s still holds the stale job %s", key, id)
		}
	}
	// Another organization has slots of its own.
	other := &domain.Principal{Kind: domain.PrincipalUser, Subject: "u", OrgID: "globex", Roles: []string{domain.RoleAdmin}}
	if _, err := jobs.Start(ctx, other, domain.Filter{}, domain.ExportCSV); err != nil {
		t.Fatalf("another organization: %v", err)
	}
}

func isCode(err error, code domain.Code) bool { return err != nil && domain.CodeOf(err) == code }

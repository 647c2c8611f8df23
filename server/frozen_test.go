package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// held is what env projects of region US now.
func held(env *testenv.Env) []int {
	for _, h := range env.Projections() {
		if h.Stream == natsx.AuditStream(domain.RegionUS) {
			return h.Held
		}
	}
	return nil
}

// An instance whose path to Postgres goes silent (a frozen network, a
// SIGSTOPped process: Postgres sees the same silence) loses its slots
// within the holder timeout: Postgres ends its sessions, and the healthy
// instance projects everything meanwhile, staying ready itself. When the
// path comes back the frozen instance writes nothing stale, rejoins, and
// every event is in the read model once.
func TestFrozenInstanceLosesItsSlots(t *testing.T) {
	const holderTimeout = 2 * time.Second
	x := testenv.StartExternalNATS(t)
	healthy := testenv.Start(t, x.Use, func(c *server.Config) {
		c.ProjectionPartitions = 4
		c.RebalanceEvery = 100 * time.Millisecond
		c.HolderTimeout = holderTimeout
	})
	db, err := url.Parse(healthy.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, db.Host)
	cfg := healthy.Config
	cfg.Addr = "127.0.0.1:0"
	proxied := *db
	proxied.Host = proxy.Addr()
	cfg.DatabaseURL = proxied.String()
	frozen := testenv.StartConfig(t, cfg)

	orgs := make([]string, 8)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("frozen%d", i)
		healthy.EnableOrg(t, orgs[i], domain.RegionUS)
	}
	waitFor(t, 30*time.Second, "two partitions each", func() bool {
		return len(held(healthy)) == 2 && len(held(frozen)) == 2
	})
	record := func(env *testenv.Env, round int) {
		var events []map[string]any
		for _, org := range orgs {
			for i := range 5 {
				events = append(events, userCreated(org, time.Now().Add(-time.Minute), fmt.Sprintf("r%d-%d@example.com", round, i)))
			}
		}
		mustRecord(t, env, events)
	}
	record(healthy, 0)
	healthy.WaitProjected(t)

	proxy.Freeze()
	frozenAt := time.Now()
	record(healthy, 1)
	took := waitFor(t, 10*holderTimeout, "the healthy instance holds all four partitions", func() bool {
		return slices.Equal(held(healthy), []int{0, 1, 2, 3})
	})
	healthy.WaitProjected(t)
	t.Logf("path frozen: the healthy instance held every partition after %v and had projected everything after %v (holder timeout %v)",
		took.Round(time.Millisecond), time.Since(frozenAt).Round(time.Millisecond), holderTimeout)
	if err := healthy.Ready(context.Background()); err != nil {
		t.Errorf("the healthy instance is not ready while the other is frozen: %v", err)
	}

	proxy.Thaw()
	waitFor(t, 30*time.Second, "the thawed instance takes its share again", func() bool {
		return len(held(frozen)) == 2 && len(held(healthy)) == 2
	})
	record(frozen, 2)
	healthy.WaitProjected(t)
	for _, org := range orgs {
		c := list(t, healthy, org, map[string]any{"types": []string{"USER_CREATED"}}, 50, "")
		if c.TotalCount != 15 {
			t.Errorf("%s: %d events, want 15", org, c.TotalCount)
		}
	}
	if code, _ := getReadyz(t, frozen); code != http.StatusOK {
		t.Errorf("the thawed instance's /readyz: %d", code)
	}
}

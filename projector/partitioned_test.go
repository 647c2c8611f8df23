package projector_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditlog/auditlog/integrity"
	"github.com/auditlog/auditlog/projector"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
)

// instance is one auditd's partitioned projection of region US, with a
// membership of its own, as a process would have.
type instance struct {
	pp      *projector.Partitioned
	members *projector.Members
	cancel  context.CancelFunc
	done    chan error
}

func startInstance(t *testing.T, js jetstream.JetStream, store *readmodel.EventStore, layout *atomic.Int64) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := projector.Join(ctx, store.Pool(), 0)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{members: m, cancel: cancel, done: make(chan error, 1)}
	in.pp = &projector.Partitioned{
		JS: js, Store: store, Region: domain.RegionUS, Log: zerolog.Nop(),
		Layout:    func(context.Context) (int, error) { return int(layout.Load()), nil },
		Census:    m.Census,
		Tick:      50 * time.Millisecond,
		IdleCheck: 100 * time.Millisecond,
	}
	go func() { in.done <- in.pp.Run(ctx) }()
	t.Cleanup(in.stop)
	return in
}

// stop ends the instance as a process that exits does.
func (in *instance) stop() {
	in.cancel()
	<-in.done
	in.members.Leave(context.Background())
	in.done <- nil // a second stop returns at once
}

// waitFor polls cond until it holds or 30 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func waitPosition(t *testing.T, store *readmodel.EventStore, seq uint64) {
	t.Helper()
	start := time.Now()
	for {
		cp, err := store.Position(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cp >= seq {
			return
		}
		if time.Since(start) > 30*time.Second {
			// Which slots are behind, and under which fencing epoch.
			rows, err := store.Pool().Query(context.Background(), `SELECT stream, seq, epoch FROM audit_us.checkpoint WHERE seq < $1 ORDER BY stream`, int64(seq))
			if err == nil {
				for rows.Next() {
					var (
						key       string
						at, epoch int64
					)
					if rows.Scan(&key, &at, &epoch) == nil {
						t.Logf("checkpoint %s at %d, epoch %d", key, at, epoch)
					}
				}
				rows.Close()
			}
			t.Fatalf("after 30s: checkpoint at %d, want %d", cp, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishOrgs appends n events of each org and returns the stream's last
// sequence.
func publishOrgs(t *testing.T, js jetstream.JetStream, orgs []string, n int) uint64 {
	t.Helper()
	var last uint64
	for _, org := range orgs {
		last = projtest.Publish(t, js, org, n)
	}
	return last
}

// assertComplete checks that the read model holds every event once, that
// reconcile finds no gap, and that each org's tree is the one its stream
// order gives.
func assertComplete(t *testing.T, js jetstream.JetStream, store *readmodel.EventStore, orgs []string, perOrg int) {
	t.Helper()
	ctx := context.Background()
	var rows, ids int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (org_id, id)) FROM audit_us.events`).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if want := len(orgs) * perOrg; rows != want || ids != want {
		t.Fatalf("%d rows, %d distinct, want %d", rows, ids, want)
	}
	rep, err := integrity.Reconcile(ctx, store, js, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 0 || len(rep.Extra) != 0 {
		t.Fatalf("reconcile: %d gaps, %d extra", len(rep.Gaps), len(rep.Extra))
	}
	for _, org := range orgs[:3] {
		v, err := integrity.VerifyTree(ctx, store, js, org, 0, -1, func(string) (int64, tlog.Hash, error) {
			return 0, tlog.Hash{}, fmt.Errorf("no checkpoints in this test")
		})
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK || v.TreeSize != int64(perOrg) {
			t.Fatalf("tree of %s: ok %v, size %d, want %d: %+v", org, v.OK, v.TreeSize, perOrg, v)
		}
	}
}

func orgNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("org-%02d", i)
	}
	return out
}

// Two instances share the partitions about evenly; when one stops, the
// other takes its partitions over and nothing is lost or applied twice.
func TestPartitionsAreSharedAndTakenOver(t *testing.T) {
	js, store, _ := projtest.NewStore(t)
	var layout atomic.Int64
	layout.Store(4)
	orgs := orgNames(24)
	a := startInstance(t, js, store, &layout)
	b := startInstance(t, js, store, &layout)
	waitFor(t, "two partitions each", func() bool {
		return len(a.pp.Status().Held) == 2 && len(b.pp.Status().Held) == 2
	})
	last := publishOrgs(t, js, orgs, 30)
	waitPosition(t, store, last)
	held := append(a.pp.Status().Held, b.pp.Status().Held...)
	if seen := map[int]bool{}; len(held) != 4 || func() bool {
		for _, i := range held {
			seen[i] = true
		}
		return len(seen) != 4
	}() {
		t.Fatalf("partitions held %v, want 0 to 3 once each", held)
	}

	// b stops while events arrive; a takes its partitions.
	var wg sync.WaitGroup
	wg.Go(func() { publishOrgs(t, js, orgs, 20) })
	b.stop()
	took := waitFor(t, "a holds all four", func() bool { return len(a.pp.Status().Held) == 4 })
	t.Logf("partitions taken over %v after the other instance stopped", took)
	wg.Wait()
	s, err := js.Stream(context.Background(), natsx.AuditStream(domain.RegionUS))
	if err != nil {
		t.Fatal(err)
	}
	waitPosition(t, store, s.CachedInfo().State.LastSeq)
	assertComplete(t, js, store, orgs, 50)
	if a.pp.Takeovers() < 4 {
		t.Fatalf("a started %d partitions, want at least 4", a.pp.Takeovers())
	}
}

// Changing the number of partitions while events arrive keeps every event
// once and each org's order: the new partitions start from their slots'
// checkpoints, and slot locks keep old and new from overlapping.
func TestRepartitionKeepsEveryEvent(t *testing.T) {
	js, store, _ := projtest.NewStore(t)
	var layout atomic.Int64
	layout.Store(2)
	orgs := orgNames(16)
	a := startInstance(t, js, store, &layout)
	startInstance(t, js, store, &layout)
	last := publishOrgs(t, js, orgs, 25)
	waitPosition(t, store, last)
	for _, n := range []int64{4, 1, 8} {
		var wg sync.WaitGroup
		wg.Go(func() { publishOrgs(t, js, orgs, 25) })
		layout.Store(n)
		wg.Wait()
		waitFor(t, fmt.Sprintf("layout of %d", n), func() bool { return a.pp.Status().Partitions == int(n) })
		s, err := js.Stream(context.Background(), natsx.AuditStream(domain.RegionUS))
		if err != nil {
			t.Fatal(err)
		}
		waitPosition(t, store, s.CachedInfo().State.LastSeq)
	}
	assertComplete(t, js, store, orgs, 100)
}

// An upgraded deployment's stream holds events stored before slots, some
// not yet projected by the old single projector. They are all applied
// before any partition runs, so each org's tree keeps stream order.
func TestEventsStoredBeforeSlotsComeFirst(t *testing.T) {
	ctx := context.Background()
	js, store, single := projtest.NewStore(t)
	stream, err := js.Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.SubjectTransform = nil
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	orgs := orgNames(6)
	applied := publishOrgs(t, js, orgs, 10)
	projtest.RunUntil(t, single(100), applied) // the old projector applied these
	publishOrgs(t, js, orgs, 10)               // and never these
	if err := (natsx.Streams{DuplicateWindow: time.Minute}).Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	last := publishOrgs(t, js, orgs, 10)
	m, err := stream.GetMsg(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Subject, "audit.us.org-05.PLATFORM.USER_LOGOUT.") || !natsx.IsAuditSubjectOf(m.Subject, &domain.Event{OrgID: "org-05", Source: "PLATFORM", Type: "USER_LOGOUT"}) {
		t.Fatalf("after the upgrade events are stored on %q", m.Subject)
	}
	var layout atomic.Int64
	layout.Store(4)
	startInstance(t, js, store, &layout)
	waitPosition(t, store, last)
	assertComplete(t, js, store, orgs, 30)
}

// Two instances that both prefer the same partitions (their censuses
// disagree, as they may for a moment while one joins or dies) still leave
// no partition without a holder: one found held elsewhere is passed over
// for a free one.
func TestNoPartitionIsLeftWithoutAHolder(t *testing.T) {
	js, store, _ := projtest.NewStore(t)
	var layout atomic.Int64
	layout.Store(4)
	var ins []*projector.Partitioned
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		pp := &projector.Partitioned{
			JS: js, Store: store, Region: domain.RegionUS, Log: zerolog.Nop(),
			Layout:    func(context.Context) (int, error) { return int(layout.Load()), nil },
			Census:    func(context.Context) (int, int, error) { return 0, 2, nil }, // both rank 0
			Tick:      50 * time.Millisecond,
			IdleCheck: 100 * time.Millisecond,
		}
		done := make(chan error, 1)
		go func() { done <- pp.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		ins = append(ins, pp)
	}
	waitFor(t, "all four partitions held", func() bool {
		return len(ins[0].Status().Held)+len(ins[1].Status().Held) == 4
	})
	last := publishOrgs(t, js, orgNames(12), 10)
	waitPosition(t, store, last)
}

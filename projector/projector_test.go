package projector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projector"
	"github.com/auditlog/auditlog/readmodel"
)

// crashAfterCommit commits its first batches, then fails the next one after
// committing it: the projector exits between commit and ack, as on a crash.
type crashAfterCommit struct {
	projector.Sink
	batches int
}

var errCrash = errors.New("crash after commit, before ack")

func (c *crashAfterCommit) Apply(ctx context.Context, conn *pgx.Conn, batch []projector.Message) error {
	if err := c.Sink.Apply(ctx, conn, batch); err != nil {
		return err
	}
	c.batches--
	if c.batches <= 0 {
		return errCrash
	}
	return nil
}

func TestProjectorResumesExactlyAfterCrash(t *testing.T) {
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	pool := testenv.Pool(t)
	ctx := context.Background()
	store := readmodel.NewEventStore(pool, "audit_us", natsx.AuditStream(domain.RegionUS), zerolog.Nop())
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	last := projtest.Publish(t, js, "acme", n)
	newProjector := func(sink projector.Sink) *projector.Projector {
		return &projector.Projector{JS: js, Pool: pool, Stream: natsx.AuditStream(domain.RegionUS),
			Durable: "pg-events", Sink: sink, Log: zerolog.Nop(), Batch: 500}
	}

	// First run: two batches commit, the second is never acked.
	err := newProjector(&crashAfterCommit{Sink: store, batches: 2}).Run(ctx)
	if !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	cp, _ := store.Position(ctx)
	if cp == 0 || cp >= last {
		t.Fatalf("checkpoint after crash %d, want between 0 and %d", cp, last)
	}

	// Second run: cancelled mid-stream, whatever it had fetched but not
	// committed stays unacked.
	runCtx, cancel := context.WithCancel(ctx)
	p := newProjector(store)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	for p.Applied() <= cp {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("cancelled run: %v", err)
	}

	// Third run completes the read model exactly.
	runCtx, cancel = context.WithCancel(ctx)
	defer cancel()
	p = newProjector(store)
	go func() { done <- p.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for p.Applied() < last {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d of %d", p.Applied(), last)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	var rows, ids int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM audit_us.events`).Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != n || ids != n {
		t.Fatalf("read model has %d rows, %d ids; want %d", rows, ids, n)
	}
}

func TestProjectorsAreExclusive(t *testing.T) {
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	pool := testenv.Pool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := readmodel.NewEventStore(pool, "audit_us", natsx.AuditStream(domain.RegionUS), zerolog.Nop())
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	last := projtest.Publish(t, js, "acme", 2000)
	// Two instances race for the same read model; one holds the lock.
	done := make(chan error, 2)
	ps := make([]*projector.Projector, 2)
	for i := range ps {
		ps[i] = &projector.Projector{JS: js, Pool: pool, Stream: natsx.AuditStream(domain.RegionUS),
			Durable: "pg-events", Sink: store, Log: zerolog.Nop(), Batch: 100}
		go func() { done <- ps[i].Run(ctx) }()
	}
	deadline := time.Now().Add(20 * time.Second)
	for max(ps[0].Applied(), ps[1].Applied()) < last {
		if time.Now().After(deadline) {
			t.Fatal("not caught up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ps[0].Applied() != 0 && ps[1].Applied() != 0 {
		t.Fatalf("both projectors applied: %d and %d", ps[0].Applied(), ps[1].Applied())
	}
	cancel()
	<-done
	<-done
	var rows int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_us.events`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2000 {
		t.Fatalf("%d rows", rows)
	}
}

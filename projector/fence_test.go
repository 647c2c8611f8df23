package projector_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/auditlog/auditlog/internal/projtest"
	"github.com/auditlog/auditlog/projector"
)

// A partition's projector that lost its slots without knowing (frozen,
// cut off) and resumes writes nothing: once another projector has fenced
// the slots, each of the first one's writes (a batch, an idle advance, a
// quarantine) is refused with ErrFenced and rolled back whole.
func TestStaleHolderWritesNothing(t *testing.T) {
	_, store, _ := projtest.NewStore(t)
	ctx := context.Background()
	session := func() *pgx.Conn {
		pc, err := store.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conn := pc.Hijack()
		t.Cleanup(func() { conn.Close(ctx) })
		return conn
	}
	slots := projector.Slots(0, 1)
	stale, fresh := store.Partition(slots), store.Partition(slots)
	staleConn, freshConn := session(), session()

	batch := func(first uint64, n int) []projector.Message {
		out := make([]projector.Message, n)
		for i := range out {
			subject, data := projtest.RawEvent(fmt.Sprintf("org%d", i%3), nil)
			out[i] = projector.Message{Seq: first + uint64(i), Subject: subject, Data: data}
		}
		return out
	}
	if err := stale.Apply(ctx, staleConn, batch(1, 5)); !errors.Is(err, projector.ErrFenced) {
		t.Fatalf("a write before fencing: %v, want ErrFenced", err)
	}
	if err := stale.Fence(ctx, staleConn); err != nil {
		t.Fatal(err)
	}
	if err := stale.Apply(ctx, staleConn, batch(1, 5)); err != nil {
		t.Fatalf("the holder's own write: %v", err)
	}
	// Another projector takes the slots.
	if err := fresh.Fence(ctx, freshConn); err != nil {
		t.Fatal(err)
	}
	rows := projtest.Count(t, store.Pool(), `SELECT count(*) FROM audit_us.events`)
	before, err := store.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}

	writes := map[string]func() error{
		"batch":      func() error { return stale.Apply(ctx, staleConn, batch(6, 20)) },
		"advance":    func() error { return stale.Advance(ctx, staleConn, 500) },
		"quarantine": func() error { return stale.Quarantine(ctx, staleConn, batch(26, 1)[0], errors.New("test")) },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, projector.ErrFenced) {
			t.Errorf("stale %s: %v, want ErrFenced", name, err)
		}
	}
	if got := projtest.Count(t, store.Pool(), `SELECT count(*) FROM audit_us.events`); got != rows {
		t.Errorf("stale writes stored %d rows", got-rows)
	}
	if got := projtest.Count(t, store.Pool(), `SELECT count(*) FROM audit_us.quarantine`); got != 0 {
		t.Errorf("stale quarantine stored %d messages", got)
	}
	if after, err := store.Position(ctx); err != nil || after != before {
		t.Errorf("checkpoint moved from %d to %d (%v)", before, after, err)
	}
	// The new holder writes on.
	if err := fresh.Apply(ctx, freshConn, batch(6, 20)); err != nil {
		t.Fatalf("the new holder: %v", err)
	}
	if got := projtest.Count(t, store.Pool(), `SELECT count(*) FROM audit_us.events`); got != rows+20 {
		t.Errorf("new holder stored %d rows, want 20", got-rows)
	}
	if cp, _ := store.Position(ctx); cp != 25 {
		t.Errorf("checkpoint %d after the new holder's batch, want 25", cp)
	}
}

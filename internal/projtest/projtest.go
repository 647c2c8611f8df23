// Package projtest holds what the tests of the projector, the read models,
// integrity and retention share: a migrated region read model on real
// dependencies (internal/testenv), publishing events, running a projector
// until it holds a sequence.
package projtest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/auditlog/auditlog/projector"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
)

// RunUntil runs p until its read model holds seq, then stops it.
func RunUntil(t *testing.T, p *projector.Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for p.Applied() < seq {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("projector stopped at %d of %d: %v", p.Applied(), seq, err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("projector at %d of %d after 30s", p.Applied(), seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("projector: %v", err)
	}
}

func NewStore(t *testing.T) (jetstream.JetStream, *readmodel.EventStore, func(batch int) *projector.Projector) {
	t.Helper()
	js := testenv.JetStream(t, natsx.Streams{DuplicateWindow: time.Minute})
	pool := testenv.Pool(t)
	store := readmodel.NewEventStore(pool, "audit_us", natsx.AuditStream(domain.RegionUS), zerolog.Nop())
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return js, store, func(batch int) *projector.Projector {
		return &projector.Projector{JS: js, Pool: pool, Stream: natsx.AuditStream(domain.RegionUS),
			Durable: "pg-events", Sink: store, Log: zerolog.Nop(), Batch: batch}
	}
}

func RawEvent(org string, mutate func(map[string]any)) (string, []byte) {
	e := map[string]any{
		"id": ulid.Make().String(), "orgId": org, "source": "PLATFORM", "type": "USER_LOGOUT",
		"occurredAt": time.Now().Add(-time.Minute).UTC(), "recordedAt": time.Now().UTC(),
		"actor":   map[string]any{"kind": "USER", "id": "u1", "name": "Ann"},
		"details": map[string]any{"userId": "u1"},
	}
	if mutate != nil {
		mutate(e)
	}
	data, _ := json.Marshal(e)
	return "audit.us." + org + ".PLATFORM.USER_LOGOUT", data
}

// Publish appends n valid events of org to region US and returns the
// stream's last sequence.
func Publish(t *testing.T, js jetstream.JetStream, org string, n int) uint64 {
	t.Helper()
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UTC()
	for i := range n {
		e := domain.Event{
			ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: "USER_LOGOUT",
			OccurredAt: base.Add(time.Duration(i) * time.Millisecond), RecordedAt: base,
			Actor:   domain.Actor{Kind: domain.ActorUser, ID: fmt.Sprintf("u%d", i%7)},
			Details: json.RawMessage(fmt.Sprintf(`{"userId":"u%d"}`, i)),
		}
		data, _ := json.Marshal(e)
		if _, err := js.PublishAsync(natsx.AuditSubject(domain.RegionUS, &e), data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("publish did not complete")
	}
	s, err := js.Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

func MustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// PublishAt appends an event of org that occurred at at and returns the
// stream sequence it was stored at.
func PublishAt(t *testing.T, js jetstream.JetStream, org string, at time.Time) uint64 {
	t.Helper()
	e := domain.Event{
		ID: ulid.Make().String(), OrgID: org, Source: domain.SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: at, RecordedAt: time.Now().UTC(),
		Actor:   domain.Actor{Kind: domain.ActorUser, ID: "u1"},
		Details: json.RawMessage(`{"userId":"u1"}`),
	}
	data, _ := json.Marshal(e)
	ack, err := js.Publish(context.Background(), natsx.AuditSubject(domain.RegionUS, &e), data, jetstream.WithMsgID(org+":"+e.ID))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func Count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func FirstPage(t *testing.T, s *readmodel.EventStore, org string) []string {
	t.Helper()
	page, err := s.List(context.Background(), org, domain.Filter{}, readmodel.PageRequest{First: 20})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(page.Events))
	for i, e := range page.Events {
		out[i] = e.ID
	}
	return out
}

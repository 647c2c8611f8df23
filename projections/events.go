package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
)

// EventStore is the read model of one region: the sink its projector writes
// and the tables its queries read.
type EventStore struct {
	pool   *pgxpool.Pool
	schema string
	stream string
	log    zerolog.Logger
}

// NewEventStore returns the store of the events of stream, kept in schema.
func NewEventStore(pool *pgxpool.Pool, schema, stream string, log zerolog.Logger) *EventStore {
	return &EventStore{pool: pool, schema: schema, stream: stream, log: log}
}

// Pool is the database the store lives in.
func (s *EventStore) Pool() *pgxpool.Pool { return s.pool }

// Schema is the Postgres schema of the store.
func (s *EventStore) Schema() string { return s.schema }

// Migrate applies the region migrations to the store's schema.
func (s *EventStore) Migrate(ctx context.Context) error {
	return Migrate(ctx, s.pool, s.schema, "region")
}

// EventColumns are the columns of an event row, in the order EventRow gives them.
var EventColumns = []string{
	"org_id", "id", "occurred_at", "recorded_at", "source", "type", "category",
	"actor_kind", "actor_id", "actor_name", "actor_email",
	"target_kind", "target_id", "target_name",
	"ip_address", "user_agent", "request_id", "details", "search_text", "stream_seq",
}

// Prepare creates the connection's staging table and reads the checkpoint.
func (s *EventStore) Prepare(ctx context.Context, conn *pgx.Conn) (uint64, error) {
	_, err := conn.Exec(ctx, fmt.Sprintf(
		`CREATE TEMP TABLE IF NOT EXISTS staging_events (LIKE %s.events) ON COMMIT DELETE ROWS`, s.schema))
	if err != nil {
		return 0, err
	}
	return readCheckpoint(ctx, conn, s.schema, s.stream)
}

// Checkpoint is the last stream sequence the read model holds.
func (s *EventStore) Checkpoint(ctx context.Context) (uint64, error) {
	return readCheckpoint(ctx, s.pool, s.schema, s.stream)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readCheckpoint(ctx context.Context, q querier, schema, stream string) (uint64, error) {
	var seq int64
	err := q.QueryRow(ctx, fmt.Sprintf(`SELECT seq FROM %s.checkpoint WHERE stream = $1`, schema), stream).Scan(&seq)
	if err == pgx.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	return uint64(seq), nil
}

// Apply copies batch into staging and moves the events whose id the org has
// not seen yet into the partitioned table, with the checkpoint, in one
// transaction.
func (s *EventStore) Apply(ctx context.Context, conn *pgx.Conn, batch []Message) error {
	rows := make([][]any, 0, len(batch))
	seen := make(map[[2]string]bool, len(batch))
	for _, m := range batch {
		var e domain.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			// Ingest validated every event; a message that does not decode
			// was not written by it. Skip it rather than stall the region.
			s.log.Error().Err(err).Uint64("seq", m.Seq).Str("stream", s.stream).Msg("undecodable event skipped")
			continue
		}
		key := [2]string{e.OrgID, e.ID}
		if seen[key] {
			continue
		}
		seen[key] = true
		rows = append(rows, EventRow(&e, m.Seq))
	}
	last := int64(batch[len(batch)-1].Seq)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"staging_events"}, EventColumns, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		sql := fmt.Sprintf(`
			WITH fresh AS (
				INSERT INTO %[1]s.event_ids (org_id, id, occurred_at)
				SELECT org_id, id, occurred_at FROM staging_events
				ON CONFLICT DO NOTHING
				RETURNING org_id, id
			)
			INSERT INTO %[1]s.events SELECT s.* FROM staging_events s JOIN fresh USING (org_id, id)`, s.schema)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %s.checkpoint (stream, seq) VALUES ($1, $2)
			ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq`, s.schema), s.stream, last)
		return err
	})
}

// EventRow is e as a row of EventColumns, stored at stream sequence seq.
func EventRow(e *domain.Event, seq uint64) []any {
	var tk, ti, tn *string
	if e.Target != nil {
		tk, ti, tn = &e.Target.Kind, &e.Target.ID, nullable(e.Target.Name)
	}
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage("{}")
	}
	return []any{
		e.OrgID, e.ID, e.OccurredAt, e.RecordedAt, string(e.Source), string(e.Type), string(e.Category()),
		string(e.Actor.Kind), e.Actor.ID, nullable(e.Actor.Name), nullable(e.Actor.Email),
		tk, ti, tn,
		nullable(e.IPAddress), nullable(e.UserAgent), nullable(e.RequestID),
		string(details), domain.SearchText(e), int64(seq),
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// EnsurePartitions creates the monthly partitions up to months ahead, so
// inserts never fall into the default partition for current data.
func (s *EventStore) EnsurePartitions(ctx context.Context, monthsAhead int) error {
	_, err := s.pool.Exec(ctx, fmt.Sprintf(
		`SELECT %s.ensure_partitions(now() - interval '1 month', now() + make_interval(months => $1))`, s.schema), monthsAhead)
	if err != nil {
		return fmt.Errorf("ensure partitions %s: %w", s.schema, err)
	}
	return nil
}

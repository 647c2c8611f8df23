package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/auditlog/auditlog/projector"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/eventjson"
	"github.com/auditlog/auditlog/natsx"
)

// A projector's position in its stream (the last sequence the read model
// holds everything of) is kept in table checkpoint, named before signed
// checkpoints existed; in Go it is a position, and "checkpoint" means only
// a signed tree head (integrity).

// EventStore is the read model of one region: the sink its projector writes
// and the tables its queries read.
type EventStore struct {
	pool   *pgxpool.Pool
	schema string
	stream string
	log    zerolog.Logger
	// keys name the checkpoints the store's projector writes: the stream's
	// own (events stored before slots), or, for a partition, its slots'.
	keys []string
	// fenced says the store is a partition's, whose projector fences its
	// slots (Fence) and writes under epoch.
	fenced bool
	epoch  int64
	// withoutIntegrity says rows are written without their records and
	// leaves (WithoutIntegrity); only the benchmark sets it.
	withoutIntegrity bool
}

// NewEventStore returns the store of the events of stream, kept in schema.
func NewEventStore(pool *pgxpool.Pool, schema, stream string, log zerolog.Logger) *EventStore {
	return &EventStore{pool: pool, schema: schema, stream: stream, log: log, keys: []string{stream}}
}

// Partition is the sink of the projector of slots: the same read model,
// with a checkpoint per slot. Per slot, so that a deployment may change how
// many partitions share the slots: a partition starts after the least of
// its slots' checkpoints, and what it finds applied already is applied
// again as a no-op (Apply is idempotent).
func (s *EventStore) Partition(slots []int) *EventStore {
	p := *s
	p.fenced, p.epoch = true, 0
	p.keys = make([]string, len(slots))
	for i, slot := range slots {
		p.keys[i] = slotKey(s.stream, slot)
	}
	return &p
}

// WithoutIntegrity is the same read model writing event rows without
// their records and without growing the organizations' trees: no leaf
// index, no tiles, no tree sizes. It exists only so the benchmark can
// measure what integrity costs (server.Config.BenchWithoutIntegrity); a
// read model written this way can prove nothing.
func (s *EventStore) WithoutIntegrity() *EventStore {
	p := *s
	p.withoutIntegrity = true
	return &p
}

// SlotSink is Partition as the projector runtime asks for it.
func (s *EventStore) SlotSink(slots []int) projector.Sink { return s.Partition(slots) }

// slotKey names the checkpoint of slot of stream.
func slotKey(stream string, slot int) string { return fmt.Sprintf("%s.%d", stream, slot) }

// Pool is the database the store lives in.
func (s *EventStore) Pool() *pgxpool.Pool { return s.pool }

// Stream is the name of the stream the store projects.
func (s *EventStore) Stream() string { return s.stream }

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
	"leaf_index", "record",
}

// Prepare reads the checkpoint: the least of the store's checkpoints.
func (s *EventStore) Prepare(ctx context.Context, conn *pgx.Conn) (uint64, error) {
	return leastPosition(ctx, conn, s.schema, s.keys)
}

// Position is the last stream sequence up to which the read model holds
// every event: the least of its slots' checkpoints once slots are
// projected, and until then the checkpoint of the events stored before
// slots (slots are projected only once those are all applied). One query
// reads both, since health, metrics and the benchmark's lag sampler ask
// often.
func (s *EventStore) Position(ctx context.Context) (uint64, error) {
	keys := make([]string, natsx.Slots)
	for i := range keys {
		keys[i] = slotKey(s.stream, i)
	}
	var slotSeq, streamSeq int64
	var slotsWritten, streamWritten int
	err := s.pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT coalesce(min(seq) FILTER (WHERE stream = ANY($1)), 0), count(*) FILTER (WHERE stream = ANY($1)),
			coalesce(min(seq) FILTER (WHERE stream = $2), 0), count(*) FILTER (WHERE stream = $2)
		FROM %s.checkpoint WHERE stream = ANY($1) OR stream = $2`, s.schema), keys, s.stream).
		Scan(&slotSeq, &slotsWritten, &streamSeq, &streamWritten)
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	switch {
	case slotsWritten == 0 && streamWritten == 0, slotsWritten > 0 && slotsWritten < len(keys):
		return 0, nil
	case slotsWritten == 0:
		return uint64(streamSeq), nil
	}
	return uint64(slotSeq), nil
}

// querier is what reads need of a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readPosition(ctx context.Context, q querier, schema, stream string) (uint64, error) {
	return leastPosition(ctx, q, schema, []string{stream})
}

// leastPosition is the least of the checkpoints keys, 0 if one was never
// written.
func leastPosition(ctx context.Context, q querier, schema string, keys []string) (uint64, error) {
	var (
		seq     int64
		written int
	)
	err := q.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(min(seq), 0), count(*) FROM %s.checkpoint WHERE stream = ANY($1)`, schema), keys).
		Scan(&seq, &written)
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	if written < len(keys) {
		return 0, nil
	}
	return uint64(seq), nil
}

// Fence takes a new epoch for a partition's slots, now that its projector
// holds their locks, and writes it on their checkpoints: from then on only
// this store's writes move them, and a store that fenced before (a holder
// that lost its locks without knowing) gets projector.ErrFenced and writes nothing.
// The store of a whole stream does not fence.
func (s *EventStore) Fence(ctx context.Context, conn *pgx.Conn) error {
	if !s.fenced {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var epoch int64
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT nextval('%s.fence_epoch')`, s.schema)).Scan(&epoch); err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		// A slot never written gets checkpoint 0, which reads as "nothing
		// applied", as its absence did.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %[1]s.checkpoint (stream, seq, epoch) SELECT unnest($1::text[]), 0, $2
			ON CONFLICT (stream) DO UPDATE SET epoch = excluded.epoch`, s.schema), s.keys, epoch); err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		s.epoch = epoch
		return nil
	})
}

// writePositions moves the store's checkpoints to seq in tx, under its
// epoch when it is a partition's.
func (s *EventStore) writePositions(ctx context.Context, tx pgx.Tx, seq int64) error {
	if s.fenced && s.epoch == 0 {
		return fmt.Errorf("%w: the partition's store was never fenced", projector.ErrFenced)
	}
	return writePositions(ctx, tx, s.schema, s.keys, seq, s.epoch)
}

// Advance moves the store's checkpoints to seq, which its projector found
// it had every event of up to.
func (s *EventStore) Advance(ctx context.Context, conn *pgx.Conn, seq uint64) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return s.writePositions(ctx, tx, int64(seq))
	})
}

// Decode turns each message into its row, so the projector can do this
// while the previous batch is being written.
func (s *EventStore) Decode(batch []projector.Message) {
	for i := range batch {
		batch[i].Decoded = s.decode(&batch[i])
	}
}

// decode returns m's row, or why m can never be one: ingest wrote only
// valid events to subjects naming their own org, source and type, so any
// other message was not written by it (an older build, a bug, a hand-made
// publish) and must not reach the read model as if it were an event.
func (s *EventStore) decode(m *projector.Message) any {
	// What Postgres would refuse (a NUL, a lone surrogate) is found here,
	// so the message is quarantined at once rather than by splitting its
	// batch until the insert that fails is alone.
	if err := domain.CheckJSONText("record", m.Data); err != nil {
		return fmt.Errorf("not storable: %w", err)
	}
	var e domain.Event
	if err := eventjson.Decode(m.Data, &e); err != nil { // json.Unmarshal's answer, without reflection
		return fmt.Errorf("not an event: %w", err)
	}
	if !natsx.IsAuditSubjectOf(m.Subject, &e) {
		return fmt.Errorf("event of org %q, source %q, type %q stored on subject %q", e.OrgID, e.Source, e.Type, m.Subject)
	}
	if !domain.ValidOrgID(e.OrgID) || e.ID == "" || len(e.ID) > domain.MaxIDLen {
		return fmt.Errorf("event has no valid org or id")
	}
	row := EventRow(&e, m.Seq)
	if !s.withoutIntegrity {
		row[colRecord] = m.Data
	}
	return row
}

// Apply inserts the events of batch whose id the org has not seen yet, with
// the checkpoint, in one transaction. A message that is not an event is
// reported as a *projector.PoisonError before anything is written.
func (s *EventStore) Apply(ctx context.Context, conn *pgx.Conn, batch []projector.Message) error {
	rows := make([][]any, 0, len(batch))
	seen := make(map[[2]string]bool, len(batch))
	for i := range batch {
		d := batch[i].Decoded
		if d == nil {
			d = s.decode(&batch[i])
		}
		if err, ok := d.(error); ok {
			return &projector.PoisonError{Seq: batch[i].Seq, Err: err}
		}
		row := d.([]any)
		key := [2]string{row[0].(string), row[1].(string)}
		if seen[key] {
			continue
		}
		seen[key] = true
		rows = append(rows, row)
	}
	last := int64(batch[len(batch)-1].Seq)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Only new events are leaves, in stream order.
		leaves := s.appendLeaves
		if s.withoutIntegrity {
			leaves = noLeaves
		}
		if _, err := s.insert(ctx, tx, rows, leaves); err != nil {
			return err
		}
		return s.writePositions(ctx, tx, last)
	})
}

// insert is the one way event rows enter the read model, for the
// projector and for reconciliation alike: it claims the rows' ids, gives
// the rows whose ids were free their leaves with leaves, and copies them
// into the events table. It returns the rows written.
func (s *EventStore) insert(ctx context.Context, tx pgx.Tx, rows [][]any, leaves func(context.Context, pgx.Tx, [][]any) error) ([][]any, error) {
	fresh, err := s.claimIDs(ctx, tx, rows)
	if err != nil {
		return nil, err
	}
	if err := leaves(ctx, tx, fresh); err != nil {
		return nil, err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.schema, "events"}, EventColumns, pgx.CopyFromRows(fresh)); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	return fresh, nil
}

// noLeaves gives rows no leaves: the store is WithoutIntegrity.
func noLeaves(context.Context, pgx.Tx, [][]any) error { return nil }

// Quarantine keeps m in the quarantine table and moves the checkpoint to it.
func (s *EventStore) Quarantine(ctx context.Context, conn *pgx.Conn, m projector.Message, reason error) error {
	if s.fenced && s.epoch == 0 {
		return fmt.Errorf("%w: the partition's store was never fenced", projector.ErrFenced)
	}
	return quarantine(ctx, conn, s.schema, s.stream, s.keys, s.epoch, m, reason)
}

// Quarantined lists the messages of the store's stream that were set aside.
func (s *EventStore) Quarantined(ctx context.Context) ([]Quarantined, error) {
	return quarantinedIn(ctx, s.pool, s.schema, s.stream)
}

// QuarantineCount counts the messages of the store's stream set aside.
func (s *EventStore) QuarantineCount(ctx context.Context) (int64, error) {
	return countQuarantined(ctx, s.pool, s.schema, s.stream)
}

// claimIDs records the ids of rows in event_ids and returns the rows whose
// id the org had not seen: only those are new events. One statement claims
// the whole batch, and the new rows are then copied straight into the
// partitioned table.
func (s *EventStore) claimIDs(ctx context.Context, tx pgx.Tx, rows [][]any) ([][]any, error) {
	orgs, ids, ats := make([]string, len(rows)), make([]string, len(rows)), make([]time.Time, len(rows))
	for i, r := range rows {
		orgs[i], ids[i], ats[i] = r[0].(string), r[1].(string), r[2].(time.Time)
	}
	res, err := tx.Query(ctx, fmt.Sprintf(`
		INSERT INTO %s.event_ids (org_id, id, occurred_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
		ON CONFLICT DO NOTHING
		RETURNING org_id, id`, s.schema), orgs, ids, ats)
	if err != nil {
		return nil, fmt.Errorf("claim ids: %w", err)
	}
	claimed := make(map[[2]string]bool, len(rows))
	var key [2]string
	_, err = pgx.ForEachRow(res, []any{&key[0], &key[1]}, func() error {
		claimed[key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim ids: %w", err)
	}
	if len(claimed) == len(rows) {
		return rows, nil
	}
	fresh := rows[:0:0]
	for _, r := range rows {
		if claimed[[2]string{r[0].(string), r[1].(string)}] {
			fresh = append(fresh, r)
		}
	}
	return fresh, nil
}

// EventRow is e as a row of EventColumns, stored at stream sequence seq,
// with no leaf index or record yet: the projector sets them.
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
		string(details), eventjson.SearchText(e), int64(seq),
		nil, nil,
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// EnsureMonths creates the monthly partitions up to months ahead, so
// inserts never fall into the default partition for current data.
func (s *EventStore) EnsureMonths(ctx context.Context, monthsAhead int) error {
	// Instances starting together would race to create the same month's
	// table; the transaction lock makes them take turns.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "partitions:"+s.schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(
			`SELECT %s.ensure_partitions(now() - interval '1 month', now() + make_interval(months => $1))`, s.schema), monthsAhead)
		return err
	})
	if err != nil {
		return fmt.Errorf("ensure partitions %s: %w", s.schema, err)
	}
	return nil
}

// WithPool is the same read model reached through pool, so that work which
// holds connections long (integrity checks) runs on connections the
// tenants' queries never wait for.
func (s *EventStore) WithPool(pool *pgxpool.Pool) *EventStore {
	p := *s
	p.pool = pool
	return &p
}

// OrgPosition is the stream position up to which the read model holds
// every event of org: its slot's checkpoint once slots are projected, else
// the read model's checkpoint.
func (s *EventStore) OrgPosition(ctx context.Context, org string) (uint64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT seq FROM %s.checkpoint WHERE stream = $1`, s.schema),
		slotKey(s.stream, natsx.SlotOf(org))).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.Position(ctx)
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	return uint64(seq), nil
}

// Restore writes rows, decoded from messages the read model lost, as the
// projector would have, leaving the checkpoint alone: an id claimed for a
// row that is gone is claimed again, and a row that is gone was a leaf, so
// it gets its leaf index back. It returns how many rows it wrote.
func (s *EventStore) Restore(ctx context.Context, rows [][]any) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		orgs, ids := make([]string, len(rows)), make([]string, len(rows))
		for i, r := range rows {
			orgs[i], ids[i] = r[0].(string), r[1].(string)
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`
			DELETE FROM %[1]s.event_ids i USING unnest($1::text[], $2::text[]) AS u(org, id)
			WHERE i.org_id = u.org AND i.id = u.id AND NOT EXISTS (
				SELECT 1 FROM %[1]s.events e
				WHERE e.org_id = i.org_id AND e.occurred_at = i.occurred_at AND e.id = i.id)`, s.schema), orgs, ids)
		if err != nil {
			return fmt.Errorf("release lost claims: %w", err)
		}
		fresh, err := s.insert(ctx, tx, rows, s.restoreLeaves)
		n = len(fresh)
		return err
	})
	return n, err
}

// DecodeRow is m as a row of EventColumns with its record, or why m can
// never be one.
func (s *EventStore) DecodeRow(m projector.Message) ([]any, error) {
	d := s.decode(&m)
	if err, ok := d.(error); ok {
		return nil, err
	}
	return d.([]any), nil
}

// RowRecord is the record (the message data, the leaf) of a row DecodeRow gave.
func RowRecord(row []any) []byte {
	r, _ := row[colRecord].([]byte)
	return r
}

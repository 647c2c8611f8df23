// Package streamstore keeps log streams in PostgreSQL: each stream's
// configuration (secrets only sealed, by secretbox, in their own column),
// its filter, its state and its progress through its region's stream. The
// table is made by the control migrations (004_log_streams.sql) in a schema
// of its own, logstreams, which a rebuild of the read models keeps: unlike
// the read models, streams cannot be rebuilt from the log.
package streamstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditlog/auditlog/domain"
)

// Status is a stream's state.
type Status string

// Statuses.
const (
	// Active streams deliver.
	Active Status = "ACTIVE"
	// Error streams deliver, but their last attempt failed; they retry.
	Error Status = "ERROR"
	// Paused streams do not deliver, and keep their position.
	Paused Status = "PAUSED"
	// Disabled streams do not deliver until an admin changes them.
	Disabled Status = "DISABLED"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s == Active || s == Error || s == Paused || s == Disabled }

// Delivering reports whether a stream in status s should have a deliverer.
func (s Status) Delivering() bool { return s == Active || s == Error }

// Who paused a stream.
const (
	PausedByAdmin  = "ADMIN"
	PausedByAuditd = "AUDITD"
)

// Filter narrows what a stream delivers: events of any of Types (all when
// empty), from any of Sources (all when empty), matching Query (query
// language; all when empty).
type Filter struct {
	Types   []domain.EventType `json:"types,omitempty"`
	Sources []domain.Source    `json:"sources,omitempty"`
	Query   string             `json:"query,omitempty"`
}

// Domain is f as a domain.Filter, whose Matches and query.FromFilter the
// deliverer applies as live subscriptions do.
func (f Filter) Domain() domain.Filter {
	return domain.Filter{Types: f.Types, Sources: f.Sources, Query: f.Query}
}

// Stream is one log stream as stored.
type Stream struct {
	ID, OrgID string
	Region    domain.Region
	Name      string
	Kind      string
	// Config is the destination's configuration as JSON, its secrets
	// replaced by [redacted] (logstream.Secret marshals so).
	Config json.RawMessage
	// Sealed is the destination's secrets, sealed by secretbox for this
	// org and stream.
	Sealed  []byte
	Filter  Filter
	StartAt time.Time
	Status  Status
	// PausedBy is PausedByAdmin or PausedByAuditd while Paused.
	PausedBy string
	Version  int64
	// Position is the last sequence of the region's stream delivered or
	// passed over (filtered out); 0 before the first.
	Position        uint64
	LastEventID     string
	LastDeliveredAt *time.Time
	// Lag is how many of the org's events waited after Position when the
	// deliverer last looked; nil before it has.
	Lag          *int64
	Delivered    int64
	Failed       int64
	LastError    string
	LastErrorAt  *time.Time
	FailingSince *time.Time
	// Skipped counts the messages of the region's stream that retention
	// removed before the stream delivered or passed over them, found
	// between its position and the oldest message kept. Every org of the
	// region shares the stream, so at most Skipped were this org's; 0
	// means nothing was lost. LastSkippedAt is when a gap was last found,
	// SkippedBefore the recorded time of the oldest event kept then.
	Skipped       int64
	LastSkippedAt *time.Time
	SkippedBefore *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Store reads and writes log streams. Its methods are safe for concurrent
// use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns the store on pool, whose database has been migrated
// (readmodel's control migrations).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// MaxPerOrg bounds how many streams an organization may have: each holds a
// consumer and a goroutine while it delivers.
const MaxPerOrg = 10

const columns = `id, org_id, region, name, kind, config, sealed_secrets, filter, start_at, status,
	coalesce(paused_by, ''), version, position, coalesce(last_event_id, ''), last_delivered_at, lag, delivered, failed,
	coalesce(last_error, ''), last_error_at, failing_since, skipped, last_skipped_at, skipped_before, created_at, updated_at`

func scan(row pgx.Row) (*Stream, error) {
	var (
		s      Stream
		filter []byte
		pos    int64
	)
	err := row.Scan(&s.ID, &s.OrgID, &s.Region, &s.Name, &s.Kind, &s.Config, &s.Sealed, &filter, &s.StartAt, &s.Status,
		&s.PausedBy, &s.Version, &pos, &s.LastEventID, &s.LastDeliveredAt, &s.Lag, &s.Delivered, &s.Failed,
		&s.LastError, &s.LastErrorAt, &s.FailingSince, &s.Skipped, &s.LastSkippedAt, &s.SkippedBefore, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return nil, err
	}
	s.Position = uint64(pos)
	if err := json.Unmarshal(filter, &s.Filter); err != nil {
		return nil, fmt.Errorf("stream %s: filter: %w", s.ID, err)
	}
	return &s, nil
}

func collect(rows pgx.Rows) ([]*Stream, error) {
	defer rows.Close()
	var out []*Stream
	for rows.Next() {
		s, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// notFound is the answer for a stream of another org or none.
func notFound() error { return domain.Errorf(domain.CodeNotFound, "id", "no such log stream") }

// Create inserts s, refusing a name the org already uses (CONFLICT) and an
// org at MaxPerOrg streams (RATE_LIMITED).
func (st *Store) Create(ctx context.Context, s *Stream) error {
	filter, err := json.Marshal(s.Filter)
	if err != nil {
		return err
	}
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create log stream: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// Serialize creations per org, so two at once cannot pass the count.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('logstreams.' || $1))`, s.OrgID); err != nil {
		return fmt.Errorf("create log stream: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM logstreams.streams WHERE org_id = $1`, s.OrgID).Scan(&n); err != nil {
		return fmt.Errorf("create log stream: %w", err)
	}
	if n >= MaxPerOrg {
		return domain.Errorf(domain.CodeRateLimited, "", "an organization has at most %d log streams", MaxPerOrg)
	}
	_, err = tx.Exec(ctx, `INSERT INTO logstreams.streams (id, org_id, region, name, kind, config, sealed_secrets, filter,
		start_at, status, version, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,1,$11,$11)`,
		s.ID, s.OrgID, string(s.Region), s.Name, s.Kind, []byte(s.Config), s.Sealed, filter, s.StartAt, string(s.Status), s.CreatedAt)
	if isUnique(err) {
		return domain.Errorf(domain.CodeConflict, "name", "the organization already has a log stream named %q", s.Name)
	}
	if err != nil {
		return fmt.Errorf("create log stream: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create log stream: %w", err)
	}
	s.Version, s.UpdatedAt = 1, s.CreatedAt
	return nil
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Get returns org's stream id, or NOT_FOUND.
func (st *Store) Get(ctx context.Context, org, id string) (*Stream, error) {
	s, err := scan(st.pool.QueryRow(ctx, `SELECT `+columns+` FROM logstreams.streams WHERE org_id = $1 AND id = $2`, org, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("read log stream: %w", err)
	}
	return s, nil
}

// List returns org's streams, oldest first.
func (st *Store) List(ctx context.Context, org string) ([]*Stream, error) {
	rows, err := st.pool.Query(ctx, `SELECT `+columns+` FROM logstreams.streams WHERE org_id = $1 ORDER BY created_at, id`, org)
	if err != nil {
		return nil, fmt.Errorf("list log streams: %w", err)
	}
	return collect(rows)
}

// Ref names a stream at a version: what the engine needs to share
// streams among instances, before a deliverer claims one and reads it
// whole.
type Ref struct {
	ID, OrgID string
	Version   int64
	// Holder is the token of the deliverer that claimed the stream last,
	// empty if none holds it.
	Holder string
}

// Delivering returns every stream of every org that should be delivering
// (ACTIVE or ERROR), for the engine to share among instances: only ids,
// orgs and versions, since every instance lists every stream every few
// seconds and starts a deliverer for few of them.
func (st *Store) Delivering(ctx context.Context) ([]Ref, error) {
	rows, err := st.pool.Query(ctx, `SELECT id, org_id, version, coalesce(holder, '') FROM logstreams.streams WHERE status IN ('ACTIVE', 'ERROR') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list delivering log streams: %w", err)
	}
	refs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Ref])
	if err != nil {
		return nil, fmt.Errorf("list delivering log streams: %w", err)
	}
	return refs, nil
}

// All returns every stream, for metrics.
func (st *Store) All(ctx context.Context) ([]*Stream, error) {
	rows, err := st.pool.Query(ctx, `SELECT `+columns+` FROM logstreams.streams ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list log streams: %w", err)
	}
	return collect(rows)
}

// Change is what Update changes; nil fields stay.
type Change struct {
	Name   *string
	Config json.RawMessage
	Sealed []byte
	Filter *Filter
	// Enabled false disables the stream, true makes a disabled stream
	// active again.
	Enabled *bool
}

// Update applies c to org's stream id and bumps its version, so its
// deliverer starts again with the new configuration. A stream that was in
// ERROR becomes ACTIVE, its error cleared: the change may have fixed it.
func (st *Store) Update(ctx context.Context, org, id string, c Change, now time.Time) (*Stream, error) {
	var filter []byte
	if c.Filter != nil {
		var err error
		if filter, err = json.Marshal(c.Filter); err != nil {
			return nil, err
		}
	}
	var status *string
	if c.Enabled != nil {
		v := string(Disabled)
		if *c.Enabled {
			v = string(Active)
		}
		status = &v
	}
	s, err := scan(st.pool.QueryRow(ctx, `UPDATE logstreams.streams SET
		name = coalesce($3, name), config = coalesce($4, config), sealed_secrets = coalesce($5, sealed_secrets),
		filter = coalesce($6, filter),
		status = CASE WHEN $7::text = 'DISABLED' THEN 'DISABLED'
			WHEN $7::text = 'ACTIVE' AND status = 'DISABLED' THEN 'ACTIVE'
			WHEN status = 'ERROR' THEN 'ACTIVE' ELSE status END,
		paused_by = CASE WHEN $7::text = 'DISABLED' THEN NULL ELSE paused_by END,
		last_error = CASE WHEN status = 'ERROR' THEN NULL ELSE last_error END,
		failing_since = NULL,
		version = version + 1, updated_at = $8
		WHERE org_id = $1 AND id = $2 RETURNING `+columns,
		org, id, c.Name, nullJSON(c.Config), c.Sealed, nullJSON(filter), status, now))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, notFound()
	case isUnique(err):
		return nil, domain.Errorf(domain.CodeConflict, "name", "the organization already has a log stream named %q", *c.Name)
	case err != nil:
		return nil, fmt.Errorf("update log stream: %w", err)
	}
	return s, nil
}

func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// Pause pauses org's stream id, by an admin or by auditd, and says whether
// it was not paused already. A disabled stream stays disabled (CONFLICT).
func (st *Store) Pause(ctx context.Context, org, id, by string, now time.Time) (*Stream, bool, error) {
	cur, err := st.Get(ctx, org, id)
	if err != nil {
		return nil, false, err
	}
	switch cur.Status {
	case Paused:
		return cur, false, nil
	case Disabled:
		return nil, false, domain.Errorf(domain.CodeConflict, "id", "the log stream is disabled; enable it first")
	}
	s, err := scan(st.pool.QueryRow(ctx, `UPDATE logstreams.streams SET status = 'PAUSED', paused_by = $3,
		version = version + 1, updated_at = $4
		WHERE org_id = $1 AND id = $2 AND status IN ('ACTIVE', 'ERROR') RETURNING `+columns, org, id, by, now))
	if errors.Is(err, pgx.ErrNoRows) {
		// Changed in between: answer what it is now.
		s, err = st.Get(ctx, org, id)
		return s, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("pause log stream: %w", err)
	}
	return s, true, nil
}

// Resume makes a paused stream of org active again, from where it stopped,
// and says whether it was paused.
func (st *Store) Resume(ctx context.Context, org, id string, now time.Time) (*Stream, bool, error) {
	s, err := scan(st.pool.QueryRow(ctx, `UPDATE logstreams.streams SET status = 'ACTIVE', paused_by = NULL,
		failing_since = NULL, version = version + 1, updated_at = $3
		WHERE org_id = $1 AND id = $2 AND status = 'PAUSED' RETURNING `+columns, org, id, now))
	if errors.Is(err, pgx.ErrNoRows) {
		s, err = st.Get(ctx, org, id)
		if err != nil {
			return nil, false, err
		}
		if s.Status == Disabled {
			return nil, false, domain.Errorf(domain.CodeConflict, "id", "the log stream is disabled; enable it with updateLogStream")
		}
		return s, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("resume log stream: %w", err)
	}
	return s, true, nil
}

// Delete removes org's stream id and returns it as it was.
func (st *Store) Delete(ctx context.Context, org, id string) (*Stream, error) {
	s, err := scan(st.pool.QueryRow(ctx, `DELETE FROM logstreams.streams WHERE org_id = $1 AND id = $2 RETURNING `+columns, org, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("delete log stream: %w", err)
	}
	return s, nil
}

// Progress is what a deliverer reports after a send.
type Progress struct {
	// Position is the new position; it only ever grows.
	Position uint64
	// Delivered is how many events this send delivered; LastEventID the
	// last of them ("" if none).
	Delivered   int
	LastEventID string
	// Lag is how many events the consumer says wait after Position.
	Lag uint64
	// Err is the send's failure, shown to admins; "" for a success.
	Err string
}

// Claim makes holder the stream's deliverer in place of from (the holder
// the engine listed, empty for none) or of nobody (from released it since),
// and returns the stream as it is now: its position is the one to start
// from, whatever a previous holder stored since the stream was listed.
// Only one of several instances claiming at once wins. It is NOT_FOUND if
// the stream is gone, no longer delivering, at another version than
// version, or claimed by someone else since it was listed.
func (st *Store) Claim(ctx context.Context, id string, version int64, from, holder string) (*Stream, error) {
	s, err := scan(st.pool.QueryRow(ctx, `UPDATE logstreams.streams SET holder = $4
		WHERE id = $1 AND version = $2 AND status IN ('ACTIVE', 'ERROR') AND (holder IS NULL OR holder = $3)
		RETURNING `+columns, id, version, from, holder))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("claim log stream: %w", err)
	}
	return s, nil
}

// Release gives up holder's claim on stream id, if it still has it, so
// any instance may claim the stream at once.
func (st *Store) Release(ctx context.Context, id, holder string) error {
	if _, err := st.pool.Exec(ctx, `UPDATE logstreams.streams SET holder = NULL WHERE id = $1 AND holder = $2`, id, holder); err != nil {
		return fmt.Errorf("release log stream: %w", err)
	}
	return nil
}

// Holds reports whether holder is still the stream's deliverer at version:
// a deliverer asks before each send, so one that was frozen and woke up
// after another instance claimed its stream does not send.
func (st *Store) Holds(ctx context.Context, id string, version int64, holder string) (bool, error) {
	var ok bool
	err := st.pool.QueryRow(ctx, `SELECT holder = $3 AND version = $2 AND status IN ('ACTIVE', 'ERROR')
		FROM logstreams.streams WHERE id = $1`, id, version, holder).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("log stream holder: %w", err)
	}
	return ok, nil
}

// Record writes a deliverer's progress on stream id at version: position
// (never backwards), counts, and the state, ACTIVE after a success and
// ERROR after a failure, keeping when the failures began. A deliverer
// that is behind the stream's version (the stream was changed, paused or
// deleted meanwhile) changes nothing but the position and counts, and
// learns so from stale.
func (st *Store) Record(ctx context.Context, id string, version int64, p Progress, now time.Time) (s *Stream, stale bool, err error) {
	failed := 0
	if p.Err != "" {
		failed = 1
	}
	s, err = scan(st.pool.QueryRow(ctx, `UPDATE logstreams.streams SET
		position = greatest(position, $3), lag = $9, delivered = delivered + $4, failed = failed + $5,
		last_event_id = CASE WHEN $6 <> '' THEN $6 ELSE last_event_id END,
		last_delivered_at = CASE WHEN $4 > 0 THEN $7 ELSE last_delivered_at END,
		status = CASE WHEN version <> $2 OR status NOT IN ('ACTIVE', 'ERROR') THEN status
			WHEN $8 = '' THEN 'ACTIVE' ELSE 'ERROR' END,
		last_error = CASE WHEN version <> $2 THEN last_error WHEN $8 = '' THEN NULL ELSE $8 END,
		last_error_at = CASE WHEN version = $2 AND $8 <> '' THEN $7 ELSE last_error_at END,
		failing_since = CASE WHEN version <> $2 THEN failing_since WHEN $8 = '' THEN NULL
			ELSE coalesce(failing_since, $7) END
		WHERE id = $1 RETURNING `+columns,
		id, version, int64(p.Position), p.Delivered, failed, p.LastEventID, now, p.Err, int64(p.Lag)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("record log stream progress: %w", err)
	}
	return s, s.Version != version || !s.Status.Delivering(), nil
}

// Gone is a gap a deliverer found in the region's stream: the messages
// after From (the last sequence it read) through Through (the one before
// the oldest the stream still holds) are gone, removed by retention; the
// oldest kept was recorded at Before.
type Gone struct {
	From, Through uint64
	Before        time.Time
}

// Skip counts gap g against stream id and returns how many messages it
// added to the count: those after the stream's position, after what an
// earlier Skip counted and after g.From, so a gap found again, by this
// deliverer or the next, counts once. It changes neither the position nor
// the state.
func (st *Store) Skip(ctx context.Context, id string, g Gone, now time.Time) (int64, error) {
	var added int64
	err := st.pool.QueryRow(ctx, `WITH cur AS (
			SELECT id, greatest(position, skipped_through, $2) AS done FROM logstreams.streams WHERE id = $1 FOR UPDATE)
		UPDATE logstreams.streams s SET
			skipped = s.skipped + greatest($3 - cur.done, 0),
			skipped_through = greatest(s.skipped_through, $3),
			last_skipped_at = CASE WHEN $3 > cur.done THEN $4 ELSE s.last_skipped_at END,
			skipped_before = CASE WHEN $3 > cur.done THEN $5 ELSE s.skipped_before END
		FROM cur WHERE s.id = cur.id
		RETURNING greatest($3 - cur.done, 0)`, id, int64(g.From), int64(g.Through), now, g.Before).Scan(&added)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("record skipped log stream events: %w", err)
	}
	return added, nil
}

// LeafKey is an event whose leaf index is looked up: its id, and when it
// occurred, which places its row in the read model's primary key
// (org_id, occurred_at, id).
type LeafKey struct {
	ID         string
	OccurredAt time.Time
}

// Leaf lookups read a batch's rows by ranges of the primary key when the
// batch's events occurred close together, as events recorded together
// do: a range of leafSpan or less per query, at most leafRanges queries.
// A batch more spread out (events backdated far apart) is read by id,
// through event_ids, which costs an index probe per event.
const (
	leafSpan   = time.Minute
	leafRanges = 4
)

// LeafIndexes returns the leaf index of each of keys of org that the read
// model in schema (readmodel.RegionSchema) on pool has projected. Events
// not projected yet are absent from the answer.
func LeafIndexes(ctx context.Context, pool *pgxpool.Pool, schema, org string, keys []LeafKey) (map[string]int64, error) {
	out := make(map[string]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	sorted := slices.SortedFunc(slices.Values(keys), func(a, b LeafKey) int { return a.OccurredAt.Compare(b.OccurredAt) })
	var ranges [][]LeafKey
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].OccurredAt.Sub(sorted[i].OccurredAt) <= leafSpan {
			j++
		}
		ranges = append(ranges, sorted[i:j])
		i = j
	}
	table := pgx.Identifier{schema}.Sanitize()
	if len(ranges) > leafRanges {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		return out, readLeaves(ctx, pool, out, fmt.Sprintf(`SELECT e.id, e.leaf_index FROM %[1]s.event_ids i
			JOIN %[1]s.events e ON e.org_id = i.org_id AND e.occurred_at = i.occurred_at AND e.id = i.id
			WHERE i.org_id = $1 AND i.id = ANY($2) AND e.leaf_index IS NOT NULL`, table), org, ids)
	}
	for _, r := range ranges {
		ids := make([]string, len(r))
		for i, k := range r {
			ids[i] = k.ID
		}
		// A microsecond either side: Postgres keeps microseconds.
		from, to := r[0].OccurredAt.Add(-time.Microsecond), r[len(r)-1].OccurredAt.Add(time.Microsecond)
		err := readLeaves(ctx, pool, out, fmt.Sprintf(`SELECT id, leaf_index FROM %s.events
			WHERE org_id = $1 AND occurred_at BETWEEN $3 AND $4 AND id = ANY($2) AND leaf_index IS NOT NULL`, table), org, ids, from, to)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readLeaves adds the (id, leaf index) rows of query to out.
func readLeaves(ctx context.Context, pool *pgxpool.Pool, out map[string]int64, query string, args ...any) error {
	rows, err := pool.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("leaf indexes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			leaf int64
		)
		if err := rows.Scan(&id, &leaf); err != nil {
			return fmt.Errorf("leaf indexes: %w", err)
		}
		out[id] = leaf
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("leaf indexes: %w", err)
	}
	return nil
}

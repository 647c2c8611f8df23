package readmodel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/auditlog/auditlog/domain"
	ql "github.com/auditlog/auditlog/query"
)

// Page limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
	// CountCap bounds totalCount: counting stops there and says so.
	CountCap = 10_000
)

// Cursor is a position in the list order (occurredAt, id). Clients see it
// only encoded; it carries no org, so a cursor from another org's results
// merely positions within the caller's own.
type Cursor struct {
	OccurredAt time.Time
	ID         string
}

// Encode makes c opaque for clients.
func (c Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.OccurredAt.UnixNano(), 10) + ":" + c.ID))
}

// DecodeCursor parses a cursor made by Encode.
func DecodeCursor(s string) (*Cursor, error) {
	bad := domain.BadInput("after", "is not a cursor this API issued")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	ns, id, ok := strings.Cut(string(raw), ":")
	if !ok || !domain.ValidEventID(id) {
		return nil, bad
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return nil, bad
	}
	return &Cursor{OccurredAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// PageRequest selects one page of a list.
type PageRequest struct {
	First     int
	After     *Cursor
	Ascending bool // oldest first; lists are newest first by default
}

// Validate checks the page size against the API's bounds.
func (p PageRequest) Validate() error {
	if p.First < 0 || p.First > MaxPageSize {
		return domain.BadInput("first", "must be between 0 and %d", MaxPageSize)
	}
	return nil
}

// EventPage is one page of events and whether more follow.
type EventPage struct {
	Events      []*domain.Event
	HasNextPage bool
	// Partial is set by a search that stopped at its time budget before it
	// had looked at every event it might match; nil means the page is what
	// an unbounded query would give.
	Partial *Partial
}

// Partial tells how far a bounded search looked, so a client can say
// "searched back to …" and continue from Resume instead of waiting for a
// scan of the whole log.
type Partial struct {
	// SearchedThrough is the occurredAt of the last event looked at: every
	// matching event between the page's start and it is on the page.
	SearchedThrough time.Time
	// Resume continues the search after the last event looked at, with no
	// event skipped or repeated.
	Resume Cursor
}

// List returns a page of org's events matching f, keyset-paginated.
func (s *EventStore) List(ctx context.Context, org string, f domain.Filter, p PageRequest) (*EventPage, error) {
	q, err := s.where(org, f)
	if err != nil {
		return nil, err
	}
	return s.list(ctx, q, p)
}

// History returns a page of the events that targeted resource kind/id.
func (s *EventStore) History(ctx context.Context, org, kind, id string, p PageRequest) (*EventPage, error) {
	return s.list(ctx, s.historyWhere(org, kind, id), p)
}

func (s *EventStore) historyWhere(org, kind, id string) *query {
	q, _ := s.where(org, domain.Filter{}) // no query, no error
	q.add("target_kind = $%d AND target_id = $%d", kind, id)
	return q
}

func (s *EventStore) list(ctx context.Context, q *query, p PageRequest) (*EventPage, error) {
	sql := s.listSQL(q, p)
	rows, err := s.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	events, err := pgx.CollectRows(rows, ScanEvent)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	page := &EventPage{Events: events}
	if len(events) > p.First {
		page.Events, page.HasNextPage = events[:p.First], true
	}
	return page, nil
}

func (s *EventStore) listSQL(q *query, p PageRequest) string {
	order := "DESC"
	if p.Ascending {
		order = "ASC"
	}
	if p.After != nil {
		op := "<"
		if p.Ascending {
			op = ">"
		}
		q.add("(occurred_at, id) "+op+" ($%d, $%d)", p.After.OccurredAt, p.After.ID)
	}
	return fmt.Sprintf("SELECT %s FROM %s.events WHERE %s ORDER BY occurred_at %s, id %s LIMIT %d",
		SelectColumns, s.schema, q.sql(), order, order, p.First+1)
}

// ExplainList returns the plan Postgres chooses for List, for tests and
// operators checking that every filter path uses an index.
func (s *EventStore) ExplainList(ctx context.Context, org string, f domain.Filter, p PageRequest) (string, error) {
	q, err := s.where(org, f)
	if err != nil {
		return "", err
	}
	var plan []byte
	if err := s.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+s.listSQL(q, p), q.args...).Scan(&plan); err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	return string(plan), nil
}

// Count counts org's events matching f up to CountCap; capped reports that
// there are more.
func (s *EventStore) Count(ctx context.Context, org string, f domain.Filter) (n int, capped bool, err error) {
	q, err := s.where(org, f)
	if err != nil {
		return 0, false, err
	}
	return s.count(ctx, q)
}

// CountHistory counts the events that targeted resource kind/id, like Count.
func (s *EventStore) CountHistory(ctx context.Context, org, kind, id string) (n int, capped bool, err error) {
	return s.count(ctx, s.historyWhere(org, kind, id))
}

func (s *EventStore) count(ctx context.Context, q *query) (n int, capped bool, err error) {
	sql := fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s.events WHERE %s LIMIT %d) c", s.schema, q.sql(), CountCap+1)
	if err := s.pool.QueryRow(ctx, sql, q.args...).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("count events: %w", err)
	}
	if n > CountCap {
		return CountCap, true, nil
	}
	return n, false, nil
}

// Get returns org's event id, or nil when the org has no such event.
func (s *EventStore) Get(ctx context.Context, org, id string) (*domain.Event, error) {
	sql := fmt.Sprintf(`SELECT %s FROM %[2]s.events e
		WHERE e.org_id = $1 AND e.id = $2
		  AND e.occurred_at = (SELECT occurred_at FROM %[2]s.event_ids WHERE org_id = $1 AND id = $2)`,
		SelectColumns, s.schema)
	rows, err := s.pool.Query(ctx, sql, org, id)
	if err != nil {
		return nil, fmt.Errorf("get event: %w", err)
	}
	e, err := pgx.CollectOneRow(rows, ScanEvent)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get event: %w", err)
	}
	return e, nil
}

// query accumulates a WHERE clause and its arguments.
type query struct {
	conds []string
	args  []any
}

// add appends a condition whose %d verbs are the positions of args.
func (q *query) add(cond string, args ...any) {
	pos := make([]any, len(args))
	for i := range args {
		pos[i] = len(q.args) + i + 1
	}
	q.conds = append(q.conds, fmt.Sprintf(cond, pos...))
	q.args = append(q.args, args...)
}

// arg appends a bind argument and returns its placeholder.
func (q *query) arg(v any) string { q.args = append(q.args, v); return "$" + strconv.Itoa(len(q.args)) }

func (q *query) sql() string { return strings.Join(q.conds, " AND ") }

// where is the condition of org's events matching f, which package query
// compiles: the typed fields, the search and the query.
func (s *EventStore) where(org string, f domain.Filter) (*query, error) {
	q := &query{}
	q.add("org_id = $%d", org)
	conds, err := ql.Conditions(f, q.arg)
	q.conds = append(q.conds, conds...)
	return q, err
}

const SelectColumns = `id, org_id, source, type, occurred_at, recorded_at,
	actor_kind, actor_id, coalesce(actor_name, ''), coalesce(actor_email, ''),
	target_kind, target_id, coalesce(target_name, ''),
	coalesce(ip_address, ''), coalesce(user_agent, ''), coalesce(request_id, ''), details, stream_seq,
	leaf_index, record`

func ScanEvent(row pgx.CollectableRow) (*domain.Event, error) {
	var (
		e          domain.Event
		tkind, tid *string
		tname      string
		details    []byte
		seq        int64
	)
	err := row.Scan(&e.ID, &e.OrgID, &e.Source, &e.Type, &e.OccurredAt, &e.RecordedAt,
		&e.Actor.Kind, &e.Actor.ID, &e.Actor.Name, &e.Actor.Email,
		&tkind, &tid, &tname,
		&e.IPAddress, &e.UserAgent, &e.RequestID, &details, &seq, &e.LeafIndex, &e.Record)
	if err != nil {
		return nil, err
	}
	if tkind != nil && tid != nil {
		e.Target = &domain.Target{Kind: *tkind, ID: *tid, Name: tname}
	}
	e.Details = json.RawMessage(details)
	e.Seq = uint64(seq)
	e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
	return &e, nil
}

// Export calls fn with every event of org matching f, in list order, from
// one consistent snapshot. total is the number of rows fn will see, known
// before the first call so callers can report progress. Rows stream from
// the server as fn consumes them: memory does not grow with the result.
//
// An export reads only what its file is made of, since reading the rows is
// most of its cost: with records set, each event's ID, LeafIndex and
// Record (a proved file is made from the record); otherwise the event's
// fields without its leaf and record, which are as big as the rest of the
// row.
func (s *EventStore) Export(ctx context.Context, org string, f domain.Filter, records bool, total func(int64), fn func(*domain.Event) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	q, err := s.where(org, f)
	if err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s.events WHERE %s", s.schema, q.sql()), q.args...).Scan(&n); err != nil {
		return fmt.Errorf("export count: %w", err)
	}
	total(n)
	columns, scan := exportFieldColumns, ScanEvent
	if records {
		columns, scan = "id, leaf_index, record", scanRecord
	}
	rows, err := tx.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.events WHERE %s ORDER BY occurred_at DESC, id DESC",
		columns, s.schema, q.sql()), q.args...)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return fmt.Errorf("export scan: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportFieldColumns are SelectColumns with no leaf and no record.
const exportFieldColumns = `id, org_id, source, type, occurred_at, recorded_at,
	actor_kind, actor_id, coalesce(actor_name, ''), coalesce(actor_email, ''),
	target_kind, target_id, coalesce(target_name, ''),
	coalesce(ip_address, ''), coalesce(user_agent, ''), coalesce(request_id, ''), details, stream_seq,
	NULL::bigint, NULL::bytea`

// scanRecord reads an event's id, leaf_index and record.
func scanRecord(row pgx.CollectableRow) (*domain.Event, error) {
	var e domain.Event
	if err := row.Scan(&e.ID, &e.LeafIndex, &e.Record); err != nil {
		return nil, err
	}
	return &e, nil
}

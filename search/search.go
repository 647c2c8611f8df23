// Package search answers the API's event lists and counts within a time
// budget at any organization size. A search that an index serves runs as
// one query, as it always has; one that no selective index serves (free
// text under three characters, negations, wildcards, most details keys)
// walks the organization's events in list order in slices of rows, each
// one index range of the primary key, and stops when its page is full, the
// events run out, or the budget is spent. It then answers with what it
// found, how far back it looked and a cursor that continues from there.
//
// Exports do not come here: they must be complete, so they keep the
// read model's unbounded query.
package search

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/readmodel"
)

// Defaults of Options.
const (
	// DefaultBudget leaves room under the 100 ms a search box should answer
	// in for the round trips and the rendering around the SQL.
	DefaultBudget = 80 * time.Millisecond
	// DefaultFirstSlice is the rows the first slice looks at: about 2 ms of
	// a 2-core machine's scan, small enough that it always fits the budget
	// (it is never cut short, so every search makes progress) and large
	// enough that a frequent term fills its page in one slice.
	DefaultFirstSlice = 4_000
	// maxSlice bounds a slice however fast the earlier ones were, so one
	// misjudged slice cannot run far past the budget.
	maxSlice = 1_000_000
)

// Options tunes a Searcher; zero fields take the defaults.
type Options struct {
	// Budget is the time one list or count may spend searching. It bounds
	// the SQL, not the request: the request's own deadline still applies.
	Budget time.Duration
	// FirstSlice is the number of events the first slice looks at; later
	// slices are sized from how fast the earlier ones went. Tests set it
	// small, with a tiny Budget, to make a search stop after every slice.
	FirstSlice int
}

// Searcher answers lists and counts of events within its budget, and
// everything else (events by id, histories, exports) as the Reader does.
type Searcher struct {
	*readmodel.Reader
	budget     time.Duration
	firstSlice int
}

// New bounds r's lists and counts by opts.
func New(r *readmodel.Reader, opts Options) *Searcher {
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.FirstSlice <= 0 {
		opts.FirstSlice = DefaultFirstSlice
	}
	return &Searcher{Reader: r, budget: opts.Budget, firstSlice: opts.FirstSlice}
}

// List returns a page of org's events matching f, like Reader.List, within
// the budget: a page that stopped early has Partial set, and its
// HasNextPage is true since more may match past where it looked.
func (s *Searcher) List(ctx context.Context, org string, f domain.Filter, p readmodel.PageRequest) (*readmodel.EventPage, error) {
	st, err := s.Store(ctx, org)
	if st == nil {
		return &readmodel.EventPage{}, err
	}
	c, err := compile(st.Schema(), org, f)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(s.budget)
	if c.indexed {
		page, err := s.whole(ctx, st, c, p)
		if !canceled(err) {
			return page, err
		}
	}
	var events []*domain.Event
	need := p.First + 1
	stopped, err := s.walk(ctx, st, c, p.After, p.Ascending, deadline, func(ctx context.Context, tx pgx.Tx, sp span) (bool, error) {
		sql, args := c.sliceRows(sp, p.Ascending, need-len(events))
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return false, err
		}
		found, err := pgx.CollectRows(rows, readmodel.ScanEvent)
		if err != nil {
			return false, err
		}
		events = append(events, found...)
		return len(events) >= need, nil
	})
	if err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	page := &readmodel.EventPage{Events: events}
	if len(events) > p.First {
		page.Events, page.HasNextPage = events[:p.First], true
	}
	if stopped != nil && !page.HasNextPage {
		page.HasNextPage = true
		page.Partial = &readmodel.Partial{SearchedThrough: stopped.OccurredAt, Resume: *stopped}
	}
	return page, nil
}

// Count counts org's events matching f up to readmodel.CountCap within the
// budget. capped reports that n is a lower bound: more than the cap match,
// or the budget ran out with n counted among the newest events.
func (s *Searcher) Count(ctx context.Context, org string, f domain.Filter) (n int, capped bool, err error) {
	st, err := s.Store(ctx, org)
	if st == nil {
		return 0, false, err
	}
	c, err := compile(st.Schema(), org, f)
	if err != nil {
		return 0, false, err
	}
	deadline := time.Now().Add(s.budget)
	if c.indexed {
		n, capped, err := s.countWhole(ctx, st, c)
		if !canceled(err) {
			return n, capped, err
		}
	}
	stopped, err := s.walk(ctx, st, c, nil, false, deadline, func(ctx context.Context, tx pgx.Tx, sp span) (bool, error) {
		sql, args := c.sliceCount(sp, readmodel.CountCap+1-n)
		var got int
		if err := tx.QueryRow(ctx, sql, args...).Scan(&got); err != nil {
			return false, err
		}
		n += got
		return n > readmodel.CountCap, nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("count events: %w", err)
	}
	if n > readmodel.CountCap {
		return readmodel.CountCap, true, nil
	}
	return n, stopped != nil, nil
}

// whole runs the list as one query, as the read model does, but stops it
// at the budget.
func (s *Searcher) whole(ctx context.Context, st *readmodel.EventStore, c *compiled, p readmodel.PageRequest) (*readmodel.EventPage, error) {
	var page *readmodel.EventPage
	err := s.bounded(ctx, st, func(tx pgx.Tx) error {
		sql, args := c.rows(span{after: p.After}, p.Ascending, p.First+1)
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		events, err := pgx.CollectRows(rows, readmodel.ScanEvent)
		if err != nil {
			return err
		}
		page = &readmodel.EventPage{Events: events}
		if len(events) > p.First {
			page.Events, page.HasNextPage = events[:p.First], true
		}
		return nil
	})
	if err != nil && !canceled(err) {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return page, err
}

// countWhole counts as the read model does, but stops at the budget.
func (s *Searcher) countWhole(ctx context.Context, st *readmodel.EventStore, c *compiled) (n int, capped bool, err error) {
	err = s.bounded(ctx, st, func(tx pgx.Tx) error {
		sql, args := c.count(span{}, readmodel.CountCap+1)
		return tx.QueryRow(ctx, sql, args...).Scan(&n)
	})
	if err != nil {
		if canceled(err) {
			return 0, false, err
		}
		return 0, false, fmt.Errorf("count events: %w", err)
	}
	if n > readmodel.CountCap {
		return readmodel.CountCap, true, nil
	}
	return n, false, nil
}

// bounded runs fn in a read-only transaction whose statements time out at
// the budget.
func (s *Searcher) bounded(ctx context.Context, st *readmodel.EventStore, fn func(pgx.Tx) error) error {
	tx, err := st.Pool().BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if err := setTimeout(ctx, tx, s.budget); err != nil {
		return err
	}
	return fn(tx)
}

// span is the events one slice looks at, in list order: those after after
// (from the start when nil) up to and including through (to the end when
// nil).
type span struct {
	after, through *readmodel.Cursor
}

// walk hands visit the org's events after from, in list order, one span at
// a time, until visit reports done, the events run out, or the deadline
// passes. It returns the last event looked at when it stopped for the
// deadline, and nil when it finished. The first span is never cut short,
// so a search always moves forward however small its budget; later spans
// are sized to fit what is left, and a span the statement timeout stops is
// thrown away whole, leaving the previous one as the answer.
func (s *Searcher) walk(ctx context.Context, st *readmodel.EventStore, c *compiled, from *readmodel.Cursor, asc bool, deadline time.Time,
	visit func(context.Context, pgx.Tx, span) (done bool, err error)) (*readmodel.Cursor, error) {
	tx, err := st.Pool().BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	// A slice is a range of the primary key, read alone (sliceRows) and
	// without bitmaps, the only way Postgres reads a GIN index, which
	// would read the org's whole posting lists before the range.
	if _, err := tx.Exec(ctx, "SELECT set_config('enable_bitmapscan', 'off', true)"); err != nil {
		return nil, err
	}
	pos, k := from, s.firstSlice
	for first := true; ; first = false {
		left := time.Until(deadline)
		if !first {
			if left <= 0 {
				return pos, nil
			}
			if err := setTimeout(ctx, tx, left); err != nil {
				return nil, err
			}
		}
		started := time.Now()
		edge, err := c.edge(ctx, tx, pos, asc, k)
		if err == nil && !first {
			// statement_timeout is per statement: give the slice's query
			// only what the edge left of the budget.
			if left = time.Until(deadline); left <= 0 {
				return pos, nil
			}
			err = setTimeout(ctx, tx, left)
		}
		if err == nil {
			var done bool
			done, err = visit(ctx, tx, span{after: pos, through: edge})
			if err == nil && (done || edge == nil) {
				return nil, nil
			}
		}
		if err != nil {
			if !first && canceled(err) {
				return pos, nil
			}
			return nil, err
		}
		pos = edge
		k = nextSlice(k, time.Since(started), time.Until(deadline))
	}
}

// nextSlice sizes the next slice to take about half the time left at the
// rate the last one went, growing at most fourfold a step.
func nextSlice(k int, took, left time.Duration) int {
	if took <= 0 {
		return min(4*k, maxSlice)
	}
	fit := int(float64(k) * float64(left) / float64(took) / 2)
	return max(1_000, min(fit, 4*k, maxSlice))
}

func setTimeout(ctx context.Context, tx pgx.Tx, d time.Duration) error {
	ms := max(1, d.Milliseconds())
	_, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(ms, 10))
	return err
}

// canceled reports a statement stopped by statement_timeout (57014).
func canceled(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "57014"
}

// compiled is a filter rendered once as SQL over one region's events.
type compiled struct {
	schema  string
	conds   []string // the org, the filter, the query
	args    []any
	bounds  []string // the org and the filter's time bounds alone
	bargs   []any    // the arguments of bounds
	indexed bool
	// A slice's query reads the span by the primary key alone (the org
	// and the time bounds, sbounds) and applies the filter (sconds) to
	// what that read returns; sargs are the arguments of both.
	sbounds, sconds []string
	sargs           []any
}

func compile(schema, org string, f domain.Filter) (*compiled, error) {
	c := &compiled{schema: schema}
	arg := func(v any) string { c.args = append(c.args, v); return "$" + strconv.Itoa(len(c.args)) }
	barg := func(v any) string { c.bargs = append(c.bargs, v); return "$" + strconv.Itoa(len(c.bargs)) }
	c.conds = append(c.conds, "org_id = "+arg(org))
	c.bounds = append(c.bounds, "org_id = "+barg(org))
	conds, err := query.Conditions(f, arg)
	if err != nil {
		return nil, err
	}
	c.conds = append(c.conds, conds...)
	q, err := query.FromFilter(f)
	if err != nil {
		return nil, err
	}
	c.bounds = append(c.bounds, timeBounds(f, q, barg)...)
	c.indexed = Indexed(f, q)
	sarg := func(v any) string { c.sargs = append(c.sargs, v); return "$" + strconv.Itoa(len(c.sargs)) }
	c.sbounds = append(c.sbounds, "org_id = "+sarg(org))
	c.sbounds = append(c.sbounds, timeBounds(f, q, sarg)...)
	if c.sconds, err = query.Conditions(f, sarg); err != nil {
		return nil, err
	}
	if len(c.sconds) == 0 {
		c.sconds = []string{"true"}
	}
	return c, nil
}

// timeBounds are the filter's and the query's own limits on occurredAt,
// which narrow the walk itself and let Postgres skip whole months.
func timeBounds(f domain.Filter, q *query.Query, arg func(any) string) []string {
	var out []string
	if f.From != nil {
		out = append(out, "occurred_at >= "+arg(*f.From))
	}
	if f.To != nil {
		out = append(out, "occurred_at < "+arg(*f.To))
	}
	nodes := []query.Node{q.Root()}
	if and, ok := q.Root().(query.And); ok {
		nodes = and
	}
	for _, n := range nodes {
		if o, ok := n.(query.Occurred); ok {
			out = append(out, "occurred_at "+o.Op+" "+arg(o.At))
		}
	}
	return out
}

// order is the list order and the comparison that means "after" in it.
func order(asc bool) (dir, after, upTo string) {
	if asc {
		return "ASC", ">", "<="
	}
	return "DESC", "<", ">="
}

// where renders the conditions plus the span's range. The range is given
// both as a row comparison, which the primary key's index reads exactly,
// and on occurred_at alone, which prunes the months outside it.
func (c *compiled) where(conds []string, sp span, asc bool, args *[]any) string {
	_, after, upTo := order(asc)
	all := append([]string(nil), conds...)
	add := func(cur *readmodel.Cursor, op, loose string) {
		if cur == nil {
			return
		}
		*args = append(*args, cur.OccurredAt, cur.ID)
		n := len(*args)
		all = append(all, fmt.Sprintf("(occurred_at, id) %s ($%d, $%d) AND occurred_at %s $%d", op, n-1, n, loose, n-1))
	}
	add(sp.after, after, after+"=")
	add(sp.through, upTo, upTo)
	return strings.Join(all, " AND ")
}

// rows is the query for up to limit matching events of sp, in list order.
func (c *compiled) rows(sp span, asc bool, limit int) (string, []any) {
	args := append([]any(nil), c.args...)
	dir, _, _ := order(asc)
	w := c.where(c.conds, sp, asc, &args)
	return fmt.Sprintf("SELECT %s FROM %s.events WHERE %s ORDER BY occurred_at %s, id %s LIMIT %d",
		readmodel.SelectColumns, c.schema, w, dir, dir, limit), args
}

// count is the query counting up to limit matching events of sp.
func (c *compiled) count(sp span, limit int) (string, []any) {
	args := append([]any(nil), c.args...)
	w := c.where(c.conds, sp, false, &args)
	return fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s.events WHERE %s LIMIT %d) c", c.schema, w, limit), args
}

// sliceRows is rows for a slice of a walk. The span is read in a subquery
// that OFFSET 0 keeps the planner from merging with the filter, so it is
// read by the primary key's index in list order, which stops at the
// limit. Merged, the planner misjudged how few rows the span's row
// comparison keeps and read other indexes for the filter's sake: at 3M
// events in one org, target:, target.name:, request: and details.policyId:
// searches took 150 to 175 ms (p50) against the 80 ms budget, and under
// 87 ms fenced. Letting the slices after the first (which a timeout
// bounds) choose freely was tried: Postgres then cut them late, up to
// 160 ms (p50).
func (c *compiled) sliceRows(sp span, asc bool, limit int) (string, []any) {
	args := append([]any(nil), c.sargs...)
	dir, _, _ := order(asc)
	inner := c.where(c.sbounds, sp, asc, &args)
	return fmt.Sprintf("SELECT %s FROM (SELECT * FROM %s.events WHERE %s ORDER BY occurred_at %s, id %s OFFSET 0) e WHERE %s ORDER BY occurred_at %s, id %s LIMIT %d",
		readmodel.SelectColumns, c.schema, inner, dir, dir, strings.Join(c.sconds, " AND "), dir, dir, limit), args
}

// sliceCount is count for a slice of a walk, read as sliceRows reads.
func (c *compiled) sliceCount(sp span, limit int) (string, []any) {
	args := append([]any(nil), c.sargs...)
	inner := c.where(c.sbounds, sp, false, &args)
	return fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM (SELECT * FROM %s.events WHERE %s OFFSET 0) e WHERE %s LIMIT %d) c",
		c.schema, inner, strings.Join(c.sconds, " AND "), limit), args
}

// edge is the k-th event after pos in list order, within the filter's time
// bounds but regardless of its other conditions: the end of the next
// slice. It reads only the primary key's index; nil means fewer than k
// events are left.
func (c *compiled) edge(ctx context.Context, tx pgx.Tx, pos *readmodel.Cursor, asc bool, k int) (*readmodel.Cursor, error) {
	args := append([]any(nil), c.bargs...)
	dir, _, _ := order(asc)
	w := c.where(c.bounds, span{after: pos}, asc, &args)
	sql := fmt.Sprintf("SELECT occurred_at, id FROM %s.events WHERE %s ORDER BY occurred_at %s, id %s OFFSET %d LIMIT 1",
		c.schema, w, dir, dir, k-1)
	var e readmodel.Cursor
	err := tx.QueryRow(ctx, sql, args...).Scan(&e.OccurredAt, &e.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e.OccurredAt = e.OccurredAt.UTC()
	return &e, nil
}

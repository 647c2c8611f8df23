package readmodel

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"
)

// Each organization's log is a Merkle tree in the sense of RFC 6962 and RFC
// 9162, kept with golang.org/x/mod/sumdb/tlog: its leaves are the event rows
// the projector stores, in stream order, and a leaf is the message data as
// the stream holds it. Duplicates and quarantined messages are not leaves.
// The tree is a projection like the rows: deterministic from the stream, so
// a rebuild reproduces every root.

// Columns of EventColumns the tree fills in.
const (
	colLeafIndex = 20
	colRecord    = 21
)

// ErrNoLeaf is returned for a tree size or leaf the organization's tree does
// not have.
var ErrNoLeaf = errors.New("the organization's tree has no such leaf")

// queryer runs a query on a pool, a connection or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// hashReader reads one organization's stored hashes from Postgres, through
// an overlay of hashes written earlier in the same transaction and not yet
// copied. It implements tlog.HashReader, whose interface has no context.
type hashReader struct {
	ctx     context.Context
	q       queryer
	schema  string
	org     string
	overlay map[int64]tlog.Hash
}

// ReadHashes returns the hashes at indexes, in their order.
func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for _, i := range indexes {
		if _, ok := r.overlay[i]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		found, err := readHashes(r.ctx, r.q, r.schema, r.org, missing)
		if err != nil {
			return nil, err
		}
		if r.overlay == nil {
			r.overlay = make(map[int64]tlog.Hash, len(found))
		}
		for i, h := range found {
			r.overlay[i] = h
		}
	}
	for k, i := range indexes {
		h, ok := r.overlay[i]
		if !ok {
			return nil, fmt.Errorf("tree of %s: stored hash %d: %w", r.org, i, ErrNoLeaf)
		}
		out[k] = h
	}
	return out, nil
}

// readHashes reads the stored hashes of org at indexes with one query.
func readHashes(ctx context.Context, q queryer, schema, org string, indexes []int64) (map[int64]tlog.Hash, error) {
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT idx, hash FROM %s.tree_hashes WHERE org_id = $1 AND idx = ANY($2)`, schema), org, indexes)
	if err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	out := make(map[int64]tlog.Hash, len(indexes))
	var (
		idx  int64
		hash []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&idx, &hash}, func() error {
		if len(hash) != tlog.HashSize {
			return fmt.Errorf("stored hash %d of %s has %d bytes", idx, org, len(hash))
		}
		out[idx] = tlog.Hash(hash)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	return out, nil
}

// frontier is the stored indexes of the roots of the complete subtrees a
// tree of size n is made of: all a new leaf's hashes need besides itself.
func frontier(n int64) []int64 {
	var out []int64
	start := int64(0)
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, start>>level))
			start += 1 << level
		}
	}
	return out
}

// readFrontiers reads the hashes each of orgs' next leaves hash with (the
// frontier of its tree at sizes[org]) in one query for all of them: a batch
// of many organizations' events must not cost a round trip per
// organization.
func (s *EventStore) readFrontiers(ctx context.Context, q queryer, orgs []string, sizes map[string]int64) (map[string]map[int64]tlog.Hash, error) {
	out := make(map[string]map[int64]tlog.Hash, len(orgs))
	var keyOrgs []string
	var keyIdx []int64
	for _, org := range orgs {
		f := frontier(sizes[org])
		out[org] = make(map[int64]tlog.Hash, len(f)+8)
		for _, i := range f {
			keyOrgs, keyIdx = append(keyOrgs, org), append(keyIdx, i)
		}
	}
	if len(keyIdx) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, fmt.Sprintf(`
		SELECT t.org_id, t.idx, t.hash FROM %s.tree_hashes t
		JOIN unnest($1::text[], $2::bigint[]) AS u(org_id, idx) ON t.org_id = u.org_id AND t.idx = u.idx`, s.schema), keyOrgs, keyIdx)
	if err != nil {
		return nil, fmt.Errorf("read tree frontiers: %w", err)
	}
	var (
		org  string
		idx  int64
		hash []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&org, &idx, &hash}, func() error {
		if len(hash) != tlog.HashSize {
			return fmt.Errorf("tree of %s: stored hash %d has %d bytes", org, idx, len(hash))
		}
		out[org][idx] = tlog.Hash(hash)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree frontiers: %w", err)
	}
	return out, nil
}

// appendLeaves gives each row of rows the next leaf of its organization's
// tree, in order, and writes the new stored hashes and tree sizes in tx:
// one query for the sizes, one for the frontiers, one COPY and one upsert
// per batch, the hashing in Go. rows must be EventRow rows with their record.
func (s *EventStore) appendLeaves(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	var orgs []string
	for _, r := range rows {
		if org := r[0].(string); !slices.Contains(orgs, org) {
			orgs = append(orgs, org)
		}
	}
	sizes, err := s.treeSizes(ctx, tx, orgs)
	if err != nil {
		return err
	}
	frontiers, err := s.readFrontiers(ctx, tx, orgs, sizes)
	if err != nil {
		return err
	}
	readers := make(map[string]*hashReader, len(orgs))
	for _, org := range orgs {
		readers[org] = &hashReader{ctx: ctx, q: tx, schema: s.schema, org: org, overlay: frontiers[org]}
	}
	hashRows := make([][]any, 0, 2*len(rows))
	for _, row := range rows {
		org := row[0].(string)
		record, _ := row[colRecord].([]byte)
		if record == nil {
			return fmt.Errorf("tree of %s: event %s has no record", org, row[1])
		}
		n := sizes[org]
		hashes, err := tlog.StoredHashes(n, record, readers[org])
		if err != nil {
			return fmt.Errorf("tree of %s: leaf %d: %w", org, n, err)
		}
		first := tlog.StoredHashIndex(0, n)
		for i, h := range hashes {
			readers[org].overlay[first+int64(i)] = h
			hashRows = append(hashRows, []any{org, first + int64(i), h[:]})
		}
		row[colLeafIndex] = n
		sizes[org] = n + 1
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.schema, "tree_hashes"}, []string{"org_id", "idx", "hash"}, pgx.CopyFromRows(hashRows)); err != nil {
		return fmt.Errorf("copy tree hashes: %w", err)
	}
	n := make([]int64, len(orgs))
	for i, org := range orgs {
		n[i] = sizes[org]
	}
	_, err = tx.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %s.tree_size (org_id, size) SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (org_id) DO UPDATE SET size = excluded.size`, s.schema), orgs, n)
	if err != nil {
		return fmt.Errorf("write tree sizes: %w", err)
	}
	return nil
}

// treeSizes reads the tree size of each of orgs; an org without a tree has 0.
func (s *EventStore) treeSizes(ctx context.Context, q queryer, orgs []string) (map[string]int64, error) {
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT org_id, size FROM %s.tree_size WHERE org_id = ANY($1)`, s.schema), orgs)
	if err != nil {
		return nil, fmt.Errorf("read tree sizes: %w", err)
	}
	out := make(map[string]int64, len(orgs))
	var (
		org  string
		size int64
	)
	_, err = pgx.ForEachRow(rows, []any{&org, &size}, func() error {
		out[org] = size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree sizes: %w", err)
	}
	return out, nil
}

// TreeSize is how many leaves org's tree has.
func (s *EventStore) TreeSize(ctx context.Context, org string) (int64, error) {
	sizes, err := s.treeSizes(ctx, s.pool, []string{org})
	return sizes[org], err
}

// Hashes is a tlog.HashReader over org's stored hashes for the length of ctx.
func (s *EventStore) Hashes(ctx context.Context, org string) tlog.HashReader {
	return &hashReader{ctx: ctx, q: s.pool, schema: s.schema, org: org}
}

// restoreLeaves gives each repaired row the leaf its record already is in
// its organization's tree: a lost row does not change the tree, which the
// stream determines. A message that never became a leaf (which the
// projector's checks make impossible) is appended as a new one, and logged,
// since a rebuild will place it at its stream position instead.
func (s *EventStore) restoreLeaves(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	var appended [][]any
	for _, row := range rows {
		org := row[0].(string)
		h := tlog.RecordHash(row[colRecord].([]byte))
		res, err := tx.Query(ctx, fmt.Sprintf(`SELECT idx FROM %s.tree_hashes WHERE org_id = $1 AND hash = $2`, s.schema), org, h[:])
		if err != nil {
			return fmt.Errorf("find leaf: %w", err)
		}
		idxs, err := pgx.CollectRows(res, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("find leaf: %w", err)
		}
		found := false
		for _, idx := range idxs {
			if level, n := tlog.SplitStoredHashIndex(idx); level == 0 {
				row[colLeafIndex], found = n, true
				break
			}
		}
		if !found {
			s.log.Warn().Str("org_id", org).Str("id", row[1].(string)).
				Msg("repaired event was never a leaf; appended to its tree (a rebuild places it at its stream position)")
			appended = append(appended, row)
		}
	}
	return s.appendLeaves(ctx, tx, appended)
}

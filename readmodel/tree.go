package readmodel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/tiles"
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

// appendLeaves gives each row of rows the next leaf of its organization's
// tree, in order, and writes the tiles that changed and the tree sizes in
// tx: one query for the sizes, one for the tiles the batch extends, one
// upsert of tiles and one of sizes per batch, the hashing in Go. rows must
// be EventRow rows with their record.
func (s *EventStore) appendLeaves(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	var orgs []string
	added := map[string]int64{}
	for _, r := range rows {
		org := r[0].(string)
		if added[org] == 0 {
			orgs = append(orgs, org)
		}
		added[org]++
	}
	sizes, err := s.treeSizes(ctx, tx, orgs)
	if err != nil {
		return err
	}
	old := make(map[string]int64, len(orgs))
	var keys []tiles.Key
	for _, org := range orgs {
		old[org] = sizes[org]
		keys = append(keys, tiles.Needed(org, sizes[org], sizes[org]+added[org])...)
	}
	loaded, err := tiles.Read(ctx, tx, s.schema, keys)
	if err != nil {
		return err
	}
	trees := make(map[string]*tiles.Hashes, len(orgs))
	for _, org := range orgs {
		trees[org] = tiles.NewHashes(ctx, tx, s.schema, org, loaded)
	}
	for _, row := range rows {
		org := row[0].(string)
		record, _ := row[colRecord].([]byte)
		if record == nil {
			return fmt.Errorf("tree of %s: event %s has no record", org, row[1])
		}
		n := sizes[org]
		if err := trees[org].Append(n, record); err != nil {
			return err
		}
		row[colLeafIndex] = n
		sizes[org] = n + 1
	}
	changed := map[tiles.Key][]byte{}
	n := make([]int64, len(orgs))
	for i, org := range orgs {
		ts, err := trees[org].Tiles(old[org], sizes[org])
		if err != nil {
			return err
		}
		maps.Copy(changed, ts)
		n[i] = sizes[org]
	}
	if err := tiles.Write(ctx, tx, s.schema, changed); err != nil {
		return err
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

// Hashes is a tlog.HashReader over org's stored tiles for the length of ctx.
func (s *EventStore) Hashes(ctx context.Context, org string) tlog.HashReader {
	return s.Tiles(ctx, org)
}

// Tiles is org's tree as its stored tiles for the length of ctx: the hashes
// of Hashes, and the ranges verification compares.
func (s *EventStore) Tiles(ctx context.Context, org string) *tiles.Hashes {
	return tiles.NewHashes(ctx, s.pool, s.schema, org, nil)
}

// FindLeaf returns the index of the leaf of org's tree whose record is
// record, or found false. It reads all of org's leaf hashes: for repairs
// and verification, not for ingest.
func (s *EventStore) FindLeaf(ctx context.Context, org string, record []byte) (index int64, found bool, err error) {
	size, err := s.TreeSize(ctx, org)
	if err != nil {
		return 0, false, err
	}
	return tiles.FindLeaf(ctx, s.pool, s.schema, org, size, tlog.RecordHash(record))
}

// restoreLeaves gives each repaired row the leaf its record already is in
// its organization's tree: a lost row does not change the tree, which the
// stream determines. A message that never became a leaf (which the
// projector's checks make impossible) is appended as a new one, and logged,
// since a rebuild will place it at its stream position instead.
func (s *EventStore) restoreLeaves(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	byOrg := map[string][]tlog.Hash{}
	for _, row := range rows {
		org := row[0].(string)
		byOrg[org] = append(byOrg[org], tlog.RecordHash(row[colRecord].([]byte)))
	}
	orgs := slices.Collect(maps.Keys(byOrg))
	sizes, err := s.treeSizes(ctx, tx, orgs)
	if err != nil {
		return err
	}
	at := make(map[string]map[tlog.Hash]int64, len(orgs))
	for _, org := range orgs {
		// One scan of the org's leaf tiles for all its repaired rows.
		if at[org], err = tiles.FindLeaves(ctx, tx, s.schema, org, sizes[org], byOrg[org]); err != nil {
			return err
		}
	}
	var appended [][]any
	for _, row := range rows {
		org := row[0].(string)
		if n, ok := at[org][tlog.RecordHash(row[colRecord].([]byte))]; ok {
			row[colLeafIndex] = n
		} else {
			s.log.Warn().Str("org_id", org).Str("id", row[1].(string)).
				Msg("repaired event was never a leaf; appended to its tree (a rebuild places it at its stream position)")
			appended = append(appended, row)
		}
	}
	return s.appendLeaves(ctx, tx, appended)
}

// Tile is org's stored tile at tile level l and index n, as wide as it is
// stored now (a partial tile grows until full), or nil when it was never
// written.
func (s *EventStore) Tile(ctx context.Context, org string, l int, n int64) ([]byte, error) {
	k := tiles.Key{Org: org, L: l, N: n}
	found, err := tiles.Read(ctx, s.pool, s.schema, []tiles.Key{k})
	return found[k], err
}

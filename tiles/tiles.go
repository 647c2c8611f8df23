// Package tiles keeps each organization's Merkle tree in PostgreSQL as
// tiles, the way transparency logs publish theirs (C2SP tlog-tiles): a tile
// of height 8 holds 256 consecutive hashes of one level of the tree (level
// L holds the stored hashes of tree level 8·L); a full tile is written
// once, and the tile at the tree's right edge is partial and replaced as it
// fills. Every other stored hash of golang.org/x/mod/sumdb/tlog is computed
// from a tile (tlog.HashFromTile). Compared with a row per stored hash this
// keeps 32 bytes a leaf instead of about 260, and a batch of events writes
// a handful of rows rather than two per event.
//
// The table is tree_tiles (org_id, level, n, data) of a region schema; the
// read model's migrations create it. This package reads and writes it, and
// reads hashes from it through tlog.HashReader.
package tiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/mod/sumdb/tlog"
)

// Height is the height of every stored tile: 256 hashes, as C2SP
// tlog-tiles fixes it.
const Height = 8

// Width is the number of hashes in a full tile.
const Width = 1 << Height

// ErrMissing is returned for a hash no stored tile holds: a tree size or
// leaf the organization's tree does not have.
var ErrMissing = errors.New("no stored tile holds the hash")

// Key names one organization's tile at tile level L (tree level 8·L) and
// index N, whatever its width.
type Key struct {
	Org string
	L   int
	N   int64
}

// Queryer runs a query on a pool, a connection or a transaction.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Execer runs a statement on a pool, a connection or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// keyOf is the key of the tile holding stored hash index of org, and the
// least width the tile must have to hold it.
func keyOf(org string, index int64) (Key, int) {
	t := tlog.TileForIndex(Height, index)
	return Key{Org: org, L: t.L, N: t.N}, t.W
}

// Read reads the tiles keys name, with one query for all of them; a tile
// never written is absent from the result.
func Read(ctx context.Context, q Queryer, schema string, keys []Key) (map[Key][]byte, error) {
	out := make(map[Key][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	orgs, levels, ns := make([]string, len(keys)), make([]int32, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		orgs[i], levels[i], ns[i] = k.Org, int32(k.L), k.N
	}
	rows, err := q.Query(ctx, fmt.Sprintf(`
		SELECT t.org_id, t.level, t.n, t.data FROM %s.tree_tiles t
		JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS u(org_id, level, n)
		ON t.org_id = u.org_id AND t.level = u.level AND t.n = u.n`, schema), orgs, levels, ns)
	if err != nil {
		return nil, fmt.Errorf("read tree tiles: %w", err)
	}
	var (
		k    Key
		data []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&k.Org, &k.L, &k.N, &data}, func() error {
		if len(data)%tlog.HashSize != 0 || len(data) > Width*tlog.HashSize {
			return fmt.Errorf("tile %d/%d of %s has %d bytes", k.L, k.N, k.Org, len(data))
		}
		out[k] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tree tiles: %w", err)
	}
	return out, nil
}

// Write stores tiles, each replacing the narrower version of itself, with
// one statement.
func Write(ctx context.Context, e Execer, schema string, tiles map[Key][]byte) error {
	if len(tiles) == 0 {
		return nil
	}
	orgs, levels, ns, data := make([]string, 0, len(tiles)), make([]int32, 0, len(tiles)), make([]int64, 0, len(tiles)), make([][]byte, 0, len(tiles))
	for k, d := range tiles {
		orgs, levels, ns, data = append(orgs, k.Org), append(levels, int32(k.L)), append(ns, k.N), append(data, d)
	}
	_, err := e.Exec(ctx, fmt.Sprintf(`
		INSERT INTO %s.tree_tiles (org_id, level, n, data)
		SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[])
		ON CONFLICT (org_id, level, n) DO UPDATE SET data = excluded.data`, schema), orgs, levels, ns, data)
	if err != nil {
		return fmt.Errorf("write tree tiles: %w", err)
	}
	return nil
}

// Needed lists the tiles of org that growing its tree from size old to size
// new reads: those holding the old tree's frontier (the complete subtrees
// the new leaves hash with) and the partial tiles the new leaves extend.
// Reading them all at once makes a batch's appends cost no other read.
func Needed(org string, old, new int64) []Key {
	seen := map[Key]bool{}
	var out []Key
	add := func(k Key) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	start := int64(0)
	for level := 62; level >= 0; level-- {
		if old&(1<<level) != 0 {
			k, _ := keyOf(org, tlog.StoredHashIndex(level, start>>level))
			add(k)
			start += 1 << level
		}
	}
	for _, t := range tlog.NewTiles(Height, old, new) {
		add(Key{Org: org, L: t.L, N: t.N})
	}
	return out
}

// Hashes is a tlog.HashReader over one organization's stored tiles, through
// an overlay of hashes computed and not yet written (Append). It caches the
// tiles it reads and reads those it lacks with one query per ReadHashes. It
// lives for one request or one transaction: tlog's interface has no context.
type Hashes struct {
	ctx     context.Context
	q       Queryer
	schema  string
	org     string
	tiles   map[Key][]byte
	overlay map[int64]tlog.Hash
}

// NewHashes reads org's tiles in schema through q, starting from the tiles
// already read (Read's result; may be nil).
func NewHashes(ctx context.Context, q Queryer, schema, org string, loaded map[Key][]byte) *Hashes {
	h := &Hashes{ctx: ctx, q: q, schema: schema, org: org, tiles: map[Key][]byte{}, overlay: map[int64]tlog.Hash{}}
	for k, d := range loaded {
		if k.Org == org {
			h.tiles[k] = d
		}
	}
	return h
}

// ReadHashes returns the hashes at the stored hash indexes, in their order.
func (h *Hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	var missing []Key
	asked := map[Key]bool{}
	for _, i := range indexes {
		if _, ok := h.overlay[i]; ok {
			continue
		}
		k, w := keyOf(h.org, i)
		if len(h.tiles[k]) >= w*tlog.HashSize || asked[k] {
			continue
		}
		asked[k] = true
		missing = append(missing, k)
	}
	if len(missing) > 0 {
		found, err := Read(h.ctx, h.q, h.schema, missing)
		if err != nil {
			return nil, err
		}
		for k, d := range found {
			if len(d) > len(h.tiles[k]) {
				h.tiles[k] = d
			}
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for n, i := range indexes {
		if v, ok := h.overlay[i]; ok {
			out[n] = v
			continue
		}
		k, w := keyOf(h.org, i)
		data := h.tiles[k]
		if len(data) < w*tlog.HashSize {
			return nil, fmt.Errorf("tree of %s: stored hash %d: %w", h.org, i, ErrMissing)
		}
		v, err := tlog.HashFromTile(tlog.Tile{H: Height, L: k.L, N: k.N, W: len(data) / tlog.HashSize}, data, i)
		if err != nil {
			return nil, fmt.Errorf("tree of %s: stored hash %d: %w", h.org, i, err)
		}
		out[n] = v
	}
	return out, nil
}

// Append adds the leaf record as leaf n of the tree, which must have n
// leaves: its stored hashes join the overlay.
func (h *Hashes) Append(n int64, record []byte) error {
	hashes, err := tlog.StoredHashes(n, record, h)
	if err != nil {
		return fmt.Errorf("tree of %s: leaf %d: %w", h.org, n, err)
	}
	first := tlog.StoredHashIndex(0, n)
	for i, v := range hashes {
		h.overlay[first+int64(i)] = v
	}
	return nil
}

// Tiles returns the tiles that changed when the tree grew from size old to
// size new, to be written (Write).
func (h *Hashes) Tiles(old, new int64) (map[Key][]byte, error) {
	out := map[Key][]byte{}
	for _, t := range tlog.NewTiles(Height, old, new) {
		data, err := tlog.ReadTileData(t, h)
		if err != nil {
			return nil, fmt.Errorf("tree of %s: tile %s: %w", h.org, t.Path(), err)
		}
		out[Key{Org: h.org, L: t.L, N: t.N}] = data
	}
	return out, nil
}

// Range returns the stored hashes with indexes in [lo, hi), reading every
// tile they need with one query: what verification compares with the
// hashes it recomputes.
func (h *Hashes) Range(lo, hi int64) ([]tlog.Hash, error) {
	idx := make([]int64, 0, max(hi-lo, 0))
	for i := lo; i < hi; i++ {
		idx = append(idx, i)
	}
	return h.ReadHashes(idx)
}

// FindLeaf returns the index of the first leaf of org's tree of size n whose
// record hash is leaf; found is false when no leaf has it.
func FindLeaf(ctx context.Context, q Queryer, schema, org string, n int64, leaf tlog.Hash) (index int64, found bool, err error) {
	at, err := FindLeaves(ctx, q, schema, org, n, []tlog.Hash{leaf})
	index, found = at[leaf]
	return index, found, err
}

// FindLeaves returns, for each of leaves that is the record hash of a leaf
// of org's tree of size n, the index of the first such leaf, reading org's
// level-0 tiles once, in order. It scans, since tiles keep no index by
// hash: it serves repairs and verification of an aged-out stream, never
// ingest.
func FindLeaves(ctx context.Context, q Queryer, schema, org string, n int64, leaves []tlog.Hash) (map[tlog.Hash]int64, error) {
	want := make(map[tlog.Hash]bool, len(leaves))
	for _, h := range leaves {
		want[h] = true
	}
	out := make(map[tlog.Hash]int64, len(leaves))
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT n, data FROM %s.tree_tiles WHERE org_id = $1 AND level = 0 ORDER BY n`, schema), org)
	if err != nil {
		return nil, fmt.Errorf("find leaves: %w", err)
	}
	var (
		tn   int64
		data []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&tn, &data}, func() error {
		for i := 0; (i+1)*tlog.HashSize <= len(data) && len(out) < len(want); i++ {
			k := tn*Width + int64(i)
			if k >= n {
				break
			}
			h := tlog.Hash(data[i*tlog.HashSize : (i+1)*tlog.HashSize])
			if _, seen := out[h]; want[h] && !seen {
				out[h] = k
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find leaves: %w", err)
	}
	return out, nil
}

package tiles_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/tiles"
)

const schema = "audit_us"

// memTree is the reference: every stored hash in memory, as tlog computes it.
type memTree struct {
	stored []tlog.Hash
	size   int64
}

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.stored[x]
	}
	return out, nil
}

func (m *memTree) append(t *testing.T, record []byte) {
	hs, err := tlog.StoredHashes(m.size, record, m)
	if err != nil {
		t.Fatal(err)
	}
	m.stored = append(m.stored, hs...)
	m.size++
}

func record(org string, n int64) []byte { return fmt.Appendf(nil, `{"org":%q,"n":%d}`, org, n) }

// appendBatch grows each org's tree by counts[org] leaves in one
// transaction, as the read model's projector does, and returns how many
// tile rows it wrote.
func appendBatch(t *testing.T, pool *pgxpool.Pool, sizes map[string]int64, counts map[string]int64) int {
	t.Helper()
	ctx := context.Background()
	written := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var keys []tiles.Key
		for org, c := range counts {
			keys = append(keys, tiles.Needed(org, sizes[org], sizes[org]+c)...)
		}
		loaded, err := tiles.Read(ctx, tx, schema, keys)
		if err != nil {
			return err
		}
		changed := map[tiles.Key][]byte{}
		for org, c := range counts {
			h := tiles.NewHashes(ctx, tx, schema, org, loaded)
			for n := sizes[org]; n < sizes[org]+c; n++ {
				if err := h.Append(n, record(org, n)); err != nil {
					return err
				}
			}
			ts, err := h.Tiles(sizes[org], sizes[org]+c)
			if err != nil {
				return err
			}
			for k, d := range ts {
				changed[k] = d
			}
		}
		written = len(changed)
		return tiles.Write(ctx, tx, schema, changed)
	})
	if err != nil {
		t.Fatal(err)
	}
	for org, c := range counts {
		sizes[org] += c
	}
	return written
}

// TestTilesHoldTheTree grows trees in batches of various sizes and checks,
// after each batch, that the hashes read from the stored tiles give the
// roots, inclusion proofs and consistency proofs of the tree tlog computes
// in memory, and that a batch writes a handful of tile rows.
func TestTilesHoldTheTree(t *testing.T) {
	tests := []struct {
		name    string
		batches []int64
	}{
		{"one leaf at a time", []int64{1, 1, 1, 1, 1}},
		{"filling a tile exactly", []int64{255, 1, 256}},
		{"across tile edges", []int64{100, 300, 7, 600}},
		{"a second level of tiles", []int64{1000, 65536, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pool := testenv.Pool(t)
			if err := readmodel.Migrate(ctx, pool, schema, "region"); err != nil {
				t.Fatal(err)
			}
			orgs := []string{"acme", "globex"}
			ref := map[string]*memTree{"acme": {}, "globex": {}}
			sizes := map[string]int64{}
			for _, b := range tc.batches {
				counts := map[string]int64{"acme": b, "globex": b/2 + 1}
				written := appendBatch(t, pool, sizes, counts)
				// Per org: each level's tiles the batch filled or extended.
				if maxRows := 2 * (int(b/tiles.Width) + 3); written > maxRows {
					t.Errorf("a batch of %d leaves wrote %d tile rows, want at most %d", b, written, maxRows)
				}
				for _, org := range orgs {
					for ref[org].size < sizes[org] {
						ref[org].append(t, record(org, ref[org].size))
					}
					checkTree(t, pool, org, sizes[org], ref[org])
				}
			}
		})
	}
}

func checkTree(t *testing.T, pool *pgxpool.Pool, org string, size int64, ref *memTree) {
	t.Helper()
	ctx := context.Background()
	h := tiles.NewHashes(ctx, pool, schema, org, nil)
	for _, n := range []int64{1, size / 3, size / 2, size - 1, size} {
		if n < 1 {
			continue
		}
		want, err := tlog.TreeHash(n, ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tlog.TreeHash(n, h)
		if err != nil || got != want {
			t.Fatalf("%s: root of %d of %d leaves from the tiles: %v, %v; want %v", org, n, size, got, err, want)
		}
	}
	root, _ := tlog.TreeHash(size, ref)
	for _, leaf := range []int64{0, size / 2, size - 1} {
		p, err := tlog.ProveRecord(size, leaf, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, size, root, leaf, tlog.RecordHash(record(org, leaf))); err != nil {
			t.Fatalf("%s: inclusion of %d in %d: %v", org, leaf, size, err)
		}
	}
	if size > 1 {
		old := size/2 + 1
		oldRoot, _ := tlog.TreeHash(old, ref)
		p, err := tlog.ProveTree(size, old, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, size, root, old, oldRoot); err != nil {
			t.Fatalf("%s: consistency of %d with %d: %v", org, old, size, err)
		}
	}
	all, err := h.Range(0, tlog.StoredHashCount(size))
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if all[i] != ref.stored[i] {
			t.Fatalf("%s: stored hash %d of %d leaves differs", org, i, size)
		}
	}
	if _, err := h.ReadHashes([]int64{tlog.StoredHashIndex(0, size)}); err == nil {
		t.Fatalf("%s: a hash of leaf %d read from a tree of %d", org, size, size)
	}
	leaf := size - 1
	got, found, err := tiles.FindLeaf(ctx, pool, schema, org, size, tlog.RecordHash(record(org, leaf)))
	if err != nil || !found || got != leaf {
		t.Fatalf("%s: FindLeaf of leaf %d: %d %v %v", org, leaf, got, found, err)
	}
	if _, found, _ := tiles.FindLeaf(ctx, pool, schema, org, size, tlog.RecordHash(record(org, size))); found {
		t.Fatalf("%s: FindLeaf found a record that is no leaf", org)
	}
	first, last, absent := tlog.RecordHash(record(org, 0)), tlog.RecordHash(record(org, size-1)), tlog.RecordHash(record(org, size))
	at, err := tiles.FindLeaves(ctx, pool, schema, org, size, []tlog.Hash{first, last, absent})
	distinct := 2
	if size == 1 {
		distinct = 1 // leaf 0 is the last
	}
	if err != nil || len(at) != distinct || at[first] != 0 || at[last] != size-1 {
		t.Fatalf("%s: FindLeaves of leaves 0, %d and a record that is none: %v %v", org, size-1, at, err)
	}
}

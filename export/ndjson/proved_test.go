package ndjson

import (
	"fmt"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// countingHashes is an in-memory tree's stored hashes that counts the reads
// made of it.
type countingHashes struct {
	stored []tlog.Hash
	leaves []int64
	reads  int
}

func (c *countingHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	c.reads++
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		if i < 0 || i >= int64(len(c.stored)) {
			return nil, fmt.Errorf("no stored hash %d", i)
		}
		out[k] = c.stored[i]
	}
	return out, nil
}

// treeOf builds a tree of n records, returning its stored hashes.
func treeOf(t *testing.T, n int64) *countingHashes {
	t.Helper()
	c := &countingHashes{}
	for i := range n {
		h, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("record %d", i)), c)
		if err != nil {
			t.Fatal(err)
		}
		c.stored = append(c.stored, h...)
	}
	c.reads = 0
	return c
}

// A batch of proofs reads the tree once and gives each leaf the proof
// tlog.ProveRecord gives it alone, whichever leaves the batch holds.
func TestProveRecordsReadsTheTreeOncePerBatch(t *testing.T) {
	const size = 1000
	tree := treeOf(t, size)
	root, err := tlog.TreeHash(size, tree)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		leaves []int64
	}{
		{"newest first, consecutive", []int64{999, 998, 997, 996, 995}},
		{"scattered, as a filter leaves them", []int64{900, 512, 511, 3, 0}},
		{"one", []int64{0}},
		{"the last leaf of an odd-sized tree", []int64{size - 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree.reads = 0
			proofs, err := proveRecords(size, tc.leaves, tree)
			if err != nil {
				t.Fatal(err)
			}
			if tree.reads != 1 {
				t.Errorf("%d reads of the tree for one batch, want 1", tree.reads)
			}
			for k, leaf := range tc.leaves {
				want, err := tlog.ProveRecord(size, leaf, tree)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(proofs[k], want) {
					t.Errorf("leaf %d: proof differs from tlog's", leaf)
				}
				if err := tlog.CheckRecord(proofs[k], size, root, leaf, tlog.RecordHash([]byte(fmt.Sprintf("record %d", leaf)))); err != nil {
					t.Errorf("leaf %d: %v", leaf, err)
				}
			}
		})
	}
}

// Every leaf of trees of every size up to 70 gets tlog's proof, in one
// batch.
func TestProveRecordsEqualsTlogForEveryLeaf(t *testing.T) {
	tree := treeOf(t, 70)
	for size := int64(1); size <= 70; size++ {
		leaves := make([]int64, size)
		for i := range leaves {
			leaves[i] = size - 1 - int64(i)
		}
		proofs, err := proveRecords(size, leaves, tree)
		if err != nil {
			t.Fatal(err)
		}
		for k, leaf := range leaves {
			want, err := tlog.ProveRecord(size, leaf, tree)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(proofs[k], want) {
				t.Fatalf("size %d, leaf %d: proof differs from tlog's", size, leaf)
			}
		}
	}
	if _, err := proveRecords(5, []int64{5}, tree); err == nil {
		t.Fatal("a proof of a leaf outside the tree")
	}
}

package ndjson

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/tlog"
)

// A version 3 export proves all its events at once. A verifier hashes each
// event's record into its leaf; what it cannot hash itself are the leaves
// between them, which the file gives as compact ranges: for each gap in
// the exported leaves, the hashes of the fewest perfect subtrees covering
// it, left to right (transparency-dev/merkle's compact ranges). Merging
// the leaves and the gaps from leaf 0 to the tree's size gives the tree's
// root, which the signed checkpoint holds. The proof costs a few hashes per
// gap, none for a run of consecutive leaves, where a proof per event cost
// about log2(size) hashes per event.

// leafRuns is the set of an export's leaves as runs of consecutive leaves,
// in the order they were added: exports list events newest first, so most
// leaves extend the run before them, and memory grows with the runs, not
// the events.
type leafRuns []leafRun

// leafRun is the leaves first through last.
type leafRun struct{ first, last int64 }

func (r *leafRuns) add(leaf int64) {
	if n := len(*r); n > 0 {
		last := &(*r)[n-1]
		switch leaf {
		case last.first - 1:
			last.first = leaf
			return
		case last.last + 1:
			last.last = leaf
			return
		}
	}
	*r = append(*r, leafRun{leaf, leaf})
}

// sort sorts the runs by their first leaf, and checks that each leaf is in
// the tree of size and in one run only: a file lists each leaf once.
func (r leafRuns) sort(size int64) error {
	slices.SortFunc(r, func(a, b leafRun) int { return cmp.Compare(a.first, b.first) })
	for i, run := range r {
		if i > 0 && run.first <= r[i-1].last {
			return fmt.Errorf("leaf %d is in the export twice", run.first)
		}
		if run.first < 0 || run.last >= size {
			return fmt.Errorf("leaves %d to %d are not all in the tree of %d", run.first, run.last, size)
		}
	}
	return nil
}

// eachGap calls fn with each range [begin, end) of the tree of size that
// the sorted runs leave out, in leaf order.
func (r leafRuns) eachGap(size int64, fn func(begin, end uint64) error) error {
	next := int64(0) // the first leaf no run covers yet
	for _, run := range r {
		if run.first > next {
			if err := fn(uint64(next), uint64(run.first)); err != nil {
				return err
			}
		}
		next = run.last + 1
	}
	if next < size {
		return fn(uint64(next), uint64(size))
	}
	return nil
}

// rangeProof gives emit the range proof of the leaves in runs in the tree
// of size, in order: the compact range of each gap they leave, in leaf
// order. It reads the hashes from the reader open gives, in reads of about
// readChunk hashes, and gives emit each read's, so memory holds a read, not
// the proof. It sorts runs.
func rangeProof(size int64, runs leafRuns, open func() (tlog.HashReader, error), emit func([]tlog.Hash) error) error {
	if err := runs.sort(size); err != nil {
		return err
	}
	var (
		reader  tlog.HashReader
		ids     []compact.NodeID
		indexes []int64
	)
	read := func() error {
		if len(ids) == 0 {
			return nil
		}
		if reader == nil {
			var err error
			if reader, err = open(); err != nil {
				return err
			}
		}
		indexes = indexes[:0]
		for _, id := range ids {
			indexes = append(indexes, tlog.StoredHashIndex(int(id.Level), int64(id.Index)))
		}
		hs, err := reader.ReadHashes(indexes)
		if err != nil {
			return err
		}
		if len(hs) != len(indexes) {
			return fmt.Errorf("read %d tree hashes, got %d", len(indexes), len(hs))
		}
		ids = ids[:0]
		return emit(hs)
	}
	err := runs.eachGap(size, func(begin, end uint64) error {
		ids = compact.RangeNodes(begin, end, ids)
		if len(ids) >= readChunk {
			return read()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return read()
}

// readChunk is about the most hashes asked of the tree in one read (a gap
// adds at most 128 past it), so a filter that leaves many gaps makes
// several queries of bounded size.
const readChunk = 8192

// provedLeaf is an exported leaf as a verifier hashed it, and the line
// that holds it.
type provedLeaf struct {
	index int64
	line  int
	hash  tlog.Hash
}

// rootOf is the root of the tree of size whose leaves are leaves (each
// index once, sorted) and whose other leaves are covered by proof, the
// compact ranges of the gaps between them in leaf order. Every hash of proof
// must be used.
func rootOf(size int64, leaves []provedLeaf, proof []tlog.Hash) (tlog.Hash, error) {
	f := &compact.RangeFactory{Hash: func(l, r []byte) []byte {
		h := tlog.NodeHash(tlog.Hash(l), tlog.Hash(r))
		return h[:]
	}}
	tree := f.NewEmptyRange(0)
	gap := func(end uint64) error {
		begin := tree.End()
		switch {
		case end == begin:
			return nil
		case end < begin:
			return fmt.Errorf("leaf %d is not after leaf %d", end, begin-1)
		}
		n := compact.RangeSize(begin, end)
		if n > len(proof) {
			return fmt.Errorf("the proof ends before leaf %d: it has too few hashes", end)
		}
		hs := make([][]byte, n)
		for i := range hs {
			hs[i] = proof[i][:]
		}
		proof = proof[n:]
		g, err := f.NewRange(begin, end, hs)
		if err != nil {
			return err
		}
		return tree.AppendRange(g, nil)
	}
	for _, l := range leaves {
		if l.index < 0 || l.index >= size {
			return tlog.Hash{}, fmt.Errorf("leaf %d is outside the tree of %d", l.index, size)
		}
		if err := gap(uint64(l.index)); err != nil {
			return tlog.Hash{}, err
		}
		h := l.hash
		if err := tree.Append(h[:], nil); err != nil {
			return tlog.Hash{}, err
		}
	}
	if err := gap(uint64(size)); err != nil {
		return tlog.Hash{}, err
	}
	if len(proof) > 0 {
		return tlog.Hash{}, fmt.Errorf("the proof has %d hashes more than the gaps between the leaves need", len(proof))
	}
	root, err := tree.GetRootHash(nil)
	if err != nil {
		return tlog.Hash{}, err
	}
	if root == nil { // the tree of no leaves
		return tlog.Hash{}, nil
	}
	return tlog.Hash(root), nil
}

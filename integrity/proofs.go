// Package integrity proves and checks what the read models hold against the
// streams: inclusion and consistency proofs from the stored Merkle trees,
// the signed checkpoints (tree heads) kept in each region, reconciliation
// of a read model with its stream, and verification of an organization's
// log leaf by leaf. Each takes the region's *readmodel.EventStore; the tree's
// hashes are written by the read model as it projects.
package integrity

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/readmodel"
)

// TreeHash is the root hash of org's tree at size n, which must not exceed
// the tree's size.
func TreeHash(ctx context.Context, s *readmodel.EventStore, org string, n int64) (tlog.Hash, error) {
	if err := checkSize(ctx, s, org, n); err != nil {
		return tlog.Hash{}, err
	}
	return tlog.TreeHash(n, s.Hashes(ctx, org))
}

// ProveRecord is the inclusion proof of leaf in org's tree of size n, in
// RFC 9162 order (from the leaf's sibling up).
func ProveRecord(ctx context.Context, s *readmodel.EventStore, org string, n, leaf int64) (tlog.RecordProof, error) {
	if leaf < 0 || leaf >= n {
		return nil, fmt.Errorf("leaf %d of a tree of %d: %w", leaf, n, readmodel.ErrNoLeaf)
	}
	if err := checkSize(ctx, s, org, n); err != nil {
		return nil, err
	}
	return tlog.ProveRecord(n, leaf, s.Hashes(ctx, org))
}

// ProveTree is the consistency proof of org's tree of size from with its
// tree of size to.
func ProveTree(ctx context.Context, s *readmodel.EventStore, org string, from, to int64) (tlog.TreeProof, error) {
	if from < 1 || from > to {
		return nil, fmt.Errorf("consistency of %d with %d: %w", from, to, readmodel.ErrNoLeaf)
	}
	if err := checkSize(ctx, s, org, to); err != nil {
		return nil, err
	}
	return tlog.ProveTree(to, from, s.Hashes(ctx, org))
}

func checkSize(ctx context.Context, s *readmodel.EventStore, org string, n int64) error {
	size, err := s.TreeSize(ctx, org)
	if err != nil {
		return err
	}
	if n < 0 || n > size {
		return fmt.Errorf("tree size %d of %s, which has %d leaves: %w", n, org, size, readmodel.ErrNoLeaf)
	}
	return nil
}

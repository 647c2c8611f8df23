package integrity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/readmodel"
)

// SignedCheckpoint is a checkpoint issued for an organization's tree, as
// kept in the read model: the signed note and what it says.
type SignedCheckpoint struct {
	OrgID    string
	Size     int64
	Root     tlog.Hash
	Note     string
	IssuedAt time.Time
	// Seq is the note's sequence in the checkpoint stream.
	Seq uint64
}

// SaveCheckpoint keeps c; keeping it again changes nothing.
func SaveCheckpoint(ctx context.Context, s *readmodel.EventStore, c SignedCheckpoint) error {
	_, err := s.Pool().Exec(ctx, fmt.Sprintf(`
		INSERT INTO %s.checkpoints (org_id, tree_size, root_hash, note, issued_at, seq)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, s.Schema()),
		c.OrgID, c.Size, c.Root[:], c.Note, c.IssuedAt, int64(c.Seq))
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

const checkpointColumns = `org_id, tree_size, root_hash, note, issued_at, seq`

func scanCheckpoint(row pgx.CollectableRow) (SignedCheckpoint, error) {
	var (
		c    SignedCheckpoint
		root []byte
		seq  int64
	)
	if err := row.Scan(&c.OrgID, &c.Size, &root, &c.Note, &c.IssuedAt, &seq); err != nil {
		return c, err
	}
	if len(root) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint %d of %s: root of %d bytes", c.Size, c.OrgID, len(root))
	}
	c.Root, c.Seq = tlog.Hash(root), uint64(seq)
	return c, nil
}

// LatestCheckpoint is org's checkpoint of the largest tree, or nil.
func LatestCheckpoint(ctx context.Context, s *readmodel.EventStore, org string) (*SignedCheckpoint, error) {
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(`SELECT %s FROM %s.checkpoints WHERE org_id = $1 ORDER BY tree_size DESC LIMIT 1`,
		checkpointColumns, s.Schema()), org)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	c, err := pgx.CollectOneRow(rows, scanCheckpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	return &c, nil
}

// Checkpoints are every checkpoint of org, smallest tree first.
func Checkpoints(ctx context.Context, s *readmodel.EventStore, org string) ([]SignedCheckpoint, error) {
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(`SELECT %s FROM %s.checkpoints WHERE org_id = $1 ORDER BY tree_size`,
		checkpointColumns, s.Schema()), org)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	return out, nil
}

// GrownTrees lists the orgs whose tree has grown past their latest
// checkpoint, or that have none.
func GrownTrees(ctx context.Context, s *readmodel.EventStore) ([]string, error) {
	rows, err := s.Pool().Query(ctx, fmt.Sprintf(`
		SELECT t.org_id FROM %[1]s.tree_size t
		WHERE t.size > coalesce((SELECT max(tree_size) FROM %[1]s.checkpoints c WHERE c.org_id = t.org_id), 0)
		ORDER BY t.org_id`, s.Schema()))
	if err != nil {
		return nil, fmt.Errorf("grown trees: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("grown trees: %w", err)
	}
	return out, nil
}

// LastCheckpointSeq is the highest checkpoint stream sequence the read
// model holds.
func LastCheckpointSeq(ctx context.Context, s *readmodel.EventStore) (uint64, error) {
	var seq int64
	if err := s.Pool().QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(max(seq), 0) FROM %s.checkpoints`, s.Schema())).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last checkpoint: %w", err)
	}
	return uint64(seq), nil
}

package server

import (
	"context"

	"github.com/auditlog/auditlog/projector"

	"github.com/auditlog/auditlog/domain"

	"github.com/auditlog/auditlog/readmodel"
)

// Rebuild drops every read model and projects it again from its stream, the
// trees of every organization included, and reloads the checkpoints. Each
// projector's lock is held throughout, so a running auditd's projector
// waits (or, while it holds the lock, Rebuild does), and a running auditd's
// partitions make Rebuild fail: stop auditd first.
func (s *Server) Rebuild(ctx context.Context) error {
	// The partition layout is the operator's choice, not derived from a
	// stream: it outlives the control schema it is kept in.
	layout, err := projector.PartitionCount(ctx, s.control)
	if err != nil {
		return err
	}
	err = s.controlProjector.Rebuild(ctx, func(ctx context.Context) error {
		if err := readmodel.DropSchema(ctx, s.control, readmodel.ControlSchema); err != nil {
			return err
		}
		if err := s.store.Migrate(ctx); err != nil {
			return err
		}
		_, err := projector.SetPartitionCount(ctx, s.control, layout)
		return err
	})
	if err != nil {
		return err
	}
	for _, r := range domain.Regions {
		st := s.events[r]
		err := s.eventProjectors[r].Rebuild(ctx, func(ctx context.Context) error {
			if err := readmodel.DropSchema(ctx, st.Pool(), st.Schema()); err != nil {
				return err
			}
			if err := st.Migrate(ctx); err != nil {
				return err
			}
			return st.EnsureMonths(ctx, monthsAhead)
		})
		if err != nil {
			return err
		}
		// Checkpoints are evidence, not derived data: they come back from
		// their stream, and the rebuilt trees must have the same roots.
		if err := s.trees.Sync(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// ProjectionPartitions is how many partitions project each regional stream.
func (s *Server) ProjectionPartitions(ctx context.Context) (int, error) {
	return projector.PartitionCount(ctx, s.control)
}

// SetProjectionPartitions changes the partition layout of the deployment
// to n and returns the one before; running instances switch within a
// rebalance tick.
func (s *Server) SetProjectionPartitions(ctx context.Context, n int) (int, error) {
	return projector.SetPartitionCount(ctx, s.control, n)
}

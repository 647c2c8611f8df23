package server

import (
	"context"

	"github.com/auditlog/auditlog/domain"

	"github.com/auditlog/auditlog/projections"
)

// Rebuild drops every read model and projects it again from its stream, the
// trees of every organization included, and reloads the checkpoints. Each
// projector's lock is held throughout, so a running auditd's projector
// waits (or, while it holds the lock, Rebuild does): stop auditd first.
func (s *Server) Rebuild(ctx context.Context) error {
	err := s.controlProjector.Rebuild(ctx, func(ctx context.Context) error {
		if err := projections.DropSchema(ctx, s.control, projections.ControlSchema); err != nil {
			return err
		}
		return s.store.Migrate(ctx)
	})
	if err != nil {
		return err
	}
	for _, r := range domain.Regions {
		st := s.events[r]
		err := s.eventProjectors[r].Rebuild(ctx, func(ctx context.Context) error {
			if err := projections.DropSchema(ctx, st.Pool(), st.Schema()); err != nil {
				return err
			}
			if err := st.Migrate(ctx); err != nil {
				return err
			}
			return st.EnsurePartitions(ctx, partitionsAhead)
		})
		if err != nil {
			return err
		}
		// Checkpoints are evidence, not derived data: they come back from
		// their stream, and the rebuilt trees must have the same roots.
		if err := s.trees.sync(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

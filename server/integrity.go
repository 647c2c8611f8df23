package server

import (
	"context"
	"time"

	integ "github.com/auditlog/auditlog/integrity"

	"github.com/auditlog/auditlog/config"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/health"
	"github.com/auditlog/auditlog/onlyone"
)

// Defaults of the integrity checks.
const (
	DefaultStallAfter     = config.DefaultStallAfter
	DefaultReconcileEvery = config.DefaultReconcileEvery
)

// ProjectionHealth is what /readyz tells of one read model: health's.
type ProjectionHealth = health.ProjectionHealth

// reconcileLoop reconciles every regional read model every interval, each
// region on its own schedule and by one instance at a time, repairing what
// it finds.
func (s *Server) reconcileLoop(ctx context.Context, period time.Duration) {
	s.regionLoops(ctx, taskReconcile, period, false, func(ctx context.Context, r domain.Region) error {
		st := s.events[r]
		ran, err := onlyone.Run(ctx, st.Pool(), "reconcile:"+st.Schema(), func() error {
			_, err := s.reconcileRegion(ctx, r, true)
			return err
		})
		if ran {
			s.health.Refresh(ctx)
		}
		return err
	})
}

// Reconcile compares every regional stream with its read model and, when
// repair is set, re-applies what is missing. See readmodel.Reconcile.
func (s *Server) Reconcile(ctx context.Context, repair bool) ([]*integ.Report, error) {
	var out []*integ.Report
	for _, r := range domain.Regions {
		rep, err := s.reconcileRegion(ctx, r, repair)
		if err != nil {
			return out, err
		}
		out = append(out, rep)
	}
	return out, nil
}

func (s *Server) reconcileRegion(ctx context.Context, r domain.Region, repair bool) (*integ.Report, error) {
	rep, err := integ.Reconcile(ctx, s.events[r], s.js, repair)
	if err != nil {
		return nil, err
	}
	l := s.log.Info()
	if len(rep.Gaps) > 0 || rep.Unexplained > 0 {
		l = s.log.Error()
	}
	l.Str("stream", rep.Stream).Uint64("through", rep.Through).Uint64("checked", rep.Checked).
		Int("gaps", len(rep.Gaps)).Int("repaired", rep.Repaired).Int("quarantined", len(rep.Quarantined)).
		Int64("unexplained_rows", rep.Unexplained).Int64("expired", rep.Expired).Uint64("from", rep.From).
		Dur("took", rep.Took).Msg("reconciled")
	return rep, nil
}

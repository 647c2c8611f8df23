package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/auditlog/auditlog/domain"
)

// Periodic work on the regions (checkpoints, retention, reconciliation)
// runs each region on its own: its own goroutine, its own schedule, its
// own retries. One region whose stream, NATS or database is in trouble is
// reported and retried, and never holds up or aborts another region's pass.

// Names of the per-region tasks, as the task label of
// auditlog_region_task_failures_total.
const (
	taskCheckpoints = "checkpoints"
	taskRetention   = "retention"
	taskReconcile   = "reconcile"
)

// regionRetryFirst is the first wait before a failed region is tried
// again; each further failure doubles it, up to the task's period.
const regionRetryFirst = time.Second

// regionTask runs fn for region r and reports a failure: an error log and
// auditlog_region_task_failures_total{task,region}.
func (s *Server) regionTask(ctx context.Context, task string, r domain.Region, fn func(context.Context, domain.Region) error) error {
	err := fn(ctx, r)
	if err != nil && ctx.Err() == nil {
		s.metrics.regionFailures.WithLabelValues(task, string(r)).Inc()
		s.log.Error().Err(err).Str("task", task).Str("region", string(r)).Msg("region task failed; the other regions go on")
	}
	return err
}

// eachRegion runs fn for every region at once and waits for them all; the
// error joins the failed regions', each already reported.
func (s *Server) eachRegion(ctx context.Context, task string, fn func(context.Context, domain.Region) error) error {
	errs := make([]error, len(domain.Regions))
	var wg sync.WaitGroup
	for i, r := range domain.Regions {
		wg.Go(func() {
			if err := s.regionTask(ctx, task, r, fn); err != nil {
				errs[i] = fmt.Errorf("%s of %s: %w", task, r, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// regionLoops runs fn for each region every period (and once at once when
// atStart is set), every region in a goroutine of its own, until ctx ends;
// it returns when they all have. A region whose run failed is tried again
// after regionRetryFirst, doubling up to period, while the others keep
// their schedule.
func (s *Server) regionLoops(ctx context.Context, task string, period time.Duration, atStart bool, fn func(context.Context, domain.Region) error) {
	var wg sync.WaitGroup
	for _, r := range domain.Regions {
		wg.Go(func() { s.regionLoop(ctx, task, r, period, atStart, fn) })
	}
	wg.Wait()
}

func (s *Server) regionLoop(ctx context.Context, task string, r domain.Region, period time.Duration, atStart bool, fn func(context.Context, domain.Region) error) {
	wait := period
	if atStart {
		wait = 0
	}
	retry := min(regionRetryFirst, period)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := period
		if err := s.regionTask(ctx, task, r, fn); err != nil {
			next, retry = retry, min(retry*2, period)
		} else {
			retry = min(regionRetryFirst, period)
		}
		t.Reset(next)
	}
}

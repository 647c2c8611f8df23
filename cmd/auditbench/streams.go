package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/auditlog/auditlog/cmd/auditbench/streambench"
	"github.com/auditlog/auditlog/domain"
)

// streams is the log stream figures' view of this run.
func (b *bench) streams() *streambench.Bench {
	return &streambench.Bench{
		Server: b.srv, Scale: b.scale, GQL: b.gql, Admin: b.admin, Enable: b.enable,
		Preload: b.preload, Offer: b.offer, WaitQueryable: b.waitQueryable, Analyze: b.analyze,
	}
}

// analyze gathers region US's read model statistics.
func (b *bench) analyze(ctx context.Context) error {
	st := b.srv.EventStore(domain.RegionUS)
	if _, err := st.Pool().Exec(ctx, "ANALYZE "+st.Schema()+".events"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// preload records n events of org through the API, as the ingest step's
// clients do.
func (b *bench) preload(ctx context.Context, org string, n int) error {
	token := b.service()
	send := func(ctx context.Context, evs []domain.Event) (int, error) {
		data, err := b.gql(ctx, token, recordMutation, inputs(evs))
		if err != nil {
			return 0, err
		}
		return countRecorded(data, "RECORDED"), nil
	}
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				k := min(left.Add(-batchSize)+batchSize, batchSize)
				if k <= 0 {
					return
				}
				recorded, _, err := sendRetrying(ctx, events(org, int(k)), send)
				if err == nil && recorded != int(k) {
					err = fmt.Errorf("preload: %d of %d events recorded", recorded, k)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

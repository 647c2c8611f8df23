package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/auditlog/auditlog/internal/measure"
	"github.com/auditlog/auditlog/projector"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
)

// partitionRates measures how fast P partitions project a backlog of
// events of many orgs, for the capacity model: each layout projects the
// region's stream from its start into a read model of its own, with
// consumers and locks of its own, while auditd's own projection idles.
func (b *bench) partitionRates(ctx context.Context, rep *measure.Report) error {
	js := b.srv.JetStream()
	n := int(200_000 * b.scale)
	last, err := b.backlog(ctx, js, n, 256)
	if err != nil {
		return err
	}
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	if err := b.waitQueryable(ctx); err != nil {
		return err
	}
	pool := b.srv.EventStore(domain.RegionUS).Pool()
	for _, count := range []int{1, 2, 4, 8} {
		schema := fmt.Sprintf("bench_partitions_%d", count)
		store := readmodel.NewEventStore(pool, schema, natsx.AuditStream(domain.RegionUS), log)
		if err := store.Migrate(ctx); err != nil {
			return err
		}
		if err := store.EnsureMonths(ctx, 3); err != nil {
			return err
		}
		pp := &projector.Partitioned{
			JS: js, Store: store, Region: domain.RegionUS, Log: log,
			Durable: fmt.Sprintf("bench-%d", count),
			Layout:  func(context.Context) (int, error) { return count, nil },
			// One instance, alone: auditd's own membership is another
			// deployment's, which must not take a share of these.
			Census: func(context.Context) (int, int, error) { return 0, 1, nil },
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- pp.Run(rctx) }()
		err = waitCheckpoint(ctx, store, last)
		took := time.Since(start)
		stop()
		<-done
		if derr := readmodel.DropSchema(ctx, pool, schema); err == nil {
			err = derr
		}
		if err != nil {
			return err
		}
		// Each layout projects the whole stream: the backlog and whatever
		// earlier steps stored.
		msgs := float64(last)
		rep.Add(fmt.Sprintf("projection: %d partition(s), backlog", count), msgs/took.Seconds(), "events/s",
			fmt.Sprintf("%d events (%d of 256 orgs) in %.1fs, one instance", int(msgs), n, took.Seconds()))
	}
	return nil
}

// backlog appends n events spread over orgs organizations straight to
// region US's stream, a chunk at a time so the client never has too many
// in flight, and returns the stream's last sequence.
func (b *bench) backlog(ctx context.Context, js jetstream.JetStream, n, orgs int) (uint64, error) {
	for i, e := range events("", n) {
		e.OrgID = fmt.Sprintf("bench-p-%03d", i%orgs)
		data, err := json.Marshal(e)
		if err != nil {
			return 0, err
		}
		if _, err := js.PublishAsync(natsx.AuditSubject(domain.RegionUS, &e), data, jetstream.WithMsgID(e.OrgID+":"+e.ID)); err != nil {
			return 0, err
		}
		if (i+1)%5000 == 0 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	stream, err := js.Stream(ctx, natsx.AuditStream(domain.RegionUS))
	if err != nil {
		return 0, err
	}
	return stream.CachedInfo().State.LastSeq, nil
}

func waitCheckpoint(ctx context.Context, store *readmodel.EventStore, seq uint64) error {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		cp, err := store.Position(ctx)
		if err != nil {
			return err
		}
		if cp >= seq {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: checkpoint not at %d after 10 minutes", store.Schema(), seq)
}

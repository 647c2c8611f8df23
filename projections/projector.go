package projections

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Message is one stream message handed to a Sink.
type Message struct {
	Seq     uint64
	Subject string
	Data    []byte
	// Decoded is what a Decoder made of Data, if anything.
	Decoded any
}

// Sink applies batches of stream messages to one read model.
type Sink interface {
	// Prepare readies conn for Apply and returns the last sequence applied.
	Prepare(ctx context.Context, conn *pgx.Conn) (checkpoint uint64, err error)
	// Apply writes batch and its last sequence as the new checkpoint in one
	// transaction. It must be idempotent: a batch may be applied again after
	// a crash between commit and ack.
	Apply(ctx context.Context, conn *pgx.Conn, batch []Message) error
}

// applyTimeout bounds one batch's transaction.
const applyTimeout = 30 * time.Second

// Projector feeds one stream into one Sink through a durable pull consumer.
// One projector per read model is active across all instances: it holds a
// Postgres advisory lock for as long as it runs.
type Projector struct {
	JS      jetstream.JetStream
	Pool    *pgxpool.Pool
	Stream  string
	Durable string
	Sink    Sink
	Log     zerolog.Logger
	// Batch is the most messages applied in one transaction (default 1000).
	Batch int
	// Linger is how long a batch waits to fill once its first message is in
	// (default 5ms): a little latency buys much larger transactions under load.
	Linger time.Duration

	applied atomic.Uint64
}

// Applied is the last stream sequence this projector committed.
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// Run projects until ctx ends or something fails. It returns nil only when
// ctx was cancelled. Messages not yet committed are never acked; the next
// Run resumes from the read model's own checkpoint.
func (p *Projector) Run(ctx context.Context) error {
	return p.run(ctx, 0, nil)
}

// Rebuild takes the projector's lock, calls reset to empty the read model,
// and projects the stream from its start until the read model holds
// everything the stream held when Rebuild started.
func (p *Projector) Rebuild(ctx context.Context, reset func(context.Context) error) error {
	info, err := p.JS.Stream(ctx, p.Stream)
	if err != nil {
		return fmt.Errorf("projector %s: %w", p.Stream, err)
	}
	last := info.CachedInfo().State.LastSeq
	if last == 0 {
		return p.run(ctx, ^uint64(0), reset) // nothing to project after the reset
	}
	return p.run(ctx, last, reset)
}

func (p *Projector) run(ctx context.Context, until uint64, reset func(context.Context) error) error {
	pc, err := p.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("projector %s: %w", p.Stream, err)
	}
	// The session owns the advisory lock; closing it, not returning it to
	// the pool, is what releases the lock on every exit path.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", "projector:"+p.Stream+":"+p.Durable); err != nil {
		return p.exit(ctx, fmt.Errorf("projector %s: lock: %w", p.Stream, err))
	}
	// A read model is rebuildable and its checkpoint commits with its rows,
	// so a commit lost in a Postgres crash is replayed from the stream
	// (the consumer is recreated from the checkpoint, not from acks). It
	// need not wait for its WAL flush, which was a tenth of every batch.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return p.exit(ctx, fmt.Errorf("projector %s: %w", p.Stream, err))
	}
	if reset != nil {
		if err := reset(ctx); err != nil {
			return fmt.Errorf("projector %s: reset: %w", p.Stream, err)
		}
	}
	checkpoint, err := p.Sink.Prepare(ctx, conn)
	if err != nil {
		return p.exit(ctx, fmt.Errorf("projector %s: prepare: %w", p.Stream, err))
	}
	p.applied.Store(checkpoint)
	if until == ^uint64(0) || (until > 0 && checkpoint >= until) {
		return nil
	}

	cons, err := p.consumer(ctx, checkpoint)
	if err != nil {
		return p.exit(ctx, err)
	}
	batch := p.Batch
	if batch <= 0 {
		batch = 1000
	}
	linger := p.Linger
	if linger == 0 {
		linger = 5 * time.Millisecond
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(2 * batch))
	if err != nil {
		return p.exit(ctx, fmt.Errorf("projector %s: subscribe: %w", p.Stream, err))
	}
	defer iter.Stop()
	p.Log.Info().Str("stream", p.Stream).Uint64("checkpoint", checkpoint).Msg("projector started")

	// The next batch is fetched and decoded while the current one is
	// written: Postgres and the rest of the work run side by side.
	fctx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	batches := make(chan fetched, 1)
	var fetchErr error
	go func() {
		defer close(batches)
		fetchErr = p.fetch(fctx, iter, batch, linger, batches)
	}()
	for b := range batches {
		buf := b.buf[:0]
		for _, m := range b.buf {
			if m.Seq > p.applied.Load() { // else redelivered after a commit whose ack was lost
				buf = append(buf, m)
			}
		}
		if len(buf) > 0 {
			// A batch taken is finished and acked even when shutdown begins
			// meanwhile; only a stuck database cuts it short.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
			err := p.Sink.Apply(actx, conn, buf)
			cancel()
			if err != nil {
				stopFetch()
				for range batches { // let the fetcher finish before the iterator stops
				}
				return p.exit(ctx, fmt.Errorf("projector %s: apply: %w", p.Stream, err))
			}
			p.applied.Store(buf[len(buf)-1].Seq)
		}
		// AckAll: one ack covers the whole committed batch.
		if err := b.last.Ack(); err != nil {
			p.Log.Warn().Err(err).Str("stream", p.Stream).Msg("ack failed; batch will be redelivered and skipped")
		}
		if until > 0 && p.applied.Load() >= until {
			stopFetch()
			for range batches {
			}
			return nil
		}
	}
	return p.exit(ctx, fetchErr)
}

// fetched is one batch taken from the stream, decoded when the sink can.
type fetched struct {
	buf  []Message
	last jetstream.Msg
}

// Decoder is a Sink that can prepare a batch before its transaction; the
// projector runs Decode on the next batch while Apply writes the current one.
type Decoder interface {
	// Decode sets Decoded on the messages of batch.
	Decode(batch []Message)
}

// fetch fills batches and hands them over until ctx ends or the stream
// fails.
func (p *Projector) fetch(ctx context.Context, iter jetstream.MessagesContext, n int, linger time.Duration, out chan<- fetched) error {
	msgs := make([]jetstream.Msg, 0, n)
	for {
		var err error
		msgs, err = p.fill(ctx, iter, msgs[:0], n, linger)
		if err != nil {
			return err
		}
		buf := make([]Message, 0, len(msgs))
		for _, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("projector %s: metadata: %w", p.Stream, err)
			}
			buf = append(buf, Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Data: m.Data()})
		}
		if d, ok := p.Sink.(Decoder); ok {
			d.Decode(buf)
		}
		select {
		case out <- fetched{buf: buf, last: msgs[len(msgs)-1]}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fill blocks for the first message, then takes what arrives within linger.
func (p *Projector) fill(ctx context.Context, iter jetstream.MessagesContext, msgs []jetstream.Msg, n int, linger time.Duration) ([]jetstream.Msg, error) {
	m, err := iter.Next(jetstream.NextContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("projector %s: next: %w", p.Stream, err)
	}
	msgs = append(msgs, m)
	lctx, cancel := context.WithTimeout(ctx, linger)
	defer cancel()
	for len(msgs) < n {
		m, err := iter.Next(jetstream.NextContext(lctx))
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// consumer (re)creates the durable so it starts right after the read
// model's checkpoint: the read model, not the consumer, knows what it holds.
// Only the lock holder does this, so no other instance is consuming.
func (p *Projector) consumer(ctx context.Context, checkpoint uint64) (jetstream.Consumer, error) {
	stream, err := p.JS.Stream(ctx, p.Stream)
	if err != nil {
		return nil, fmt.Errorf("projector %s: %w", p.Stream, err)
	}
	if err := stream.DeleteConsumer(ctx, p.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("projector %s: reset consumer: %w", p.Stream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       p.Durable,
		Description:   "projects " + p.Stream + " into Postgres",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 100_000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if checkpoint > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = checkpoint + 1
	}
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("projector %s: create consumer: %w", p.Stream, err)
	}
	return cons, nil
}

// exit maps the error of a cancelled run to nil.
func (p *Projector) exit(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Package projector is the projection runtime: a Projector feeds a stream
// through a durable pull consumer into a Sink in contiguous batches (fetch,
// delivery contiguity, poison narrowing, quarantine, fencing, holder
// timeouts), and Partitioned shares a regional stream's partitions among
// the instances (slot locks, membership census, layout). It knows no read
// model: what it writes to is behind Sink, Fencer, Advancer and Store.
package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	// delivery is the consumer's sequence of this delivery: deliveries of
	// one consumer count up by one, so a gap is a delivery lost on the way.
	delivery uint64
}

// Sink applies batches of stream messages to one read model.
type Sink interface {
	// Prepare readies conn for Apply and returns the last sequence applied.
	Prepare(ctx context.Context, conn *pgx.Conn) (position uint64, err error)
	// Apply writes batch and its last sequence as the new checkpoint in one
	// transaction. It must be idempotent: a batch may be applied again after
	// a crash between commit and ack. A message it can never apply is
	// reported as a *PoisonError, or as a Postgres data error, which the
	// projector narrows down by splitting the batch.
	Apply(ctx context.Context, conn *pgx.Conn, batch []Message) error
	// Quarantine keeps m, which can never be applied, with the reason, and
	// moves the checkpoint to it, in one transaction.
	Quarantine(ctx context.Context, conn *pgx.Conn, m Message, reason error) error
}

// PoisonError names the message of a batch that can never be applied, such
// as one that does not decode.
type PoisonError struct {
	Seq uint64
	Err error
}

func (e *PoisonError) Error() string { return fmt.Sprintf("message %d: %v", e.Seq, e.Err) }

func (e *PoisonError) Unwrap() error { return e.Err }

// errResync ends a consumption whose deliveries skipped a sequence the
// stream holds; the projector resumes from its checkpoint.
var errResync = errors.New("deliveries skipped a stored sequence")

// ErrFenced is a projector's write refused because another projector has
// taken its slots since it took them: the write's transaction is rolled
// back, so a holder that lost its slots writes nothing.
var ErrFenced = errors.New("fenced: another projector has taken these slots")

// ErrLocked is returned by Run when another projector holds a lock this one
// needs and its Locker does not wait.
var ErrLocked = errors.New("another projector holds the lock")

// Locker takes the Postgres locks a projector holds while it runs, on the
// session it runs on: closing the session, as every exit of Run does,
// releases them, also when the process dies.
type Locker interface {
	Lock(ctx context.Context, conn *pgx.Conn) error
}

// Advancer is a Sink whose checkpoint may move past sequences it holds
// nothing of. A projector of some of a stream's subjects that is idle, with
// nothing pending, has seen every message of its subjects up to the
// stream's last one; advancing says so, which keeps the read model's
// checkpoint (the least of its partitions') moving.
type Advancer interface {
	Advance(ctx context.Context, conn *pgx.Conn, seq uint64) error
}

// Fencer is a Sink that fences what it writes once its projector holds its
// locks: its writes then check, in their own transaction, that no other
// projector has fenced since, so a holder that lost its locks without
// knowing (a frozen process that resumes) writes nothing.
type Fencer interface {
	Fence(ctx context.Context, conn *pgx.Conn) error
}

// streamLock waits for the lock named for a stream and durable: the one
// projector of a stream that is not partitioned.
type streamLock string

func (l streamLock) Lock(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", string(l)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// applyTimeout bounds one batch's transaction.
const applyTimeout = 30 * time.Second

// Projector feeds one stream, or the subjects Filters names, into one Sink
// through a durable pull consumer. One projector per read model or
// partition is active across all instances: it holds Postgres advisory
// locks for as long as it runs.
type Projector struct {
	JS      jetstream.JetStream
	Pool    *pgxpool.Pool
	Stream  string
	Durable string
	Sink    Sink
	Log     zerolog.Logger
	// Filters are the subjects projected; none is the whole stream.
	Filters []string
	// Lock takes the projector's locks (default: wait for the lock named
	// for Stream and Durable).
	Lock Locker
	// Batch is the most messages applied in one transaction (default 1000).
	Batch int
	// Linger is how long a batch waits to fill once its first message is in
	// (default 5ms): a little latency buys much larger transactions under load.
	Linger time.Duration
	// IdleCheck is how long deliveries may pause before the projector asks
	// its consumer whether messages were delivered that never arrived, or
	// are pending but not sent (default 1s): a lost tail would otherwise
	// wait for the ack timeout. An idle check that finds nothing missing
	// advances an Advancer's checkpoint to the stream's last sequence.
	IdleCheck time.Duration
	// HolderTimeout is how long the session holding the projector's locks
	// may be silent before Postgres ends it (default DefaultHolderTimeout);
	// it must be well above IdleCheck.
	HolderTimeout time.Duration

	applied     atomic.Uint64
	resyncs     atomic.Uint64
	quarantined atomic.Uint64
	// lose, set only by tests, drops deliveries as a network or a slow
	// client would.
	lose func(seq uint64) bool
	// onLocked, if set, is called once the projector holds its locks.
	onLocked func()
}

// Resyncs counts the times deliveries skipped a stored sequence and the
// projector went back to its checkpoint instead of passing over it.
func (p *Projector) Resyncs() uint64 { return p.resyncs.Load() }

// Quarantined counts the messages this projector set aside because they
// could never be applied.
func (p *Projector) Quarantined() uint64 { return p.quarantined.Load() }

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

	lock := p.Lock
	if lock == nil {
		lock = streamLock("projector:" + p.Stream + ":" + p.Durable)
	}
	if err := lock.Lock(ctx, conn); err != nil {
		if errors.Is(err, ErrLocked) {
			return err
		}
		return p.exit(ctx, fmt.Errorf("projector %s: %w", p.Stream, err))
	}
	if err := p.holdSession(ctx, conn); err != nil {
		return p.exit(ctx, fmt.Errorf("projector %s: %w", p.Stream, err))
	}
	if f, ok := p.Sink.(Fencer); ok {
		if err := f.Fence(ctx, conn); err != nil {
			return p.exit(ctx, fmt.Errorf("projector %s: %w", p.Stream, err))
		}
	}
	if p.onLocked != nil {
		p.onLocked()
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
	position, err := p.Sink.Prepare(ctx, conn)
	if err != nil {
		return p.exit(ctx, fmt.Errorf("projector %s: prepare: %w", p.Stream, err))
	}
	p.applied.Store(position)
	if until == ^uint64(0) || (until > 0 && position >= until) {
		return nil
	}
	p.Log.Info().Str("stream", p.Stream).Str("durable", p.Durable).Uint64("checkpoint", position).Msg("projector started")
	for {
		cons, err := p.consumer(ctx, p.applied.Load())
		if err != nil {
			return p.exit(ctx, err)
		}
		err = p.consume(ctx, conn, cons, until)
		if !errors.Is(err, errResync) {
			return p.exit(ctx, err)
		}
		p.resyncs.Add(1)
		p.Log.Warn().Str("stream", p.Stream).Uint64("checkpoint", p.applied.Load()).
			Msg("deliveries skipped stored messages; resuming from the checkpoint")
	}
}

// holdSession makes Postgres end the lock-holding session once it has been
// silent for the holder timeout, in or out of a transaction: a frozen
// process (SIGSTOP, a dead network path, a hung host) then loses its locks
// within that bound instead of when TCP gives up, and another instance
// takes them. A live projector is never that silent: it pings at every idle
// check.
func (p *Projector) holdSession(ctx context.Context, conn *pgx.Conn) error {
	return silenceTimeout(ctx, conn, p.holderTimeout())
}

// silenceTimeout has Postgres end conn's session once it has been silent
// for d, idle or idle in a transaction.
//
// A process frozen in the middle of a statement (a COPY whose rows it was
// still sending) leaves the session active, not idle, so neither idle
// timeout applies: statement_timeout, at three holder timeouts, bounds that
// case too. A batch's statements take milliseconds.
func silenceTimeout(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	ms := d.Milliseconds()
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET idle_session_timeout = %d; SET idle_in_transaction_session_timeout = %d; SET statement_timeout = %d",
		ms, ms, 3*ms)); err != nil {
		return fmt.Errorf("holder timeout: %w", err)
	}
	return nil
}

// DefaultHolderTimeout is how long a projector's lock-holding session may
// be silent before Postgres ends it and its locks go to another instance.
const DefaultHolderTimeout = 10 * time.Second

func (p *Projector) holderTimeout() time.Duration {
	if p.HolderTimeout <= 0 {
		return DefaultHolderTimeout
	}
	return p.HolderTimeout
}

// consume applies what cons delivers until ctx ends, the read model holds
// until, something fails, or deliveries skip a sequence (errResync).
func (p *Projector) consume(ctx context.Context, conn *pgx.Conn, cons jetstream.Consumer, until uint64) error {
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
		return fmt.Errorf("projector %s: subscribe: %w", p.Stream, err)
	}
	defer iter.Stop()

	// The next batch is fetched and decoded while the current one is
	// written: Postgres and the rest of the work run side by side.
	fctx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	batches := make(chan fetched, 1)
	var fetchErr error
	go func() {
		defer close(batches)
		fetchErr = p.fetch(fctx, cons, iter, batch, linger, batches)
	}()
	stop := func() {
		stopFetch()
		for range batches { // let the fetcher finish before the iterator stops
		}
	}
	nextDelivery := uint64(1) // the consumer is new: its first delivery is 1
	for b := range batches {
		if b.idle {
			// An idle projector uses its session for nothing, so a lost
			// session (and with it the locks) would go unnoticed until the
			// next event; ask.
			pctx, cancel := context.WithTimeout(ctx, applyTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				stop()
				return fmt.Errorf("projector %s: session lost: %w", p.Stream, err)
			}
			if err := p.advance(ctx, conn, b.advance); err != nil {
				stop()
				return err
			}
			if until > 0 && p.applied.Load() >= until {
				stop()
				return nil
			}
			continue
		}
		buf, contiguous := p.contiguous(b.buf, &nextDelivery)
		if len(buf) > 0 {
			// A batch taken is finished and acked even when shutdown begins
			// meanwhile; only a stuck database cuts it short.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
			err := p.apply(actx, conn, buf)
			cancel()
			if err != nil {
				stop()
				return fmt.Errorf("projector %s: apply: %w", p.Stream, err)
			}
			p.applied.Store(buf[len(buf)-1].Seq)
		}
		if !contiguous {
			// Never ack past a lost delivery: the consumer is recreated
			// from the checkpoint, which the lost message lies after.
			stop()
			return errResync
		}
		// AckAll: one ack covers the whole committed batch.
		if err := b.last.Ack(); err != nil {
			p.Log.Warn().Err(err).Str("stream", p.Stream).Msg("ack failed; batch will be redelivered and skipped")
		}
		if until > 0 && p.applied.Load() >= until {
			stop()
			return nil
		}
	}
	return fetchErr
}

// contiguous drops what the read model already holds from batch and checks
// that its deliveries follow on from the last one with none missing: the
// consumer numbers its deliveries 1, 2, 3..., so a gap is a message
// delivered that never arrived, however many stream sequences lie between
// two messages of the projector's subjects. It returns the prefix that may
// be applied, and false at a gap: a lost delivery must never be acked over,
// which would lose the event from the read model for ever.
func (p *Projector) contiguous(batch []Message, nextDelivery *uint64) ([]Message, bool) {
	next := p.applied.Load() + 1
	out := batch[:0]
	for _, m := range batch {
		if m.delivery != *nextDelivery {
			p.Log.Warn().Str("stream", p.Stream).Str("durable", p.Durable).Uint64("expected_delivery", *nextDelivery).
				Uint64("delivery", m.delivery).Uint64("seq", m.Seq).Msg("deliveries were lost on the way")
			return out, false
		}
		*nextDelivery++
		if m.Seq < next { // redelivered after a commit whose ack was lost
			continue
		}
		out = append(out, m)
		next = m.Seq + 1
	}
	return out, true
}

// advance moves an Advancer's checkpoint to seq, which an idle check found
// every message of the projector's subjects up to delivered and applied.
func (p *Projector) advance(ctx context.Context, conn *pgx.Conn, seq uint64) error {
	a, ok := p.Sink.(Advancer)
	if !ok || seq == 0 || seq <= p.applied.Load() {
		return nil
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	if err := a.Advance(actx, conn, seq); err != nil {
		return fmt.Errorf("projector %s: advance: %w", p.Stream, err)
	}
	p.applied.Store(seq)
	return nil
}

// apply applies batch. A message that can never be applied is found, by
// its error or by splitting the batch, and quarantined; every other
// message is applied. Failures that may pass (a connection lost, a
// timeout) are returned, so the batch is tried again.
func (p *Projector) apply(ctx context.Context, conn *pgx.Conn, batch []Message) error {
	err := p.Sink.Apply(ctx, conn, batch)
	if err == nil {
		return nil
	}
	var poison *PoisonError
	if errors.As(err, &poison) {
		i := slices.IndexFunc(batch, func(m Message) bool { return m.Seq == poison.Seq })
		if i < 0 {
			return err
		}
		if i > 0 {
			if err := p.apply(ctx, conn, batch[:i]); err != nil {
				return err
			}
		}
		if err := p.quarantine(ctx, conn, batch[i], poison.Err); err != nil {
			return err
		}
		if i+1 < len(batch) {
			return p.apply(ctx, conn, batch[i+1:])
		}
		return nil
	}
	if !isDataError(err) || conn.IsClosed() {
		return err
	}
	if len(batch) == 1 {
		return p.quarantine(ctx, conn, batch[0], err)
	}
	mid := len(batch) / 2
	if err := p.apply(ctx, conn, batch[:mid]); err != nil {
		return err
	}
	return p.apply(ctx, conn, batch[mid:])
}

func (p *Projector) quarantine(ctx context.Context, conn *pgx.Conn, m Message, reason error) error {
	if err := p.Sink.Quarantine(ctx, conn, m, reason); err != nil {
		return fmt.Errorf("quarantine message %d: %w", m.Seq, err)
	}
	p.quarantined.Add(1)
	p.Log.Error().Str("stream", p.Stream).Uint64("seq", m.Seq).Str("subject", m.Subject).
		Str("reason", reason.Error()).Msg("message quarantined: it can never be applied")
	return nil
}

// isDataError tells an error that the same rows will always cause (bad
// data, a violated constraint, a value over a limit) from one that may
// pass.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", // data exception: bad encoding, NUL, out of range
		"23", // integrity constraint violation
		"54": // program limit exceeded: a value too large to index
		return true
	}
	return false
}

// fetched is one batch taken from the stream, decoded when the sink can,
// or, when advance is set, word from an idle check that everything of the
// projector's subjects up to that sequence was delivered.
type fetched struct {
	buf     []Message
	last    jetstream.Msg
	advance uint64
	// idle marks word from an idle check, whether or not it advances.
	idle bool
}

// Decoder is a Sink that can prepare a batch before its transaction; the
// projector runs Decode on the next batch while Apply writes the current one.
type Decoder interface {
	// Decode sets Decoded on the messages of batch.
	Decode(batch []Message)
}

// fetch fills batches and hands them over until ctx ends or the stream
// fails.
func (p *Projector) fetch(ctx context.Context, cons jetstream.Consumer, iter jetstream.MessagesContext, n int, linger time.Duration, out chan<- fetched) error {
	msgs := make([]jetstream.Msg, 0, n)
	var delivered uint64 // the last delivery that arrived
	idle := p.IdleCheck
	if idle <= 0 {
		idle = time.Second
	}
	suspect := false
	send := func(f fetched) error {
		select {
		case out <- f:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		var err error
		msgs, err = p.fill(ctx, iter, msgs[:0], n, linger, idle)
		if errors.Is(err, errIdle) {
			through, err := p.checkIdle(ctx, cons, delivered, &suspect)
			if err != nil {
				return err
			}
			if err := send(fetched{advance: through, idle: true}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		suspect = false
		buf := make([]Message, 0, len(msgs))
		var last jetstream.Msg
		for _, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("projector %s: metadata: %w", p.Stream, err)
			}
			if p.lose != nil && p.lose(md.Sequence.Stream) {
				continue
			}
			buf = append(buf, Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), delivery: md.Sequence.Consumer})
			last = m
			delivered = max(delivered, md.Sequence.Consumer)
		}
		if len(buf) == 0 {
			continue
		}
		if d, ok := p.Sink.(Decoder); ok {
			d.Decode(buf)
		}
		if err := send(fetched{buf: buf, last: last}); err != nil {
			return err
		}
	}
}

// errIdle says no message came for a while.
var errIdle = errors.New("no deliveries")

// checkIdle is called when deliveries pause. It reads the stream's last
// sequence, then asks the consumer what it delivered and holds pending: if
// every delivery arrived and nothing is pending, every message of the
// projector's subjects up to that last sequence has been delivered, and it
// returns the sequence. Otherwise deliveries were lost on the way (or
// pull requests were, and JetStream holds messages it does not send); a
// delivery may still be in flight at one check, so only a second check in
// a row that finds the same resumes from the checkpoint (errResync).
func (p *Projector) checkIdle(ctx context.Context, cons jetstream.Consumer, delivered uint64, suspect *bool) (uint64, error) {
	stream, err := p.JS.Stream(ctx, p.Stream)
	if err != nil {
		return 0, fmt.Errorf("projector %s: %w", p.Stream, err)
	}
	last := stream.CachedInfo().State.LastSeq
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("projector %s: consumer info: %w", p.Stream, err)
	}
	if info.NumPending == 0 && info.Delivered.Consumer == delivered {
		*suspect = false
		return last, nil
	}
	if !*suspect {
		*suspect = true
		return 0, nil
	}
	p.Log.Warn().Str("stream", p.Stream).Str("durable", p.Durable).Uint64("arrived", delivered).
		Uint64("delivered", info.Delivered.Consumer).Uint64("pending", info.NumPending).
		Msg("stored messages were not delivered")
	return 0, errResync
}

// fill blocks for the first message, up to idle, then takes what arrives
// within linger.
func (p *Projector) fill(ctx context.Context, iter jetstream.MessagesContext, msgs []jetstream.Msg, n int, linger, idle time.Duration) ([]jetstream.Msg, error) {
	ictx, cancel := context.WithTimeout(ctx, idle)
	m, err := iter.Next(jetstream.NextContext(ictx))
	cancel()
	if err != nil && ctx.Err() == nil && ictx.Err() != nil {
		return nil, errIdle
	}
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
func (p *Projector) consumer(ctx context.Context, position uint64) (jetstream.Consumer, error) {
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
		// The read model's checkpoint, not the consumer, is the position:
		// the consumer is recreated from it on every start, so it need not
		// survive a server and is kept in memory on one replica, and one
		// left behind (a partition layout no longer run) goes away.
		FilterSubjects:    p.Filters,
		Replicas:          1,
		MemoryStorage:     true,
		InactiveThreshold: 10 * time.Minute,
	}
	if position > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = position + 1
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

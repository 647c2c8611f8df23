package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/repeat"
)

// MaxPartitions is the most partitions a regional stream can be projected
// by: one per slot.
const MaxPartitions = natsx.Slots

// Partitioned projects one regional stream as partitions that every
// instance sharing the Postgres shares: partition i of P (a power of two)
// is the slots s with s mod P = i, read through one subject filter and
// projected by one projector holding each of its slots' locks. Each instance runs about P/N partitions of N instances, takes
// over those whose holder died as soon as Postgres has ended its session,
// and hands partitions back when instances join. Before any partition
// runs, the events stored before slots existed are applied, so an org's
// older events always precede its newer ones.
type Partitioned struct {
	JS jetstream.JetStream
	// Store is the read model projected: the sink of the events stored
	// before slots, which gives the sink of each partition's slots.
	Store  Store
	Region domain.Region
	Log    zerolog.Logger
	// Layout reads how many partitions the deployment runs.
	Layout func(ctx context.Context) (int, error)
	// Census tells this instance's rank among the n live instances.
	Census func(ctx context.Context) (rank, n int, err error)
	// Tick is how often the instance rebalances (default 1s): the bound on
	// how long a dead instance's partitions wait for a new holder.
	Tick time.Duration
	// IdleCheck and HolderTimeout are passed to every partition's
	// projector.
	IdleCheck     time.Duration
	HolderTimeout time.Duration
	// Durable names the consumers and locks of this read model's
	// projection (default "pg-events"); partition i of P is
	// <Durable>-<i>-of-<P>.
	Durable string

	mu      sync.Mutex
	count   int // the layout the running partitions belong to
	running map[int]*partitionRun
	retryAt map[int]time.Time
	// heldElsewhere is when each partition was last found locked by
	// another instance: tried again only after a few ticks, so that an
	// instance below its share moves on to free partitions instead of
	// asking for the same held ones every tick.
	heldElsewhere map[int]time.Time
	resyncs       atomic.Uint64
	quarantined   atomic.Uint64
	takeovers     atomic.Uint64
	fenced        atomic.Uint64
}

// Store is the read model a Partitioned projects into.
type Store interface {
	Sink
	// Pool is the database the read model, and the slot locks, live in.
	Pool() *pgxpool.Pool
	// SlotSink is the sink of the projector of slots: the same read model,
	// keeping a position per slot.
	SlotSink(slots []int) Sink
}

// partitionRun is one partition projected by this instance.
type partitionRun struct {
	p      *Projector
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	// locked is set once the partition holds its slots' locks.
	locked atomic.Bool
}

// PartitionStatus is what this instance projects of a stream.
type PartitionStatus struct {
	// Partitions is the layout: how many partitions the stream has.
	Partitions int
	// Held are the partitions this instance projects.
	Held []int
}

// Status is what this instance projects now.
func (pp *Partitioned) Status() PartitionStatus {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	st := PartitionStatus{Partitions: pp.count}
	for i, r := range pp.running {
		if !r.locked.Load() {
			continue
		}
		select {
		case <-r.done:
		default:
			st.Held = append(st.Held, i)
		}
	}
	slices.Sort(st.Held)
	return st
}

// Stream is the name of the projected stream.
func (pp *Partitioned) Stream() string { return natsx.AuditStream(pp.Region) }

// Resyncs counts the resyncs of every partition this instance ran.
func (pp *Partitioned) Resyncs() uint64 { return pp.resyncs.Load() + pp.sum((*Projector).Resyncs) }

// Quarantined counts the messages every partition this instance ran set
// aside.
func (pp *Partitioned) Quarantined() uint64 {
	return pp.quarantined.Load() + pp.sum((*Projector).Quarantined)
}

// Fenced counts the partitions of this instance whose write was refused
// because another projector had taken their slots.
func (pp *Partitioned) Fenced() uint64 { return pp.fenced.Load() }

// Takeovers counts the partitions this instance started projecting.
func (pp *Partitioned) Takeovers() uint64 { return pp.takeovers.Load() }

func (pp *Partitioned) sum(f func(*Projector) uint64) uint64 {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var n uint64
	for _, r := range pp.running {
		n += f(r.p)
	}
	return n
}

// tick is how often the instance rebalances.
func (pp *Partitioned) tick() time.Duration {
	if pp.Tick <= 0 {
		return time.Second
	}
	return pp.Tick
}

// Run drains the events stored before slots, then keeps this instance's
// share of the partitions running until ctx ends, and stops them, each
// after its current batch.
func (pp *Partitioned) Run(ctx context.Context) error {
	tick := pp.tick()
	pp.mu.Lock()
	pp.running, pp.retryAt, pp.heldElsewhere = map[int]*partitionRun{}, map[int]time.Time{}, map[int]time.Time{}
	pp.mu.Unlock()
	defer pp.stopAll()
	err := repeat.Backoff(ctx, tick, 10*time.Second, func() error { return pp.drainLegacy(ctx) },
		func(err error, _ time.Duration) {
			pp.Log.Error().Err(err).Str("stream", pp.Stream()).Msg("projecting the events stored before slots")
		})
	if err != nil {
		return nil // ctx ended
	}
	for {
		if err := pp.balance(ctx); err != nil && ctx.Err() == nil {
			pp.Log.Warn().Err(err).Str("stream", pp.Stream()).Msg("rebalancing partitions")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tick):
		}
	}
}

// balance reaps partitions that ended, reads the layout and the census,
// and starts or stops partitions so this instance runs its share.
func (pp *Partitioned) balance(ctx context.Context) error {
	count, err := pp.Layout(ctx)
	if err != nil {
		return err
	}
	rank, n, err := pp.Census(ctx)
	if err != nil {
		return err
	}
	// The slots some projector holds now: a partition with one of them is
	// not tried, so an instance below its share goes straight to a free
	// partition instead of cycling through held ones.
	locked, err := lockedKeys(ctx, pp.Store.Pool(), pp.slotLockName())
	if err != nil {
		return err
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if count != pp.count {
		if pp.count != 0 {
			pp.Log.Info().Str("stream", pp.Stream()).Int("from", pp.count).Int("to", count).Msg("partition layout changed")
		}
		pp.stopLocked(func(int) bool { return true })
		pp.count = count
	}
	now := time.Now()
	for i, r := range pp.running {
		select {
		case <-r.done:
		default:
			continue
		}
		delete(pp.running, i)
		pp.resyncs.Add(r.p.Resyncs())
		pp.quarantined.Add(r.p.Quarantined())
		switch {
		case errors.Is(r.err, ErrLocked):
			pp.heldElsewhere[i] = now
		case errors.Is(r.err, ErrFenced):
			// It lost its slots while it could not tell (frozen, cut
			// off); its last write was refused and it holds nothing now.
			pp.fenced.Add(1)
			pp.heldElsewhere[i] = now
			pp.Log.Warn().Err(r.err).Str("stream", pp.Stream()).Int("partition", i).Msg("partition fenced: another instance took its slots")
		case r.err != nil:
			pp.Log.Error().Err(r.err).Str("stream", pp.Stream()).Int("partition", i).Msg("partition projector stopped")
			pp.retryAt[i] = now.Add(2 * time.Second)
		}
	}
	share := (count + n - 1) / n
	first := (rank * share) % count
	preferred := func(i int) bool { return (i-first+count)%count < share }
	if extra := len(pp.running) - share; extra > 0 {
		// Hand back partitions another instance prefers, so a joining
		// instance gets its share.
		pp.stopLocked(func(i int) bool {
			if extra > 0 && !preferred(i) {
				extra--
				return true
			}
			return false
		})
	}
	for k := 0; k < count && len(pp.running) < share; k++ {
		i := (first + k) % count
		if pp.running[i] != nil || now.Before(pp.retryAt[i]) || now.Sub(pp.heldElsewhere[i]) < 3*pp.tick() ||
			slices.ContainsFunc(Slots(i, count), func(s int) bool { _, held := slices.BinarySearch(locked, uint32(s)); return held }) {
			continue
		}
		pp.startLocked(ctx, i, count)
	}
	return nil
}

// startLocked starts partition i of count; it ends at once with ErrLocked
// when another instance holds one of its slots.
func (pp *Partitioned) startLocked(ctx context.Context, i, count int) {
	p := pp.partition(i, count)
	wctx, cancel := context.WithCancel(ctx)
	r := &partitionRun{p: p, cancel: cancel, done: make(chan struct{})}
	pp.running[i] = r
	p.onLocked = func() {
		// Never pp.mu here: stopLocked holds it while waiting for this
		// goroutine.
		r.locked.Store(true)
		pp.takeovers.Add(1)
		pp.Log.Info().Str("stream", pp.Stream()).Int("partition", i).Int("of", count).Msg("projecting partition")
	}
	go func() {
		defer close(r.done)
		r.err = p.Run(wctx)
	}()
}

// stopLocked stops the partitions stop picks and waits for each to finish
// its batch and release its locks.
func (pp *Partitioned) stopLocked(stop func(int) bool) {
	var stopped []*partitionRun
	for i, r := range pp.running {
		if stop(i) {
			r.cancel()
			stopped = append(stopped, r)
			delete(pp.running, i)
		}
	}
	for _, r := range stopped {
		<-r.done
		pp.resyncs.Add(r.p.Resyncs())
		pp.quarantined.Add(r.p.Quarantined())
	}
}

func (pp *Partitioned) stopAll() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.stopLocked(func(int) bool { return true })
}

// Slots are the slots of partition i of count.
func Slots(i, count int) []int {
	var out []int
	for s := i; s < natsx.Slots; s += count {
		out = append(out, s)
	}
	return out
}

// partition is the projector of partition i of count.
func (pp *Partitioned) partition(i, count int) *Projector {
	slots := Slots(i, count)
	return &Projector{
		JS: pp.JS, Pool: pp.Store.Pool(), Stream: pp.Stream(), Log: pp.Log, IdleCheck: pp.IdleCheck, HolderTimeout: pp.HolderTimeout,
		Durable: fmt.Sprintf("%s-%d-of-%d", pp.durable(), i, count),
		Filters: []string{natsx.PartitionSubjects(pp.Region, i, count)},
		Sink:    pp.Store.SlotSink(slots),
		Lock:    slotLocks{name: pp.slotLockName(), slots: slots},
	}
}

func (pp *Partitioned) durable() string {
	if pp.Durable == "" {
		return "pg-events"
	}
	return pp.Durable
}

// legacy is the projector of the events stored before slots, under the
// lock the stream's single projector always took.
func (pp *Partitioned) legacy() *Projector {
	return &Projector{
		JS: pp.JS, Pool: pp.Store.Pool(), Stream: pp.Stream(), Log: pp.Log, IdleCheck: pp.IdleCheck, HolderTimeout: pp.HolderTimeout,
		Durable: pp.durable(),
		Filters: []string{natsx.LegacySubjects(pp.Region)},
		Sink:    pp.Store,
	}
}

// legacyLast is the sequence of the last event stored before slots, or 0.
func (pp *Partitioned) legacyLast(ctx context.Context) (uint64, error) {
	stream, err := pp.JS.Stream(ctx, pp.Stream())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", pp.Stream(), err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, natsx.LegacySubjects(pp.Region))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: last event stored before slots: %w", pp.Stream(), err)
	}
	return m.Sequence, nil
}

// drainLegacy applies every event stored before slots; with none left it
// returns at once.
func (pp *Partitioned) drainLegacy(ctx context.Context) error {
	last, err := pp.legacyLast(ctx)
	if err != nil || last == 0 {
		return err
	}
	return pp.legacy().run(ctx, last, nil)
}

// Rebuild empties the read model with reset and projects the stream again:
// the events stored before slots, then every slot in one partition, until
// the read model holds everything the stream held when Rebuild started.
// It needs every partition's locks: stop auditd first.
func (pp *Partitioned) Rebuild(ctx context.Context, reset func(context.Context) error) error {
	stream, err := pp.JS.Stream(ctx, pp.Stream())
	if err != nil {
		return fmt.Errorf("%s: %w", pp.Stream(), err)
	}
	last := stream.CachedInfo().State.LastSeq
	legacy, err := pp.legacyLast(ctx)
	if err != nil {
		return err
	}
	if legacy == 0 {
		legacy = ^uint64(0) // nothing to project after the reset
	}
	if err := pp.legacy().run(ctx, legacy, reset); err != nil {
		return err
	}
	if last == 0 {
		return nil
	}
	if err := pp.partition(0, 1).run(ctx, last, nil); err != nil {
		if errors.Is(err, ErrLocked) {
			return fmt.Errorf("%s: a running auditd projects it; stop it first: %w", pp.Stream(), err)
		}
		return err
	}
	return nil
}

// slotLockName names the locks of the slots of this read model's
// projection.
func (pp *Partitioned) slotLockName() string {
	return "projector:" + pp.Stream() + ":" + pp.durable() + ":slots"
}

// HeldSlots counts the slots some projector, of any instance, holds the
// lock of: all of them while the region is projected. A slot nobody holds
// is a part of the region nobody projects, even while no event arrives to
// show it as lag.
func (pp *Partitioned) HeldSlots(ctx context.Context) (int, error) {
	slots, err := lockedKeys(ctx, pp.Store.Pool(), pp.slotLockName())
	if err != nil {
		return 0, fmt.Errorf("%s: held slots: %w", pp.Stream(), err)
	}
	return len(slots), nil
}

// slotLocks takes the lock of each slot of a partition without waiting, so
// that two layouts of partitions never project one slot at once.
type slotLocks struct {
	name  string
	slots []int
}

func (l slotLocks) Lock(ctx context.Context, conn *pgx.Conn) error {
	var all bool
	// Every lock that can be taken is; on false the caller closes the
	// session, which releases them.
	err := conn.QueryRow(ctx, `SELECT bool_and(pg_try_advisory_lock(hashtext($1), s)) FROM unnest($2::int[]) AS s`,
		l.name, l.slots).Scan(&all)
	if err != nil {
		return fmt.Errorf("lock slots: %w", err)
	}
	if !all {
		return ErrLocked
	}
	return nil
}

// PartitionCount is the partition layout of the deployment.
func PartitionCount(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT partitions FROM control.projection_layout`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("partition layout: %w", err)
	}
	return n, nil
}

// DefaultPartitionCount is the layout `auditd serve` seeds a new
// deployment with (--projection-partitions): two partitions already use
// both cores of a small machine, and four leave room for a second
// instance without a repartition.
const DefaultPartitionCount = 4

// InitPartitionCount sets the layout to n unless it is set, and returns
// the layout: a flag seeds a new deployment, and never changes one.
func InitPartitionCount(ctx context.Context, pool *pgxpool.Pool, n int) (int, error) {
	if err := validPartitionCount(n); err != nil {
		return 0, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO control.projection_layout (partitions) VALUES ($1) ON CONFLICT DO NOTHING`, n); err != nil {
		return 0, fmt.Errorf("partition layout: %w", err)
	}
	return PartitionCount(ctx, pool)
}

// SetPartitionCount changes the layout to n and returns the one before.
// Running instances stop their partitions of the old layout and start the
// new one's within a tick; slot locks keep the two from ever projecting a
// slot at once, and slot checkpoints let each new partition start where
// its slots stopped.
func SetPartitionCount(ctx context.Context, pool *pgxpool.Pool, n int) (int, error) {
	if err := validPartitionCount(n); err != nil {
		return 0, err
	}
	var old int
	err := pool.QueryRow(ctx, `
		WITH old AS (SELECT partitions FROM control.projection_layout)
		INSERT INTO control.projection_layout (partitions) VALUES ($1)
		ON CONFLICT (singleton) DO UPDATE SET partitions = excluded.partitions, changed_at = now()
		RETURNING coalesce((SELECT partitions FROM old), 0)`, n).Scan(&old)
	if err != nil {
		return 0, fmt.Errorf("partition layout: %w", err)
	}
	return old, nil
}

func validPartitionCount(n int) error {
	if !natsx.ValidPartitionCount(n) {
		return fmt.Errorf("partitions must be a power of two from 1 to %d (1, 2, 4 … %d), not %d", MaxPartitions, MaxPartitions, n)
	}
	return nil
}

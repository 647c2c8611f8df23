// Package leases hands out counted slots on a JetStream key-value bucket, so
// that a limit such as "200 live subscriptions per organization" holds across
// every auditd instance rather than per instance.
//
// A group G with limit N has N slots, the keys G.0 … G.<N-1>. A holder owns a
// slot by creating its key, which JetStream refuses when the key exists
// (the write expects the subject to have no message), so no two holders ever
// share a slot and at most N hold one at a time, whatever the races between
// instances. Finding a free slot lists the group's keys and tries to create a
// free one, retrying on a conflict.
//
// Two kinds of slot share the mechanism:
//
//   - A Lease belongs to a process: its key carries a per-message TTL that a
//     goroutine of the lease refreshes every third of the TTL, so the slot of
//     an instance that died is free again within the TTL. A live
//     subscription holds one.
//   - A claim belongs to a record that outlives any process, such as an
//     export job that another instance may run: its key has no TTL and holds
//     the record's id; whoever finishes the record frees it, and a claimer
//     that finds every slot taken asks whether each slot's record is still
//     alive and frees those that are not, so no slot is lost for good.
package leases

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultTTL is how long a lease outlives its holder's last refresh. A dead
// instance's live subscriptions stop counting within it; refreshes go every
// third of it, so two may fail (a NATS blip) before the lease is lost.
const DefaultTTL = 30 * time.Second

// MaxLimit bounds a group's limit: finding a free slot lists every held one.
const MaxLimit = 10_000

// rounds bounds the passes over a group when other holders keep winning the
// slots seen free, or when stale claims were freed.
const rounds = 3

var (
	// ErrFull says every slot of the group is held: the limit is reached.
	ErrFull = errors.New("every slot of the group is held")
	// ErrLost says a lease expired before its holder could refresh it, so
	// another holder may have its slot now.
	ErrLost = errors.New("the lease expired before it was refreshed")
)

// groupPattern admits dot-separated tokens of the characters a key-value key
// may hold, without wildcards or spaces, so a group's keys never match
// another group's filter.
var groupPattern = regexp.MustCompile(`^[A-Za-z0-9_=/-]+(\.[A-Za-z0-9_=/-]+)*$`)

// maxGroupLen keeps a group's keys well inside a subject's length.
const maxGroupLen = 200

// Bucket hands out slots on one key-value bucket, which must allow per-key
// TTLs (LimitMarkerTTL set); natsx declares it. Its methods are safe for
// concurrent use.
type Bucket struct {
	js   jetstream.JetStream
	name string
	ttl  time.Duration

	mu        sync.Mutex
	kv        jetstream.KeyValue
	markerTTL time.Duration
}

// New returns the slots of bucket on js; leases there expire ttl after their
// last refresh (0 means DefaultTTL). It does no I/O: the bucket is opened on
// first use, so a caller that cannot reach NATS yet still starts.
func New(js jetstream.JetStream, bucket string, ttl time.Duration) *Bucket {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	return &Bucket{js: js, name: bucket, ttl: ttl}
}

// open returns the bucket, opening it on first use and checking that it
// allows per-key TTLs.
func (b *Bucket) open(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	if b.ttl < time.Second || b.ttl%time.Second != 0 {
		return nil, fmt.Errorf("lease ttl %s: JetStream keeps per-key TTLs in whole seconds, at least 1s", b.ttl)
	}
	kv, err := b.js.KeyValue(ctx, b.name)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", b.name, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", b.name, err)
	}
	if st.LimitMarkerTTL() <= 0 {
		return nil, fmt.Errorf("bucket %s does not allow per-key TTLs (no LimitMarkerTTL)", b.name)
	}
	b.kv, b.markerTTL = kv, st.LimitMarkerTTL()
	return kv, nil
}

// Lease is one held slot of a group, kept alive by its own goroutine until
// Release.
type Lease struct {
	b     *Bucket
	key   string
	value []byte

	lost   chan struct{}
	stop   context.CancelFunc
	done   chan struct{}
	rev    uint64 // written by the refresher only; read after done
	isLost bool   // likewise
	once   sync.Once
}

// Acquire takes a free slot of group, of which at most limit may be held at
// once across every process using the bucket. It fails with ErrFull when all
// are held. The lease is refreshed until Release; Lost tells its holder when
// a refresh found it gone.
func (b *Bucket) Acquire(ctx context.Context, group string, limit int) (*Lease, error) {
	// The value only tells holders apart when someone looks at the bucket.
	value := []byte(strconv.FormatUint(rand.Uint64(), 16))
	key, rev, err := b.take(ctx, group, limit, value, true, nil)
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l := &Lease{b: b, key: key, value: value, lost: make(chan struct{}), stop: stop, done: make(chan struct{}), rev: rev}
	go l.refresh(rctx, time.Now().Add(b.ttl))
	return l, nil
}

// Key is the slot's key, <group>.<n>.
func (l *Lease) Key() string { return l.key }

// Lost is closed when the lease was found expired, or could not be refreshed
// before its TTL ran out; its holder should stop what the lease admitted.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// refresh rewrites the key with a fresh TTL every third of the TTL, expecting
// the revision it last wrote: a key that expired meanwhile (and may have been
// taken by another holder) fails the write, and the lease is lost.
func (l *Lease) refresh(ctx context.Context, deadline time.Time) {
	defer close(l.done)
	every := l.b.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	subject := "$KV." + l.b.name + "." + l.key
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, every)
		ack, err := l.b.js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: l.value},
			jetstream.WithExpectLastSequencePerSubject(l.rev), jetstream.WithMsgTTL(l.b.ttl))
		cancel()
		switch {
		case err == nil:
			l.rev, deadline = ack.Sequence, sent.Add(l.b.ttl)
		case ctx.Err() != nil:
			return
		case conflict(err) || time.Now().After(deadline):
			l.isLost = true
			close(l.lost)
			return
		}
	}
}

// Release stops refreshing the lease and frees its slot at once. A lease
// that was lost is not freed: its slot may be another holder's now. Calling
// it again does nothing.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		l.stop()
		<-l.done
		if l.isLost {
			return
		}
		// A refresh cancelled by stop may still have been stored, under a
		// revision the refresher never learnt: free by value, not l.rev.
		err = l.b.freeHolding(ctx, l.key, string(l.value))
	})
	return err
}

// Stale reports whether the record a claim holds (its value) is over, so its
// slot may be freed.
type Stale func(ctx context.Context, value string) (bool, error)

// Claim takes a free slot of group for value, of which at most limit may be
// held at once, until Free(group, value). Unlike a lease it has no TTL: it
// belongs to the record value names, not to this process. When every slot is
// held, stale is asked about each slot's value and the stale ones are freed
// before trying again; ErrFull when none was.
func (b *Bucket) Claim(ctx context.Context, group string, limit int, value string, stale Stale) error {
	if value == "" {
		return errors.New("leases: a claim needs a value")
	}
	_, _, err := b.take(ctx, group, limit, []byte(value), false, stale)
	return err
}

// Free releases the slot of group that holds value, if one does.
func (b *Bucket) Free(ctx context.Context, group, value string) error {
	if err := checkGroup(group, 1); err != nil {
		return err
	}
	kv, err := b.open(ctx)
	if err != nil {
		return err
	}
	held, err := b.held(ctx, kv, group)
	if err != nil {
		return err
	}
	for _, key := range held {
		if err := b.freeHolding(ctx, key, value); err != nil {
			return err
		}
	}
	return nil
}

// freeHolding frees key if it holds value.
func (b *Bucket) freeHolding(ctx context.Context, key, value string) error {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read slot %s: %w", key, err)
	}
	if string(e.Value()) != value {
		return nil
	}
	return b.free(ctx, key, e.Revision())
}

// take finds a free slot of group and creates its key with value, with a TTL
// when ttl is set; when all are held and stale is given, it frees the stale
// ones and looks again.
func (b *Bucket) take(ctx context.Context, group string, limit int, value []byte, ttl bool, stale Stale) (string, uint64, error) {
	if err := checkGroup(group, limit); err != nil {
		return "", 0, err
	}
	kv, err := b.open(ctx)
	if err != nil {
		return "", 0, err
	}
	var opts []jetstream.KVCreateOpt
	if ttl {
		opts = append(opts, jetstream.KeyTTL(b.ttl))
	}
	for range rounds {
		held, err := b.held(ctx, kv, group)
		if err != nil {
			return "", 0, err
		}
		free := freeSlots(limit, held)
		for _, n := range free {
			key := slotKey(group, n)
			rev, err := kv.Create(ctx, key, value, opts...)
			if err == nil {
				return key, rev, nil
			}
			if !conflict(err) {
				return "", 0, fmt.Errorf("create slot %s: %w", key, err)
			}
		}
		if len(free) > 0 {
			continue // others won the slots seen free: look again
		}
		if stale == nil {
			break
		}
		freed, err := b.reclaim(ctx, kv, held, stale)
		if err != nil {
			return "", 0, err
		}
		if freed == 0 {
			break
		}
	}
	return "", 0, fmt.Errorf("group %s, limit %d: %w", group, limit, ErrFull)
}

// held lists the held slots of group, by slot number.
func (b *Bucket) held(ctx context.Context, kv jetstream.KeyValue, group string) (map[int]string, error) {
	lister, err := kv.ListKeysFiltered(ctx, group+".*")
	if err != nil {
		return nil, fmt.Errorf("list slots of %s: %w", group, err)
	}
	defer lister.Stop() //nolint:errcheck // the lister ends with its channel
	out := map[int]string{}
	for key := range lister.Keys() {
		if n, err := strconv.Atoi(key[len(group)+1:]); err == nil && n >= 0 {
			out[n] = key
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list slots of %s: %w", group, err)
	}
	return out, nil
}

// reclaim frees the held slots whose value stale says is over; a slot
// rewritten since it was read is left alone.
func (b *Bucket) reclaim(ctx context.Context, kv jetstream.KeyValue, held map[int]string, stale Stale) (int, error) {
	freed := 0
	for _, key := range held {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			freed++ // freed since the listing
			continue
		}
		if err != nil {
			return freed, fmt.Errorf("read slot %s: %w", key, err)
		}
		over, err := stale(ctx, string(e.Value()))
		if err != nil {
			return freed, err
		}
		if !over {
			continue
		}
		if err := b.free(ctx, key, e.Revision()); err != nil {
			return freed, err
		}
		freed++
	}
	return freed, nil
}

// free purges key if it is still at revision rev; the purge marker itself
// expires, so freed slots leave nothing behind.
func (b *Bucket) free(ctx context.Context, key string, rev uint64) error {
	err := b.kv.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(b.markerTTL))
	if err != nil && !conflict(err) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("free slot %s: %w", key, err)
	}
	return nil
}

// freeSlots lists the slots below limit not in held, in random order so
// concurrent holders rarely race for the same one.
func freeSlots(limit int, held map[int]string) []int {
	free := make([]int, 0, limit)
	for n := range limit {
		if _, ok := held[n]; !ok {
			free = append(free, n)
		}
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	return free
}

func slotKey(group string, n int) string { return group + "." + strconv.Itoa(n) }

// checkGroup refuses a group that would not make keys of its own, and a
// limit outside (0, MaxLimit].
func checkGroup(group string, limit int) error {
	switch {
	case group == "":
		return errors.New("leases: empty group")
	case len(group) > maxGroupLen || !groupPattern.MatchString(group):
		return fmt.Errorf("leases: group %q is not dot-separated tokens of letters, digits and -_=/", group)
	case limit <= 0 || limit > MaxLimit:
		return fmt.Errorf("leases: limit %d of group %q is not between 1 and %d", limit, group, MaxLimit)
	}
	return nil
}

// conflict reports whether err is JetStream refusing a write whose expected
// last revision did not match: the key exists, or changed meanwhile.
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

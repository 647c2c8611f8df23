// Package delivery runs log streams: the Engine delivers each stream's
// events from its region's JetStream stream to its destination, in order
// and at least once, one deliverer per stream across every instance; the
// Service is what the API asks to create, change, pause, resume, delete
// and test streams, recording each change in the organization's own log.
//
// How an event reaches a destination: the deliverer whose token the
// stream's row holds (its claim, made with compare-and-set, so one wins)
// reads the org's subjects of AUDIT_<REGION> through an ordered consumer that starts
// right after the stream's stored position, keeps the events its filter
// matches, fills in the leaf index of those the read model has projected,
// and hands batches to the destination's logstream.Sender. After each send
// it stores the new position (the last sequence delivered or filtered out)
// in Postgres (streamstore). A failed send keeps the position, backs off
// with jitter and sends the same events again, however long it takes; a
// new deliverer, after a restart or when an instance is lost, starts from
// the stored position, so events sent but not yet recorded are sent again:
// at least once, each duplicate with the same event id.
//
// A claim names the instance's member id (package projector's membership,
// a Postgres session lock), so an instance that died or froze past the
// holder timeout leaves the census and its streams are any instance's to
// claim; keeping a claim costs nothing while a stream is idle.
package delivery

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/streamstore"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/ocsf"
	"github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/secretbox"
)

// Defaults of Config.
const (
	DefaultTick       = 5 * time.Second
	DefaultPauseAfter = 72 * time.Hour
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultFetchWait  = time.Second
	// DefaultMaxEvents is how many events a deliverer gathers before it
	// sends; the Sender cuts them further to its destination's limits.
	DefaultMaxEvents = 500
)

// LeafIndexes returns the leaf index of each of keys of org that region's
// read model has projected, by id; events not yet projected are absent.
type LeafIndexes func(ctx context.Context, r domain.Region, org string, keys []streamstore.LeafKey) (map[string]int64, error)

// OwnRecorder records the audit log's events about itself.
type OwnRecorder interface {
	RecordOwn(ctx context.Context, e *domain.Event) (ingest.Status, error)
}

// Members says which instances are alive: this one's member id and the
// ids of every live instance, itself included, sorted.
type Members interface {
	Alive(ctx context.Context) (self uint32, alive []uint32, err error)
}

// Config is what an Engine needs. Store, JS, Members, Box, Policy and
// Senders are required.
type Config struct {
	Store *streamstore.Store
	JS    jetstream.JetStream
	// Members are the instances sharing the streams (the projector's
	// membership): a stream whose holder is not among them is free, and
	// each instance delivers at most its share, the streams over the
	// instances rounded up, so streams spread over instances instead of
	// going to whichever looked first.
	Members Members
	Box     *secretbox.Box
	Policy  *egress.Policy
	Senders SenderFactory
	// Options are the base of each sender's options (RootCAs, time-outs,
	// Limits); OrgID, StreamID, Policy and Product are set per stream.
	Options logstream.Options
	Product ocsf.Product
	// Leaves fills in leaf indexes; nil delivers them as null.
	Leaves LeafIndexes
	// Own records auditd pausing a stream; nil records nothing.
	Own OwnRecorder
	// Tick is how often the engine looks for streams without a deliverer.
	Tick time.Duration
	// PauseAfter pauses a stream that has failed for this long
	// (AUDITD_LOG_STREAM_PAUSE_AFTER); negative never.
	PauseAfter time.Duration
	// MinBackoff and MaxBackoff bound the waits between failed sends.
	MinBackoff, MaxBackoff time.Duration
	// FetchWait is how long a deliverer waits for new events before it
	// sends what it has.
	FetchWait time.Duration
	MaxEvents int
	Now       func() time.Time
	Log       zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	if c.PauseAfter == 0 {
		c.PauseAfter = DefaultPauseAfter
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.FetchWait <= 0 {
		c.FetchWait = DefaultFetchWait
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Engine delivers the log streams this instance has claimed, and claims
// its share of those nobody alive holds. Build it with NewEngine.
type Engine struct {
	cfg     Config
	mu      sync.Mutex
	running map[string]*worker
	wg      sync.WaitGroup
	// nudge asks Run to look for streams now.
	nudge chan struct{}
}

type worker struct {
	version int64
	// holder is the deliverer's token, claimed in place of from, the
	// holder listed when it started.
	holder, from string
	cancel       context.CancelFunc
	done         chan struct{}
}

// NewEngine checks cfg and returns an engine that does nothing until Run.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.JS == nil || cfg.Members == nil || cfg.Box == nil || cfg.Policy == nil || cfg.Senders == nil {
		return nil, errors.New("delivery: Store, JS, Members, Box, Policy and Senders are required")
	}
	return &Engine{cfg: cfg.withDefaults(), running: map[string]*worker{}, nudge: make(chan struct{}, 1)}, nil
}

// Run delivers until ctx ends, then stops every deliverer, each after its
// current send, and releases their claims.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		e.reconcile(ctx)
		select {
		case <-ctx.Done():
			e.mu.Lock()
			for _, w := range e.running {
				w.cancel()
			}
			e.mu.Unlock()
			e.wg.Wait()
			return
		case <-t.C:
		case <-e.nudge:
		}
	}
}

// Running is how many deliverers this instance runs.
func (e *Engine) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// Nudge has Run look for streams to deliver, or stop, now rather than at
// the next tick, as after a stream is created, changed or resumed. It does
// not wait; the deliverers belong to Run, not to the caller's context.
func (e *Engine) Nudge(context.Context) {
	select {
	case e.nudge <- struct{}{}:
	default:
	}
}

// holderToken is a new deliverer's token: its instance's member id, so
// others can tell whether its holder is alive, and a random part, so a
// deliverer that was replaced can tell it no longer holds the stream.
func holderToken(member uint32) string {
	return fmt.Sprintf("%08x.%s", member, rand.Text())
}

// holderMember is the member id in token, false for none (no holder, or
// one written before claims named their instance).
func holderMember(token string) (uint32, bool) {
	hex, _, ok := strings.Cut(token, ".")
	if !ok || len(hex) != 8 {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 32)
	return uint32(id), err == nil
}

// reconcile starts a deliverer for each delivering stream this instance
// may claim, up to its share, and stops those of streams that changed,
// paused, went away or were claimed by another instance.
func (e *Engine) reconcile(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	streams, err := e.cfg.Store.Delivering(ctx)
	if err != nil {
		e.cfg.Log.Warn().Err(err).Msg("log streams: listing streams to deliver failed")
		return
	}
	self, alive, err := e.cfg.Members.Alive(ctx)
	if err != nil {
		// Without the census no claim can be judged free: keep what
		// runs, claim nothing new.
		e.cfg.Log.Warn().Err(err).Msg("log streams: counting instances failed; claiming no stream until it works")
		alive = nil
	}
	listed := make(map[string]streamstore.Ref, len(streams))
	for _, s := range streams {
		listed[s.ID] = s
	}
	share := (len(streams) + max(len(alive), 1) - 1) / max(len(alive), 1)
	e.mu.Lock()
	var stop []*worker
	kept := 0
	for id, w := range e.running {
		s, ok := listed[id]
		if !ok || s.Version != w.version || (s.Holder != w.holder && s.Holder != w.from) {
			// Changed, paused or deleted; or claimed by another
			// instance, which happens only once this one left the
			// census (it froze, or lost its membership session). A
			// listing from before the deliverer's claim still shows
			// from.
			stop = append(stop, w)
			continue
		}
		// Past its share (an instance joined), this one hands streams
		// back: it stops them after their current send and releases
		// their claims, and the instances below their share take them
		// over from the position stored, as after any takeover.
		if kept++; kept > share {
			stop = append(stop, w)
		}
	}
	e.mu.Unlock()
	// All at once: each ends after its current send, and one slow
	// destination must not hold back the others' hand-over.
	for _, w := range stop {
		w.cancel()
	}
	for _, w := range stop {
		<-w.done
	}
	if alive == nil {
		return
	}
	for _, s := range streams {
		e.mu.Lock()
		_, ok := e.running[s.ID]
		full := len(e.running) >= share
		e.mu.Unlock()
		if ok {
			continue
		}
		m, held := holderMember(s.Holder)
		if held && m != self {
			if _, live := slices.BinarySearch(alive, m); live {
				continue // another instance delivers it
			}
		}
		if !full {
			e.start(ctx, s, self)
			continue
		}
		if held && m == self {
			// Claimed here by a deliverer that has stopped and could not
			// release it: no other instance would take it while this one
			// lives, so release it again.
			if err := e.cfg.Store.Release(ctx, s.ID, s.Holder); err != nil {
				e.cfg.Log.Warn().Err(err).Str("log_stream", s.ID).Msg("log streams: releasing a stream failed; trying again at the next tick")
			}
		}
	}
}

// start runs a deliverer for stream s, which claims it from the holder
// listed.
func (e *Engine) start(ctx context.Context, s streamstore.Ref, self uint32) {
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{version: s.Version, holder: holderToken(self), from: s.Holder, cancel: cancel, done: make(chan struct{})}
	e.mu.Lock()
	e.running[s.ID] = w
	e.mu.Unlock()
	e.wg.Go(func() {
		defer close(w.done)
		defer func() {
			e.mu.Lock()
			if e.running[s.ID] == w {
				delete(e.running, s.ID)
			}
			e.mu.Unlock()
		}()
		defer cancel()
		d := &deliverer{e: e, s: &streamstore.Stream{ID: s.ID, OrgID: s.OrgID, Version: s.Version},
			log: e.cfg.Log.With().Str("log_stream", s.ID).Str("org_id", s.OrgID).Logger()}
		d.run(wctx, w.from, w.holder)
	})
}

// deliverer delivers one stream while it holds its claim.
type deliverer struct {
	e   *Engine
	s   *streamstore.Stream
	log zerolog.Logger
	// seen is the last sequence read; recorded the last position stored.
	seen, recorded uint64
	lag            uint64
	failures       int
	// holder is this deliverer's token in the stream's row.
	holder string
	// checkGone asks, at the next message read after a jump in sequence,
	// whether retention removed messages after seen before they were
	// read; checkedGone is when it last looked.
	checkGone   bool
	checkedGone time.Time
}

// goneCheckEvery is how often a deliverer with events waiting looks for
// messages retention removed before it read them; one that starts or
// whose send failed looks at its next read.
const goneCheckEvery = time.Minute

// run claims the stream from the holder listed (from) as holder, and
// delivers until ctx ends or the claim is lost.
func (d *deliverer) run(ctx context.Context, from, holder string) {
	s, err := d.e.cfg.Store.Claim(ctx, d.s.ID, d.s.Version, from, holder)
	if err != nil {
		return // changed, paused, deleted or claimed since it was listed
	}
	d.holder = holder
	defer func() {
		// Another instance may claim it at once, rather than once this
		// one has left the census.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.e.cfg.Store.Release(rctx, d.s.ID, d.holder); err != nil {
			d.log.Warn().Err(err).Msg("log streams: releasing a stream failed; the engine releases it at a later tick")
		}
	}()
	d.s = s
	sender, filter, q, err := d.prepare()
	if err != nil {
		// The stored configuration does not work (a key removed from
		// AUDITD_ENCRYPTION_KEY_PREVIOUS, say): say so, and try again at
		// a later tick.
		d.log.Error().Err(err).Msg("log streams: cannot build the destination")
		d.record(ctx, streamstore.Progress{Position: d.s.Position, Err: "the destination cannot be set up: " + safeMessage(err)})
		d.wait(ctx, d.e.cfg.MaxBackoff, 0)
		return
	}
	cons, err := d.consumer(ctx)
	var msgs jetstream.MessagesContext
	if err == nil {
		msgs, err = cons.Messages(jetstream.PullMaxMessages(d.e.cfg.MaxEvents),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	}
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("log streams: consumer")
		}
		return
	}
	defer msgs.Stop()
	d.seen, d.recorded = d.s.Position, d.s.Position
	d.checkGone = true
	var pending []*domain.Event
	for ctx.Err() == nil {
		if d.lag > 0 && time.Since(d.checkedGone) >= goneCheckEvery {
			d.checkGone = true
		}
		if len(pending) < d.e.cfg.MaxEvents {
			evs, err := d.fetch(ctx, msgs, d.e.cfg.MaxEvents-len(pending), len(pending) == 0, filter, q)
			pending = append(pending, evs...)
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return // the next tick starts another deliverer
			}
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn().Err(err).Msg("log streams: reading the stream failed")
					d.wait(ctx, d.e.cfg.MinBackoff, 0)
				}
				continue
			}
		}
		if len(pending) == 0 {
			if d.seen > d.recorded {
				// Only filtered-out events: move past them.
				if !d.record(ctx, streamstore.Progress{Position: d.seen, Lag: d.lag}) {
					return
				}
			}
			continue
		}
		// The holder check and the leaf lookup are two round trips to
		// Postgres that do not depend on each other: both are done, at
		// once, before the send.
		var (
			holds    bool
			holdsErr error
			checked  = make(chan struct{})
		)
		go func() {
			defer close(checked)
			holds, holdsErr = d.e.cfg.Store.Holds(ctx, d.s.ID, d.s.Version, d.holder)
		}()
		d.fillLeaves(ctx, pending)
		<-checked
		if holdsErr != nil || !holds {
			if holdsErr == nil {
				d.log.Warn().Msg("log streams: another deliverer took the stream over; stopping")
			}
			return
		}
		res, sendErr := sender.Send(ctx, pending)
		if ctx.Err() != nil && sendErr != nil {
			return // stopping: the position stays, the next deliverer resends
		}
		n := min(max(res.Delivered, 0), len(pending))
		p := streamstore.Progress{Delivered: n, Lag: d.lag + uint64(len(pending)-n)}
		if n > 0 {
			p.LastEventID = pending[n-1].ID
		}
		if n == len(pending) {
			p.Position = d.seen
		} else {
			p.Position = pending[n].Seq - 1
		}
		pending = pending[n:]
		if sendErr != nil {
			p.Err = safeMessage(sendErr)
		}
		if !d.record(ctx, p) {
			return
		}
		if sendErr == nil {
			d.failures = 0
			continue
		}
		d.failures++
		d.checkGone = true
		d.log.Warn().Str("error", p.Err).Str("class", logstream.ClassOf(sendErr).String()).Int("failures", d.failures).
			Msg("log streams: delivery failed; retrying")
		if d.pauseIfFailingTooLong(ctx) {
			return
		}
		var retryAfter time.Duration
		var le *logstream.Error
		if errors.As(sendErr, &le) {
			retryAfter = le.RetryAfter
		}
		if logstream.ClassOf(sendErr) == logstream.Permanent {
			// It will not pass before someone changes something; an
			// update restarts the deliverer at once.
			d.wait(ctx, d.e.cfg.MaxBackoff, retryAfter)
		} else {
			d.wait(ctx, backoff(d.failures, d.e.cfg.MinBackoff, d.e.cfg.MaxBackoff), retryAfter)
		}
	}
}

// prepare builds the stream's sender and filter.
func (d *deliverer) prepare() (logstream.Sender, domain.Filter, *query.Query, error) {
	dest, err := open(d.e.cfg.Box, d.s.OrgID, d.s.ID, d.s.Kind, d.s.Config, d.s.Sealed)
	if err != nil {
		return nil, domain.Filter{}, nil, err
	}
	opts := d.e.cfg.Options
	opts.OrgID, opts.StreamID, opts.Policy, opts.Product = d.s.OrgID, d.s.ID, d.e.cfg.Policy, d.e.cfg.Product
	sender, err := d.e.cfg.Senders(dest, opts)
	if err != nil {
		return nil, domain.Filter{}, nil, err
	}
	filter := d.s.Filter.Domain()
	q, err := query.FromFilter(filter)
	if err != nil {
		return nil, domain.Filter{}, nil, err
	}
	return sender, filter, q, nil
}

// consumer reads the org's subjects of the region's stream from right
// after the position, or from the stream's start time before the first.
func (d *deliverer) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{natsx.OrgSubjects(d.s.Region, d.s.OrgID)}}
	if d.s.Position > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, d.s.Position+1
	} else {
		t := d.s.StartAt
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return d.e.cfg.JS.OrderedConsumer(ctx, natsx.AuditStream(d.s.Region), cfg)
}

// An idle deliverer's pull request lasts pullExpiry, and the server sends
// a heartbeat every pullHeartbeat while it waits: with a thousand idle
// streams, the nats.go defaults for ordered consumers (30 s, 5 s) cost 230
// messages a second. A reconnection renews the request at once; a missing
// heartbeat (two in a row) has the ordered consumer recreated.
const (
	pullExpiry    = time.Minute
	pullHeartbeat = 20 * time.Second
)

// gatherGap is how long a deliverer that has read some messages waits for
// the next before it sends what it has (at most FetchWait in all).
const gatherGap = 50 * time.Millisecond

// fetch reads up to n messages from the consumer's message iterator (one
// pull request kept open, with heartbeats: an ordered consumer's Fetch
// would recreate the consumer on the server at every call) and returns
// the events the filter keeps. It waits for the first message as long as
// ctx lasts when idle, at most FetchWait when events wait to be sent
// again; after the first it takes those that follow until n, until
// FetchWait has passed, or until none comes for gatherGap.
func (d *deliverer) fetch(ctx context.Context, msgs jetstream.MessagesContext, n int, idle bool, filter domain.Filter, q *query.Query) ([]*domain.Event, error) {
	var out []*domain.Event
	var until time.Time
	for read := 0; read < n; read++ {
		opt := jetstream.NextMaxWait(d.e.cfg.FetchWait)
		switch {
		case read > 0:
			left := time.Until(until)
			if left <= 0 {
				return out, ctx.Err()
			}
			opt = jetstream.NextMaxWait(min(left, gatherGap))
		case idle:
			opt = jetstream.NextContext(ctx)
		}
		msg, err := msgs.Next(opt)
		if errors.Is(err, nats.ErrTimeout) {
			return out, ctx.Err()
		}
		if err != nil {
			return out, err
		}
		if read == 0 {
			until = time.Now().Add(d.e.cfg.FetchWait)
		}
		md, err := msg.Metadata()
		if err != nil {
			return out, err
		}
		if md.Sequence.Stream <= d.seen {
			continue
		}
		if d.checkGone {
			d.countGone(ctx, md.Sequence.Stream)
		}
		d.seen, d.lag = md.Sequence.Stream, md.NumPending
		var ev domain.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			d.log.Error().Err(err).Uint64("seq", md.Sequence.Stream).Msg("log streams: an event does not decode; passed over")
			continue
		}
		ev.Seq = md.Sequence.Stream
		if ev.OrgID != d.s.OrgID || !filter.Matches(&ev) || !q.Match(&ev) {
			continue
		}
		out = append(out, &ev)
	}
	return out, ctx.Err()
}

// countGone is called with next, the sequence of the message read after
// seen, while checkGone is set, and stays set until it has looked at a
// jump. A jump (next > seen+1) passes over other
// orgs' messages, or messages retention removed before the consumer came
// to them: if the region's stream now begins after seen+1, and next is
// not a message fetched before the removal (next >= its first sequence),
// the messages after seen up to the first kept are gone unread, and the
// org's among them are lost. The stream's row counts them
// (streamstore.Skip) rather than pass over them silently. A stream that
// has read nothing yet (position 0) has no sequence to compare with; its
// start time was checked against the stream's oldest event when it was
// created.
func (d *deliverer) countGone(ctx context.Context, next uint64) {
	switch {
	case d.seen == 0:
		d.checkGone = false
		return
	case next == d.seen+1:
		return // nothing between; a jump may come later
	}
	d.checkedGone = time.Now()
	st, err := d.e.cfg.JS.Stream(ctx, natsx.AuditStream(d.s.Region))
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = st.Info(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("log streams: reading where the region's stream begins failed")
		}
		return // look again at the next read
	}
	first := info.State.FirstSeq
	switch {
	case first <= d.seen+1:
		d.checkGone = false
		return
	case next < first:
		return // read before the removal; look again at the next
	}
	d.checkGone = false
	g := streamstore.Gone{From: d.seen, Through: first - 1, Before: info.State.FirstTime}
	added, err := d.e.cfg.Store.Skip(ctx, d.s.ID, g, d.e.cfg.Now())
	if err != nil {
		d.log.Error().Err(err).Uint64("after_seq", g.From).Uint64("through_seq", g.Through).
			Msg("log streams: retention removed events before this stream delivered them, and recording so failed")
		return
	}
	if added > 0 {
		d.log.Error().Uint64("after_seq", g.From).Uint64("through_seq", g.Through).Int64("messages", added).
			Time("oldest_kept", g.Before).
			Msg("log streams: retention removed events of the region before this stream delivered them; the org's among them are lost")
	}
}

// fillLeaves sets the leaf index of each event the read model has
// projected; the others go out with a null leafIndex.
func (d *deliverer) fillLeaves(ctx context.Context, evs []*domain.Event) {
	if d.e.cfg.Leaves == nil {
		return
	}
	var keys []streamstore.LeafKey
	for _, ev := range evs {
		if ev.LeafIndex == nil {
			keys = append(keys, streamstore.LeafKey{ID: ev.ID, OccurredAt: ev.OccurredAt})
		}
	}
	if len(keys) == 0 {
		return
	}
	leaves, err := d.e.cfg.Leaves(ctx, d.s.Region, d.s.OrgID, keys)
	if err != nil {
		d.log.Warn().Err(err).Msg("log streams: reading leaf indexes failed; sending without")
		return
	}
	for _, ev := range evs {
		if l, ok := leaves[ev.ID]; ok && ev.LeafIndex == nil {
			ev.LeafIndex = &l
		}
	}
}

// record stores p and says whether the deliverer should go on: not when
// the stream was changed, paused or deleted meanwhile.
func (d *deliverer) record(ctx context.Context, p streamstore.Progress) bool {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	s, stale, err := d.e.cfg.Store.Record(rctx, d.s.ID, d.s.Version, p, d.e.cfg.Now())
	if err != nil {
		// The position is not lost: the events are sent again.
		d.log.Warn().Err(err).Msg("log streams: recording progress failed")
		return ctx.Err() == nil
	}
	d.recorded = max(d.recorded, p.Position)
	if s != nil {
		d.s.FailingSince, d.s.Name = s.FailingSince, s.Name
	}
	return !stale && ctx.Err() == nil
}

// pauseIfFailingTooLong pauses the stream, as auditd, once it has failed
// for PauseAfter, and records so in the org's log.
func (d *deliverer) pauseIfFailingTooLong(ctx context.Context) bool {
	pa := d.e.cfg.PauseAfter
	if pa < 0 || d.s.FailingSince == nil || d.e.cfg.Now().Sub(*d.s.FailingSince) < pa {
		return false
	}
	s, changed, err := d.e.cfg.Store.Pause(ctx, d.s.OrgID, d.s.ID, streamstore.PausedByAuditd, d.e.cfg.Now())
	if err != nil {
		d.log.Warn().Err(err).Msg("log streams: pausing a failing stream failed")
		return false
	}
	d.log.Warn().Dur("failing_for", d.e.cfg.Now().Sub(*d.s.FailingSince)).Msg("log streams: paused after failing too long")
	if changed && d.e.cfg.Own != nil {
		if err := recordChange(ctx, d.e.cfg.Own, domain.TypeAuditLogStreamPaused, s, systemActor, d.e.cfg.Now(),
			map[string]any{"pausedBy": streamstore.PausedByAuditd, "pauseReason": "failing since " + d.s.FailingSince.UTC().Format(time.RFC3339)}); err != nil {
			d.log.Warn().Err(err).Msg("log streams: recording the pause failed")
		}
	}
	return true
}

// wait sleeps d, or retryAfter if the destination asked for longer, until
// ctx ends.
func (d *deliverer) wait(ctx context.Context, wait, retryAfter time.Duration) {
	t := time.NewTimer(max(wait, retryAfter))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// backoff is the wait after the n-th failure in a row: doubling from lo,
// capped at hi, with half of it random, so streams failing together do
// not retry together.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + mrand.N(d/2+1)
}

// safeMessage is err's message for admins: a logstream.Error's own, which
// never holds secrets, or a generic one.
func safeMessage(err error) string {
	var le *logstream.Error
	var de *domain.Error
	switch {
	case errors.As(err, &le):
		return le.Error()
	case errors.As(err, &de):
		return de.Error()
	case errors.Is(err, secretbox.ErrOpen):
		return "the destination's secrets do not open with the configured AUDITD_ENCRYPTION_KEY"
	}
	return "the delivery failed"
}

// Package live delivers an organization's events as they are stored: each
// subscription reads its region's stream through its own JetStream ordered
// consumer, filtered by subject on the server and by the full filter here.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/leases"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/query"
)

// Limits bound what live subscribers may hold.
type Limits struct {
	// PerConnection bounds the subscriptions of one websocket connection.
	PerConnection int
	// PerOrg bounds one organization's subscriptions across every
	// instance: each holds a lease of the shared leases bucket.
	PerOrg int
	// Stall is how long a subscriber may leave an event untaken before it
	// is dropped as a slow consumer.
	Stall time.Duration
}

// Default limits.
const (
	DefaultPerConnection = 20
	DefaultPerOrg        = 200
	DefaultStall         = 5 * time.Second
	// maxFilterSubjects bounds the subjects a filter is narrowed to on the
	// server; a wider filter reads the org's whole subject space.
	maxFilterSubjects = 64
)

func (l Limits) withDefaults() Limits {
	if l.PerConnection <= 0 {
		l.PerConnection = DefaultPerConnection
	}
	if l.PerOrg <= 0 {
		l.PerOrg = DefaultPerOrg
	}
	if l.Stall <= 0 {
		l.Stall = DefaultStall
	}
	return l
}

// SettingsReader reads an organization's settings, for its region.
type SettingsReader interface {
	Get(ctx context.Context, org string) (domain.Settings, error)
}

// Feed hands out subscriptions and enforces the limits.
type Feed struct {
	js       jetstream.JetStream
	settings SettingsReader
	limits   Limits
	leases   *leases.Bucket
	log      zerolog.Logger

	mu     sync.Mutex
	active int
}

// NewFeed returns a feed over the regional streams of js, which counts each
// organization's subscriptions in natsx.LeasesBucket.
func NewFeed(js jetstream.JetStream, settings SettingsReader, limits Limits, log zerolog.Logger) *Feed {
	return &Feed{js: js, settings: settings, limits: limits.withDefaults(), log: log,
		leases: leases.New(js, natsx.LeasesBucket, leases.DefaultTTL)}
}

// Active is the number of subscriptions being served, each with its
// consumer in place.
func (f *Feed) Active() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// connection counts the subscriptions of one websocket connection.
type connection struct {
	mu sync.Mutex
	n  int
}

type connKey struct{}

// WithConnection scopes ctx to one client connection, whose subscriptions
// count against Limits.PerConnection.
func WithConnection(ctx context.Context) context.Context {
	return context.WithValue(ctx, connKey{}, &connection{})
}

// Subscribe starts delivering org's events matching filter on the returned
// channel, each converted by conv. Without after, delivery starts with the
// events stored from now on; with after, right after that stream position.
// The channel closes when ctx ends or the subscriber is dropped; a drop is
// reported to dropped first, with a SLOW_CONSUMER error.
func Subscribe[T any](ctx context.Context, f *Feed, org string, filter domain.Filter, after uint64,
	conv func(*domain.Event) T, dropped func(error)) (<-chan T, error) {
	if err := filter.Validate(); err != nil {
		return nil, err
	}
	q, err := query.FromFilter(filter)
	if err != nil {
		return nil, err
	}
	s, err := f.settings.Get(ctx, org)
	if err != nil {
		return nil, err
	}
	if !s.Region.Valid() {
		return nil, domain.Errorf(domain.CodeAuditLogDisabled, "", "the audit log of this organization was never enabled")
	}
	release, lost, err := f.reserve(ctx, org)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: Subjects(s.Region, org, filter),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// The consumer is deleted when the subscription ends; this only
		// reaps one whose instance died.
		InactiveThreshold: 30 * time.Second,
	}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := f.js.OrderedConsumer(ctx, natsx.AuditStream(s.Region), cfg)
	if err != nil {
		release()
		return nil, err
	}
	msgs, err := cons.Messages()
	if err != nil {
		release()
		return nil, err
	}
	f.mu.Lock()
	f.active++
	f.mu.Unlock()

	out := make(chan T)
	go func() {
		defer func() {
			msgs.Stop()
			f.deleteConsumer(natsx.AuditStream(s.Region), cons)
			close(out)
			// Counted until its lease is given back, so that Active falling
			// means another instance may admit the subscription it freed.
			release()
			f.mu.Lock()
			f.active--
			f.mu.Unlock()
		}()
		// Next must wake when the subscriber goes or the lease is lost,
		// not only on a message.
		stop := context.AfterFunc(ctx, msgs.Stop)
		defer stop()
		ended := make(chan struct{})
		defer close(ended)
		go func() {
			select {
			case <-lost:
				msgs.Stop()
			case <-ended:
			}
		}()
		stall := time.NewTimer(f.limits.Stall)
		defer stall.Stop()
		for {
			msg, err := msgs.Next()
			if err != nil {
				select {
				case <-lost:
					f.dropLost(org, dropped)
				default:
					if ctx.Err() == nil {
						f.log.Warn().Err(err).Str("org_id", org).Msg("live subscription ended")
					}
				}
				return
			}
			e, ok := decode(msg)
			if !ok || e.OrgID != org || !filter.Matches(e) || !q.Match(e) {
				continue
			}
			stall.Reset(f.limits.Stall)
			select {
			case out <- conv(e):
			case <-ctx.Done():
				return
			case <-lost:
				f.dropLost(org, dropped)
				return
			case <-stall.C:
				f.log.Warn().Str("org_id", org).Uint64("seq", e.Seq).Msg("slow live subscriber dropped")
				dropped(domain.Errorf(domain.CodeSlowConsumer, "",
					"the subscriber took no event for %s and was dropped; subscribe again with after set to the liveCursor of the last event received",
					f.limits.Stall))
				return
			}
		}
	}()
	return out, nil
}

// reserve counts a new subscription against the connection's limit, on
// this instance, and the organization's, across instances: a lease of the
// organization's group in the leases bucket. release gives both back; lost
// is closed if the lease expires under the subscription, which must then
// end, or the organization could exceed its limit.
func (f *Feed) reserve(ctx context.Context, org string) (release func(), lost <-chan struct{}, err error) {
	conn, _ := ctx.Value(connKey{}).(*connection)
	if conn != nil {
		conn.mu.Lock()
		if conn.n >= f.limits.PerConnection {
			conn.mu.Unlock()
			return nil, nil, domain.Errorf(domain.CodeRateLimited, "",
				"a connection may hold at most %d live subscriptions", f.limits.PerConnection)
		}
		conn.n++
		conn.mu.Unlock()
	}
	unconn := func() {
		if conn != nil {
			conn.mu.Lock()
			conn.n--
			conn.mu.Unlock()
		}
	}
	lease, err := f.leases.Acquire(ctx, "live."+org, f.limits.PerOrg)
	switch {
	case errors.Is(err, leases.ErrFull):
		unconn()
		return nil, nil, domain.Errorf(domain.CodeRateLimited, "",
			"this organization already holds %d live subscriptions", f.limits.PerOrg)
	case err != nil:
		unconn()
		// Without the shared count the limit cannot be kept: refuse rather
		// than admit without one.
		return nil, nil, domain.Unavailable("live subscriptions cannot be counted just now; try again", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			unconn()
			// Ending subscriptions must free their slot even as ctx ends;
			// one that cannot be freed now expires with its TTL.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := lease.Release(ctx); err != nil {
				f.log.Debug().Err(err).Str("lease", lease.Key()).Msg("release live subscription lease")
			}
		})
	}, lease.Lost(), nil
}

// dropLost tells a subscriber whose lease expired (NATS unreachable for
// longer than the lease's TTL) that it was ended and may subscribe again.
func (f *Feed) dropLost(org string, dropped func(error)) {
	f.log.Warn().Str("org_id", org).Msg("live subscription ended: its lease was lost")
	dropped(domain.Unavailable("the subscription lost its place in the organization's count; subscribe again with after set to the liveCursor of the last event received", leases.ErrLost))
}

// deleteConsumer removes an ended subscription's consumer from the server
// at once rather than after its inactivity threshold.
func (f *Feed) deleteConsumer(stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.js.DeleteConsumer(ctx, stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		f.log.Debug().Err(err).Str("consumer", info.Name).Msg("delete live consumer")
	}
}

func decode(msg jetstream.Msg) (*domain.Event, bool) {
	var e domain.Event
	if json.Unmarshal(msg.Data(), &e) != nil {
		return nil, false
	}
	md, err := msg.Metadata()
	if err != nil {
		return nil, false
	}
	e.Seq, e.Record = md.Sequence.Stream, msg.Data()
	return &e, true
}

// Subjects narrows a subscription to the subjects its filter can match, so
// the server sends only those: audit.<region>.<org>.<source>.<type> and the
// same with a slot, for each source and type combination, or the org's whole space when the filter is
// too wide to list.
func Subjects(r domain.Region, org string, f domain.Filter) []string {
	types := filterTypes(f)
	if len(f.Sources) == 0 && types == nil || max(len(f.Sources), 1)*max(len(types), 1) > maxFilterSubjects {
		return []string{natsx.OrgSubjects(r, org)}
	}
	sources := []string{"*"}
	if len(f.Sources) > 0 {
		sources = sources[:0]
		for _, s := range f.Sources {
			sources = append(sources, string(s))
		}
	}
	if types == nil {
		types = []string{"*"}
	}
	if len(types) == 0 {
		// Categories and types that share nothing: nothing can match, but
		// a consumer needs a subject; this one has no events.
		types = []string{"_NONE_"}
	}
	prefix := "audit." + r.Lower() + "." + org + "."
	out := make([]string, 0, 2*len(sources)*len(types))
	for _, s := range sources {
		for _, t := range types {
			// The stream appends the org's slot; events stored before it
			// did have none.
			out = append(out, prefix+s+"."+t, prefix+s+"."+t+".>")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// filterTypes lists the event types a filter admits, or nil for all.
func filterTypes(f domain.Filter) []string {
	if len(f.Types) == 0 && len(f.Categories) == 0 {
		return nil
	}
	types := []string{}
	for _, t := range domain.Catalog() {
		if len(f.Types) > 0 && !slices.Contains(f.Types, t.Type) {
			continue
		}
		if len(f.Categories) > 0 && !slices.Contains(f.Categories, t.Category) {
			continue
		}
		if slices.Contains(f.ExcludeTypes, t.Type) {
			continue
		}
		types = append(types, string(t.Type))
	}
	return types
}

// Package reads records who read the audit log, in the reader's own log:
// searches, events opened, histories and live feeds read, and downloads
// become AUDIT_LOG_VIEWED events. Reads coalesce: a reader's first read of
// each kind (search, view, ...) in a window is recorded at once, and the
// reads of that kind that follow in the window are counted in memory and
// recorded as one more event, with their count, when the window ends (or
// the process stops). Paging, polling, aliasing a search a hundred times or
// using a download link fifty times leaves at most two events per reader,
// kind and window, and the counts add up to every read.
package reads

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/ingest"
)

// Actions a read event names.
const (
	Search   = "search"
	View     = "view"
	History  = "history"
	Live     = "live"
	Download = "download"
	// Tiles is a read of an organization's tree as tlog tiles: its
	// checkpoint or a tile.
	Tiles = "tiles"
)

// DefaultWindow is how long one reader's reads of one kind coalesce.
const DefaultWindow = 10 * time.Minute

// Limits of coalescing.
const (
	// MaxListed is how many distinct reads a follow-up event lists.
	MaxListed = 20
	// maxOpen bounds the windows held in memory; past it a read is
	// recorded on its own, as an event with a count of 1.
	maxOpen = 100_000
	// flushTimeout bounds the recording of the follow-ups at shutdown.
	flushTimeout = 5 * time.Second
)

// Read is one read of an organization's log.
type Read struct {
	Action string
	// Filter is what a search or live feed asked for.
	Filter *domain.Filter
	// EventID, ResourceKind and ResourceID, ExportID name what was read.
	EventID, ResourceKind, ResourceID, ExportID string
}

// OwnRecorder records the audit log's own events.
type OwnRecorder interface {
	RecordOwn(ctx context.Context, e *domain.Event) (ingest.Status, error)
}

// Log records reads through an OwnRecorder. Run must run for the counted
// reads to be recorded.
type Log struct {
	own    OwnRecorder
	now    func() time.Time
	window time.Duration
	// nonce tells this Log's follow-up events from another instance's for
	// the same reader and window, which must not de-duplicate each other.
	nonce string
	log   zerolog.Logger

	mu   sync.Mutex
	open map[key]*tally
	due  []*tally // tallies of ended windows, replaced before Run flushed them
}

// key is what reads coalesce by: an organization, a reader, a kind.
type key struct{ org, kind, id, action string }

// tally is one reader's reads of one kind in one window.
type tally struct {
	key    key
	start  time.Time // the window's start
	actor  domain.Actor
	first  chan struct{} // closed once the first read's event is recorded or failed
	err    error         // why the first read's event failed
	count  int           // reads after the first, not recorded yet
	listed []string      // up to MaxListed distinct reads among them
	seen   map[string]bool
	last   time.Time // the latest read counted
	client client    // who made it
	closed bool      // out of Log.open: counts no more reads
}

// New returns a Log recording through own, coalescing a reader's reads of
// one kind per window.
func New(own OwnRecorder, now func() time.Time, window time.Duration, log zerolog.Logger) *Log {
	if window <= 0 {
		window = DefaultWindow
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Log{own: own, now: now, window: window, nonce: hex.EncodeToString(b), log: log, open: map[key]*tally{}}
}

// readNamespace derives read event ids from who read what in which window.
var readNamespace = uuid.MustParse("b3c5c7f4-6f43-4f7e-8d3c-6a2e1f0d9b21")

// Record records that actor read org's log. It fails when the read cannot
// be recorded: a read the log cannot account for is refused, not served.
// The first read of a kind in a window is recorded before Record returns,
// and reads that arrive while it is recorded wait for it and fail with it;
// later ones are counted and recorded when the window ends. Nothing is
// stored for an organization that opted out.
func (l *Log) Record(ctx context.Context, org string, actor domain.Actor, r Read) error {
	details, what, err := describe(r)
	if err != nil {
		return err
	}
	now := l.now().UTC()
	start := now.Truncate(l.window)
	k := key{org: org, kind: string(actor.Kind), id: actor.ID, action: r.Action}
	c := clientOf(ctx)

	l.mu.Lock()
	t := l.open[k]
	if t != nil && !t.start.Equal(start) {
		l.close(t) // its window ended: Run records its count
		l.due = append(l.due, t)
		t = nil
	}
	if t != nil {
		l.mu.Unlock()
		select {
		case <-t.first:
		case <-ctx.Done():
			return domain.Unavailable("this read of the audit log could not be recorded just now; try again", ctx.Err())
		}
		if t.err != nil {
			return t.err
		}
		l.mu.Lock()
		if t.closed {
			// Flushed meanwhile: count the read in the window's next tally.
			l.mu.Unlock()
			return l.Record(ctx, org, actor, r)
		}
		t.add(what, now, c)
		l.mu.Unlock()
		return nil
	}
	if len(l.open) >= maxOpen {
		l.mu.Unlock()
		// Too many readers at once to hold: record this read alone.
		id := uuid.NewSHA1(readNamespace, []byte(strings.Join([]string{org, k.kind, k.id, r.Action, now.Format(time.RFC3339Nano), l.nonce, what}, "\x00"))).String()
		_, err := l.record(ctx, id, org, actor, now, c, details, 1, nil, 0)
		return err
	}
	t = &tally{key: k, start: start, actor: actor, first: make(chan struct{}), seen: map[string]bool{}}
	l.open[k] = t
	l.mu.Unlock()

	id := uuid.NewSHA1(readNamespace, []byte(strings.Join([]string{org, k.kind, k.id, r.Action, start.Format(time.RFC3339)}, "\x00"))).String()
	status, err := l.record(ctx, id, org, actor, now, c, details, 1, nil, 0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		t.err = err
		if l.open[k] == t {
			l.close(t) // the next read tries again
		}
	} else if status == ingest.Duplicate {
		// Another instance recorded this window's first read: this one
		// is counted in this instance's follow-up.
		t.add(what, now, c)
	}
	close(t.first)
	return err
}

// close takes t out of the open windows, so no read is counted in it
// after its count is taken; l.mu is held.
func (l *Log) close(t *tally) {
	delete(l.open, t.key)
	t.closed = true
}

// add counts one more read of t.
func (t *tally) add(what string, at time.Time, c client) {
	t.count++
	if !t.seen[what] {
		t.seen[what] = true
		if len(t.listed) < MaxListed && len(what) <= domain.MaxStringLen {
			t.listed = append(t.listed, what)
		}
	}
	t.last, t.client = at, c
}

// describe returns the details of read r, and what was read as one string
// (the filter, the event, the resource, the export) for a follow-up's list.
func describe(r Read) (map[string]any, string, error) {
	details := map[string]any{"action": r.Action}
	var what []string
	if r.Filter != nil {
		f, err := r.Filter.Text()
		if err != nil {
			return nil, "", err
		}
		details["filter"] = f
		what = append(what, f)
	}
	for _, kv := range [][2]string{{"eventId", r.EventID}, {"resourceKind", r.ResourceKind},
		{"resourceId", r.ResourceID}, {"exportId", r.ExportID}} {
		if kv[1] != "" {
			details[kv[0]] = kv[1]
			what = append(what, kv[1])
		}
	}
	return details, strings.Join(what, "/"), nil
}

// record records one AUDIT_LOG_VIEWED event standing for count reads.
func (l *Log) record(ctx context.Context, id, org string, actor domain.Actor, at time.Time, c client,
	details map[string]any, count int, listed []string, distinct int) (ingest.Status, error) {
	details["count"] = count
	if listed != nil {
		details["reads"] = listed
		details["distinct"] = distinct
	}
	body, err := json.Marshal(details) // map keys are sorted
	if err != nil {
		return "", err
	}
	e := &domain.Event{
		ID: id, OrgID: org, Source: domain.SourcePlatform, Type: domain.TypeAuditLogViewed,
		OccurredAt: at, Actor: actor,
		Target:    &domain.Target{Kind: "AUDIT_LOG", ID: org},
		IPAddress: c.ip, UserAgent: c.userAgent, RequestID: c.requestID,
		Details: body,
	}
	status, err := l.own.RecordOwn(ctx, e)
	if err != nil {
		return "", domain.Unavailable("this read of the audit log could not be recorded just now; try again", err)
	}
	return status, nil
}

// Run records the counted reads of every window as it ends, until ctx
// ends; then it records those of the windows still open, so a graceful
// stop loses no count. A follow-up that cannot be recorded is tried again
// at the next tick.
func (l *Log) Run(ctx context.Context) {
	tick := time.NewTicker(min(l.window/10, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			l.Flush(fctx, true)
			return
		case <-tick.C:
			l.Flush(ctx, false)
		}
	}
}

// Flush records the follow-up events of the windows that ended, or of
// every window when all is set. Run calls it; tests may too.
func (l *Log) Flush(ctx context.Context, all bool) {
	now := l.now().UTC()
	l.mu.Lock()
	ready := l.due
	l.due = nil
	for _, t := range l.open {
		if all || !now.Before(t.start.Add(l.window)) {
			l.close(t)
			ready = append(ready, t)
		}
	}
	l.mu.Unlock()
	for _, t := range ready {
		<-t.first // set up by Record before the tally was shared
		l.mu.Lock()
		count, listed, distinct, last, c := t.count, append([]string{}, t.listed...), len(t.seen), t.last, t.client
		l.mu.Unlock()
		if t.err != nil || count == 0 {
			continue
		}
		k := t.key
		id := uuid.NewSHA1(readNamespace, []byte(strings.Join([]string{k.org, k.kind, k.id, k.action,
			t.start.Format(time.RFC3339), "more", l.nonce}, "\x00"))).String()
		if _, err := l.record(ctx, id, k.org, t.actor, last, c, map[string]any{"action": k.action}, count, listed, distinct); err != nil {
			if all {
				l.log.Error().Err(err).Str("org", k.org).Str("action", k.action).Int("count", count).
					Msg("reads of the audit log counted but not recorded at shutdown")
				continue
			}
			l.log.Warn().Err(err).Str("org", k.org).Str("action", k.action).Int("count", count).
				Msg("recording counted reads of the audit log failed; trying again")
			l.mu.Lock()
			l.due = append(l.due, t)
			l.mu.Unlock()
		}
	}
}

type clientKey struct{}

type client struct{ ip, userAgent, requestID string }

// WithClient records where a request came from, so read events carry the
// reader's address, user agent and request id. Values an event could not
// hold are left out.
func WithClient(ctx context.Context, remoteAddr, userAgent, requestID string) context.Context {
	c := client{userAgent: userAgent, requestID: requestID}
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil && net.ParseIP(host) != nil {
		c.ip = host
	}
	if domain.CheckText("userAgent", c.userAgent) != nil || len(c.userAgent) > domain.MaxStringLen {
		c.userAgent = ""
	}
	if domain.CheckText("requestId", c.requestID) != nil || len(c.requestID) > domain.MaxIDLen {
		c.requestID = ""
	}
	return context.WithValue(ctx, clientKey{}, c)
}

func clientOf(ctx context.Context) client {
	c, _ := ctx.Value(clientKey{}).(client)
	return c
}

// Package reads records who read the audit log, in the reader's own log:
// searches, events opened, histories and live feeds read, and downloads
// become AUDIT_LOG_VIEWED events, at most one per reader, read and window,
// so paging through one search or polling leaves one event, not hundreds.
package reads

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

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
)

// DefaultWindow is how long one reader's same read counts as one.
const DefaultWindow = 10 * time.Minute

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

// Log records reads through an OwnRecorder.
type Log struct {
	own    OwnRecorder
	now    func() time.Time
	window time.Duration
	// recent holds the ids recorded lately, so a repeated read costs no
	// round trip to the stream; the stream de-duplicates them anyway.
	recent *lru.Cache[string, struct{}]
}

// New returns a Log recording through own, counting a reader's same read
// once per window.
func New(own OwnRecorder, now func() time.Time, window time.Duration) *Log {
	if window <= 0 {
		window = DefaultWindow
	}
	recent, _ := lru.New[string, struct{}](16384) // only a non-positive size fails
	return &Log{own: own, now: now, window: window, recent: recent}
}

// readNamespace derives read event ids from who read what in which window.
var readNamespace = uuid.MustParse("b3c5c7f4-6f43-4f7e-8d3c-6a2e1f0d9b21")

// Record records that actor read org's log. It fails when the read cannot
// be recorded: a read the log cannot account for is refused, not served.
// Nothing is stored for an organization that opted out.
func (l *Log) Record(ctx context.Context, org string, actor domain.Actor, r Read) error {
	details := map[string]string{"action": r.Action}
	if r.Filter != nil {
		f, err := json.Marshal(r.Filter)
		if err != nil {
			return err
		}
		details["filter"] = string(f)
	}
	for k, v := range map[string]string{"eventId": r.EventID, "resourceKind": r.ResourceKind,
		"resourceId": r.ResourceID, "exportId": r.ExportID} {
		if v != "" {
			details[k] = v
		}
	}
	body, err := json.Marshal(details) // map keys are sorted: the same read, the same bytes
	if err != nil {
		return err
	}
	now := l.now().UTC()
	window := now.Truncate(l.window).Format(time.RFC3339)
	id := uuid.NewSHA1(readNamespace, []byte(strings.Join([]string{org, string(actor.Kind), actor.ID, window, string(body)}, "\x00"))).String()
	if l.recent.Contains(id) {
		return nil
	}
	c := clientOf(ctx)
	e := &domain.Event{
		ID: id, OrgID: org, Source: domain.SourcePlatform, Type: domain.TypeAuditLogViewed,
		OccurredAt: now, Actor: actor,
		Target:    &domain.Target{Kind: "AUDIT_LOG", ID: org},
		IPAddress: c.ip, UserAgent: c.userAgent, RequestID: c.requestID,
		Details: body,
	}
	if _, err := l.own.RecordOwn(ctx, e); err != nil {
		return domain.Unavailable("this read of the audit log could not be recorded just now; try again", err)
	}
	l.recent.Add(id, struct{}{})
	return nil
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

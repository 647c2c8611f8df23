// Package graph is the GraphQL API: gqlgen resolvers, the authorization
// directive and error presentation. It stays thin: rules live in domain,
// storage and queries in readmodel, recording in ingest.
package graph

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/auditlog/auditlog/integrity"

	"github.com/99designs/gqlgen/graphql"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph/model"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/live"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/reads"
	"github.com/auditlog/auditlog/treelog"
)

// Recorder records batches of events.
type Recorder interface {
	Record(ctx context.Context, p *domain.Principal, events []domain.Event) ([]ingest.Result, error)
}

// Settings reads and changes an organization's audit log settings.
type Settings interface {
	Get(ctx context.Context, org string) (domain.Settings, error)
	Enable(ctx context.Context, p *domain.Principal, region domain.Region) (domain.Settings, error)
	Disable(ctx context.Context, p *domain.Principal) (domain.Settings, error)
}

// Events answers queries over an organization's events.
type Events interface {
	List(ctx context.Context, org string, f domain.Filter, p readmodel.PageRequest) (*readmodel.EventPage, error)
	Count(ctx context.Context, org string, f domain.Filter) (int, bool, error)
	Get(ctx context.Context, org, id string) (*domain.Event, error)
	History(ctx context.Context, org, kind, id string, p readmodel.PageRequest) (*readmodel.EventPage, error)
	CountHistory(ctx context.Context, org, kind, id string) (int, bool, error)
}

// Exports starts, reads, cancels and watches an organization's export jobs.
type Exports interface {
	Start(ctx context.Context, p *domain.Principal, f domain.Filter, format domain.ExportFormat) (*domain.ExportJob, error)
	Get(ctx context.Context, org, id string) (*domain.ExportJob, error)
	List(ctx context.Context, org string, limit int) ([]*domain.ExportJob, error)
	Cancel(ctx context.Context, org, id string) (*domain.ExportJob, error)
	Watch(ctx context.Context, org, id string) (<-chan *domain.ExportJob, error)
}

// Reads records reads of an organization's log in that log.
type Reads interface {
	Record(ctx context.Context, org string, actor domain.Actor, r reads.Read) error
}

// DownloadSigner signs the short-lived links of export files.
type DownloadSigner interface {
	Sign(org, id string) (token string, expires time.Time, err error)
}

// Tree issues and proves the checkpoints of each organization's Merkle tree.
type Tree interface {
	VerifierKey() string
	Checkpoint(ctx context.Context, org string) (*integrity.SignedCheckpoint, treelog.Checkpoint, error)
	ProveEvent(ctx context.Context, org, id string, treeSize *int64) (leaf, size int64, proof []tlog.Hash, err error)
	ProveConsistency(ctx context.Context, org string, from, to int64) ([]tlog.Hash, error)
	Verify(ctx context.Context, org string, from, to int64) (*integrity.Verification, error)
}

// LogStreams creates, changes, pauses, resumes, deletes and tests an
// organization's log streams (package logstream/delivery).
type LogStreams interface {
	List(ctx context.Context, org string) ([]*delivery.View, error)
	Create(ctx context.Context, p *domain.Principal, in delivery.Input) (*delivery.View, error)
	Update(ctx context.Context, p *domain.Principal, id string, in delivery.Input) (*delivery.View, error)
	Pause(ctx context.Context, p *domain.Principal, id string) (*delivery.View, error)
	Resume(ctx context.Context, p *domain.Principal, id string) (*delivery.View, error)
	Delete(ctx context.Context, p *domain.Principal, id string) (*delivery.View, error)
	Test(ctx context.Context, p *domain.Principal, id string) (logstream.TestResult, error)
}

// Resolver is the root resolver; its dependencies are set by the server.
type Resolver struct {
	Recorder Recorder
	Settings Settings
	Events   Events
	Live     *live.Feed
	Exports  Exports
	// Downloads signs download links; DownloadPath is their path before
	// the job id, e.g. "/exports/".
	Downloads    DownloadSigner
	DownloadPath string
	// PublicURL is the base of links the API hands out (scheme, host and
	// any path prefix); empty means the origin each request came to.
	PublicURL string
	// Own records the audit log's events about itself (refused settings
	// changes); nil records none.
	Own OwnRecorder
	// Reads records searches, views, histories and live feeds; nil records
	// none.
	Reads Reads
	// Retention is how long region r keeps its events, which the
	// settings show so a console can tell users; nil keeps them for ever.
	Retention func(r domain.Region) domain.Retention
	// Tree answers the transparency queries.
	Tree Tree
	// LogStreams configures the organization's log streams.
	LogStreams LogStreams
	Now        func() time.Time
}

// NewSchema returns the executable schema over r, with the @hasRole
// directive wired in.
func NewSchema(r *Resolver) graphql.ExecutableSchema {
	a := authorizer{own: r.Own, now: r.Now}
	if a.now == nil {
		a.now = time.Now
	}
	cfg := Config{Resolvers: r, Directives: DirectiveRoot{HasRole: a.hasRole}}
	// A page costs its fields times its size, so a client cannot ask for
	// 500 rows of everything under the complexity limit meant for 50.
	cfg.Complexity.Query.AuditEvents = func(child int, _ *model.AuditEventFilter, first *int, _ *string) int {
		return child * pageSize(first)
	}
	cfg.Complexity.Query.ResourceHistory = func(child int, _, _ string, first *int, _ *string, _ *model.SortOrder) int {
		return child * pageSize(first)
	}
	// An integrity check costs its weight whatever it answers (see
	// integrityFields), as it does in the cost limit that runs first.
	cfg.Complexity.Query.VerifyAuditLog = func(child int, _, _ *int) int {
		return child + integrityWeight("verifyAuditLog")
	}
	cfg.Complexity.Query.AuditLogCheckpoint = func(child int) int {
		return child + integrityWeight("auditLogCheckpoint")
	}
	cfg.Complexity.Query.AuditEventProof = func(child int, _ string, _ *int) int {
		return child + integrityWeight("auditEventProof")
	}
	cfg.Complexity.Query.AuditLogConsistencyProof = func(child int, _, _ int) int {
		return child + integrityWeight("auditLogConsistencyProof")
	}
	// recordAuditEvents has no complexity function on purpose: gqlgen
	// would decode its arguments, up to 1,000 events, once more just to
	// size it (4% of ingest CPU), and ingest bounds the batch itself.
	return NewExecutableSchema(cfg)
}

type originKey struct{}

// WithOrigin records the scheme and host a request reached the API at, so
// links the API hands out (download URLs) are absolute and work when pasted
// into curl, unless a public base URL is configured.
func WithOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

// baseURL is where links point: the configured public URL, else the
// request's own origin.
func (r *Resolver) baseURL(ctx context.Context) string {
	if r.PublicURL != "" {
		return strings.TrimSuffix(r.PublicURL, "/")
	}
	origin, _ := ctx.Value(originKey{}).(string)
	return origin
}

// presentJob presents job with a fresh signed download link once its file
// is ready.
func (r *Resolver) presentJob(ctx context.Context, job *domain.ExportJob) (*model.ExportJob, error) {
	x := model.NewExportJob(job)
	if job.Status != domain.ExportSucceeded || job.Expired(r.now()) || r.Downloads == nil {
		return x, nil
	}
	token, _, err := r.Downloads.Sign(job.OrgID, job.ID)
	if err != nil {
		return nil, err
	}
	u := r.baseURL(ctx) + r.DownloadPath + url.PathEscape(job.ID) + "?" + url.Values{"token": {token}}.Encode()
	x.DownloadURL = &u
	return x, nil
}

// recordRead records that the caller read its organization's log as rd.
func (r *Resolver) recordRead(ctx context.Context, rd reads.Read) error {
	if r.Reads == nil {
		return nil
	}
	p := principal(ctx)
	return r.Reads.Record(ctx, p.OrgID, p.Actor(), rd)
}

func (r *Resolver) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func pageSize(first *int) int {
	if first == nil || *first < 1 {
		return readmodel.DefaultPageSize
	}
	return *first
}

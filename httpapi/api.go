// Package httpapi is auditd's HTTP surface: the routes (/query, the
// console and playground, /exports/{id}, /tlog/<org>/…, /healthz, /readyz,
// /metrics), and what guards them: CORS, bearer tokens, body limits and the
// body budget, the websocket transport, and the GraphQL guards of package
// gqlguard (persisted queries, query cost limits, GraphQL-over-HTTP
// errors). New builds it from explicit dependencies (Deps); the server
// package assembles those.
package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/reads"
)

// DefaultMaxResponseBytes is far above what a query within the cost limits
// answers with events of ordinary size (a few KiB each, so a page of 500 is
// a few MiB at most), yet keeps one answer from holding the memory of many.
// A page of events that all carry the largest details allowed can exceed
// it: the client is told to ask for fewer rows.
const DefaultMaxResponseBytes = 8 << 20

// DefaultMaxRequestBytes has room for the largest valid recordAuditEvents
// batch: every event at the largest details allowed, plus its other fields.
const DefaultMaxRequestBytes = ingest.MaxBatch * (domain.MaxDetailsBytes + 8<<10)

// DownloadPath is where export files are served: GET /exports/{id}.
const DownloadPath = "/exports/"

// Deps is what the HTTP surface needs; every field is required unless
// said otherwise.
type Deps struct {
	// Schema is the GraphQL API (graph.NewSchema).
	Schema graphql.ExecutableSchema
	// Verifier authenticates bearer tokens.
	Verifier *auth.Verifier
	// Registry is where the HTTP metrics are registered, and what
	// /metrics serves.
	Registry *prometheus.Registry
	// APQ is the persisted query bucket.
	APQ jetstream.KeyValue
	// JS reads export files and the account's storage.
	JS jetstream.JetStream
	// Jobs, Reads and Signer serve export downloads: the job, the
	// recording of the read, and the signed links.
	Jobs   *export.Jobs
	Reads  *reads.Log
	Signer *auth.DownloadSigner
	// Ready says why this instance cannot serve, or nil; Problems what is
	// wrong with what every instance shares; Projections each read
	// model's health, as /readyz shows it (JSON).
	Ready       func(context.Context) error
	Problems    func() []string
	Projections func() any
	// EmbeddedStorage is the embedded NATS server's file storage in use
	// and its limit, read when the account has none; nil with an external
	// NATS.
	EmbeddedStorage func() (used, limit uint64, ok bool)
	// Tiles serves each organization's checkpoint and tree tiles under
	// TlogPrefix; nil serves none.
	Tiles TileLog
	Log   zerolog.Logger
	Now   func() time.Time

	// The limits (config.Config's fields of the same names), defaults
	// already applied.
	Introspection         bool
	AllowedOrigins        []string
	RequestTimeout        time.Duration
	MaxRequestBytes       int64
	BodyBudget            int64
	BodyWait              time.Duration
	MaxResponseBytes      int
	WebsocketWriteTimeout time.Duration
}

// API is the HTTP surface.
type API struct {
	cfg     Deps
	log     zerolog.Logger
	apq     jetstream.KeyValue
	js      jetstream.JetStream
	jobs    *export.Jobs
	reads   *reads.Log
	signer  *auth.DownloadSigner
	metrics *metrics
	handler http.Handler
	stored  storageReading
}

// New builds the HTTP surface and registers its metrics in d.Registry.
func New(d Deps) *API {
	a := &API{cfg: d, log: d.Log, apq: d.APQ, js: d.JS, jobs: d.Jobs, reads: d.Reads, signer: d.Signer, metrics: newMetrics(d.Registry)}
	a.handler = a.routes(d.Schema)
	return a
}

// Handler is the HTTP API.
func (s *API) Handler() http.Handler { return s.handler }

// Ready, Problems and Projections are the callbacks of Deps.
func (s *API) Ready(ctx context.Context) error { return s.cfg.Ready(ctx) }
func (s *API) Problems() []string              { return s.cfg.Problems() }
func (s *API) Projections() any                { return s.cfg.Projections() }

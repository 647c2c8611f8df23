// Package server assembles auditd: NATS (embedded or external), the
// Postgres read models, the projectors, NATS ingest and the HTTP API, and
// shuts them down in order.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/auditlog/auditlog/leases"
	"github.com/auditlog/auditlog/projector"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/config"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/graph"
	"github.com/auditlog/auditlog/health"
	"github.com/auditlog/auditlog/httpapi"
	"github.com/auditlog/auditlog/ingest"
	"github.com/auditlog/auditlog/live"
	"github.com/auditlog/auditlog/logstream/delivery"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/reads"
	"github.com/auditlog/auditlog/repeat"
	"github.com/auditlog/auditlog/search"
	"github.com/auditlog/auditlog/settings"
	"github.com/auditlog/auditlog/transparency"
)

// Config is everything auditd needs to start: config.Config, the one
// configuration type, which cmd/auditd loads from flags and environment.
type Config = config.Config

// HTTP limits: httpapi's.
const (
	DefaultMaxResponseBytes  = httpapi.DefaultMaxResponseBytes
	DefaultMaxRequestBytes   = httpapi.DefaultMaxRequestBytes
	DefaultBodyBudget        = httpapi.DefaultBodyBudget
	DefaultBodyWait          = httpapi.DefaultBodyWait
	AnonymousMaxRequestBytes = httpapi.AnonymousMaxRequestBytes
)

// StorageHealth is what /readyz shows of storage: httpapi's.
type StorageHealth = httpapi.StorageHealth

// Garbage collector defaults of auditd. Ingest and projection allocate
// briskly while the live heap stays small, so collecting less often buys
// throughput (about a fifth more events a second in auditbench on two
// cores); the soft memory limit makes the collector work harder again
// before the heap gets large.
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 1 << 30
)

// TuneGC applies the defaults above unless GOGC or GOMEMLIMIT is set. It
// changes the whole process, so commands call it, not New.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

// DefaultCheckpointEvery is how often grown trees get a new checkpoint.
const DefaultCheckpointEvery = config.DefaultCheckpointEvery

// DevSigningKey reads the signing key kept in dir, generating one (0600)
// the first time; created says it was just made. See transparency.
func DevSigningKey(dir string) (skey string, created bool, err error) {
	return transparency.DevSigningKey(dir)
}

// Server is a running auditd.
type Server struct {
	cfg Config
	log zerolog.Logger
	ns  *natsx.Local // nil with an external NATS
	nc  *nats.Conn
	// responder answers NATS ingest requests: its user may publish only
	// under _INBOX, so a caller's reply subject cannot make auditd speak
	// on its own subjects.
	responder *nats.Conn
	js        jetstream.JetStream
	control   *pgxpool.Pool
	pools     []*pgxpool.Pool
	settings  *settings.Service
	store     *readmodel.SettingsStore
	events    map[domain.Region]*readmodel.EventStore
	recorder  *ingest.Recorder
	feed      *live.Feed
	jobs      *export.Jobs
	apq       jetstream.KeyValue
	worker    *export.Worker
	signer    *auth.DownloadSigner
	listener  net.Listener
	handler   http.Handler
	// controlProjector feeds the settings read model; eventProjectors the
	// events read model of each region.
	controlProjector *projector.Projector
	eventProjectors  map[domain.Region]*projector.Partitioned
	members          *projector.Members
	metrics          *metrics
	health           *health.Watch
	reads            *reads.Log
	trees            *transparency.Trees
	// logStreams answers the API; logEngine delivers, nil when log
	// streams are unavailable (no encryption key).
	logStreams *delivery.Service
	logEngine  *delivery.Engine

	// integrityEvents are the same read models on the integrity pools,
	// which tenants' reads never wait for; gate admits work to them.
	integrityEvents map[domain.Region]*readmodel.EventStore
	integrityPools  []*pgxpool.Pool
}

// New connects to (or starts) NATS and Postgres, declares the streams and
// applies migrations. Nothing is served until Run.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 15 * time.Second
	}
	if cfg.WebsocketWriteTimeout == 0 {
		cfg.WebsocketWriteTimeout = 10 * time.Second
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.BodyBudget == 0 {
		cfg.BodyBudget = DefaultBodyBudget
	}
	cfg.BodyBudget = max(cfg.BodyBudget, cfg.MaxRequestBytes)
	if cfg.BodyWait == 0 {
		cfg.BodyWait = DefaultBodyWait
	}
	if cfg.StallAfter == 0 {
		cfg.StallAfter = DefaultStallAfter
	}
	if cfg.ReconcileEvery == 0 {
		cfg.ReconcileEvery = DefaultReconcileEvery
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.RetentionEvery == 0 {
		cfg.RetentionEvery = DefaultRetentionEvery
	}
	switch {
	case cfg.MaxFutureSkew == 0:
		cfg.MaxFutureSkew = domain.MaxClockSkew
	case cfg.MaxFutureSkew < 0 || cfg.MaxFutureSkew > domain.MaxFutureSkewLimit:
		return nil, fmt.Errorf("max future skew %s: must be positive and at most %s", cfg.MaxFutureSkew, domain.MaxFutureSkewLimit)
	}
	if cfg.ClockTolerance <= 0 {
		cfg.ClockTolerance = DefaultClockTolerance
	}
	if err := checkRetention(cfg); err != nil {
		return nil, err
	}
	cfg.Streams.Retention = cfg.Retention
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.CheckpointMinInterval == 0 {
		cfg.CheckpointMinInterval = DefaultCheckpointMinInterval
	}
	cfg.Streams = cfg.Streams.WithDefaults()
	if len(cfg.DownloadKey) == 0 {
		cfg.DownloadKey = make([]byte, 32)
		if _, err := rand.Read(cfg.DownloadKey); err != nil {
			return nil, fmt.Errorf("download key: %w", err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Log, events: map[domain.Region]*readmodel.EventStore{}, metrics: newMetrics(),
		integrityEvents: map[domain.Region]*readmodel.EventStore{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	if cfg.SigningKey == "" {
		skey, created, err := DevSigningKey(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.SigningKey, s.cfg.SigningKey = skey, skey
		k, _ := transparency.ParseKey(skey)
		s.log.Warn().Str("path", filepath.Join(cfg.DataDir, transparency.SigningKeyFile)).Bool("generated", created).Str("verifier_key", k.Verifier()).
			Msg("AUDITD_SIGNING_KEY not set; checkpoints are signed with a development key kept in the data directory")
	}
	key, err := transparency.ParseKey(cfg.SigningKey)
	if err != nil {
		return nil, err
	}

	if s.nc, err = s.connectNATS(); err != nil {
		return nil, err
	}
	// An append the stream never acknowledges (its leader died with it,
	// and a new one is being elected) fails after publishAckWait, so ingest
	// answers UNAVAILABLE and the client sends the batch again, instead of
	// waiting out the whole request.
	if s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(16384),
		jetstream.WithPublishAsyncTimeout(publishAckWait)); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := cfg.Streams.Ensure(ctx, s.js); err != nil {
		return nil, err
	}

	if s.control, err = s.openPool(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	integrityPools := map[string]*pgxpool.Pool{} // one per database
	for _, r := range domain.Regions {
		pool, url := s.control, cfg.DatabaseURL
		if u := cfg.RegionDatabaseURLs[r]; u != "" {
			if pool, err = s.openPool(ctx, u); err != nil {
				return nil, err
			}
			url = u
		}
		if integrityPools[url] == nil {
			if integrityPools[url], err = s.openIntegrityPool(ctx, url, cfg.RequestTimeout); err != nil {
				return nil, err
			}
		}
		st := readmodel.NewEventStore(pool, readmodel.RegionSchema(r), natsx.AuditStream(r), s.log)
		if cfg.BenchWithoutIntegrity {
			st = st.WithoutIntegrity()
		}
		if err := st.Migrate(ctx); err != nil {
			return nil, err
		}
		if err := st.EnsureMonths(ctx, monthsAhead); err != nil {
			return nil, err
		}
		s.events[r] = st
		s.integrityEvents[r] = st.WithPool(integrityPools[url])
	}

	if s.settings, err = settings.New(ctx, s.js, cfg.Now); err != nil {
		return nil, err
	}
	s.recorder = ingest.NewRecorder(s.js, s.settings, cfg.Now, s.metrics)
	s.recorder.MaxFutureSkew = cfg.MaxFutureSkew
	s.store = readmodel.NewSettingsStore(s.control, s.recorder, s.log)
	if err := s.store.Migrate(ctx); err != nil {
		return nil, err
	}

	s.controlProjector = &projector.Projector{
		JS: s.js, Pool: s.control, Stream: natsx.ControlStream, Durable: "pg-settings", Sink: s.store, Log: s.log,
		HolderTimeout: cfg.HolderTimeout,
	}
	if _, err := projector.InitPartitionCount(ctx, s.control, max(cfg.ProjectionPartitions, 1)); err != nil {
		return nil, err
	}
	s.eventProjectors = map[domain.Region]*projector.Partitioned{}
	for _, r := range domain.Regions {
		s.eventProjectors[r] = &projector.Partitioned{
			JS: s.js, Store: s.events[r], Region: r, Log: s.log, Tick: cfg.RebalanceEvery, HolderTimeout: cfg.HolderTimeout,
			Layout: func(ctx context.Context) (int, error) { return projector.PartitionCount(ctx, s.control) },
			// Run joins: only serving instances count in the census, not a
			// command such as reconcile.
			Census: func(ctx context.Context) (int, int, error) { return s.members.Census(ctx) },
		}
	}

	s.trees = transparency.New(transparency.Config{
		Key: key, JS: s.js, Regions: s.store, Events: s.events, Checks: s.integrityEvents,
		Gate: transparency.NewGate(integrityPerOrg, integrityRequests, leases.New(s.js, natsx.LeasesBucket, 0)), MinInterval: cfg.CheckpointMinInterval,
		Now: cfg.Now, Log: s.log,
	})
	reader := readmodel.NewReader(s.store, s.events)
	s.feed = live.NewFeed(s.js, s.settings, cfg.Live, s.log)
	partitioned := map[domain.Region]health.Partitions{}
	for r, p := range s.eventProjectors {
		partitioned[r] = p
	}
	// The watch keeps wall-clock time, not cfg.Now: stalls are real time.
	s.health = health.New(health.Config{
		JS: s.js, Control: s.store, ControlResyncs: s.controlProjector.Resyncs, Events: s.events,
		Partitioned: partitioned, StallAfter: cfg.StallAfter, Now: time.Now, Log: s.log,
	})
	s.metrics.registry.MustRegister(
		newProjectionCollector(s.js, s.events),
		s.health.Collector(),
		newRetentionCollector(s.events),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "auditlog_live_subscriptions",
			Help: "Live subscriptions this instance is serving.",
		}, func() float64 { return float64(s.feed.Active()) }),
	)
	if s.jobs, err = export.NewJobs(ctx, s.js, s.settings, s.recorder, cfg.Now); err != nil {
		return nil, err
	}
	s.worker = &export.Worker{
		JS: s.js, Jobs: s.jobs, Source: reader, Concurrency: cfg.ExportWorkers,
		AckWait: cfg.Streams.ExportAckWait, FileTTL: cfg.Streams.ExportTTL, Log: s.log, Now: cfg.Now,
		Proofs: s.trees.ExportProver(),
	}
	if s.apq, err = s.js.KeyValue(ctx, natsx.APQBucket); err != nil {
		return nil, fmt.Errorf("persisted query bucket: %w", err)
	}
	s.signer = auth.NewDownloadSigner(cfg.DownloadKey, cfg.Now)
	s.reads = reads.New(s.recorder, cfg.Now, cfg.ReadWindow, s.log)
	if err := s.setupLogStreams(); err != nil {
		return nil, err
	}

	resolver := &graph.Resolver{
		Recorder:     s.recorder,
		Settings:     s.settings,
		Events:       search.New(reader, search.Options{Budget: cfg.SearchBudget, FirstSlice: cfg.SearchFirstSlice}),
		Live:         s.feed,
		Exports:      s.jobs,
		Downloads:    s.signer,
		DownloadPath: httpapi.DownloadPath,
		PublicURL:    cfg.PublicURL,
		Own:          s.recorder,
		Reads:        s.reads,
		Retention:    s.Retention,
		Tree:         s.trees,
		LogStreams:   s.logStreams,
		Now:          cfg.Now,
	}
	s.handler = httpapi.New(httpapi.Deps{
		Schema: graph.NewSchema(resolver), Verifier: cfg.Verifier, Registry: s.metrics.registry,
		APQ: s.apq, JS: s.js, Jobs: s.jobs, Reads: s.reads, Signer: s.signer,
		Ready: s.Ready, Problems: s.Problems, Projections: func() any { return s.Projections() },
		EmbeddedStorage: s.embeddedStorage, Tiles: s.trees, Log: s.log, Now: cfg.Now,
		Introspection: cfg.Introspection, AllowedOrigins: cfg.AllowedOrigins, RequestTimeout: cfg.RequestTimeout,
		MaxRequestBytes: cfg.MaxRequestBytes, BodyBudget: cfg.BodyBudget, BodyWait: cfg.BodyWait,
		MaxResponseBytes: cfg.MaxResponseBytes, WebsocketWriteTimeout: cfg.WebsocketWriteTimeout,
	}).Handler()
	return s, nil
}

// connectNATS connects to the external NATS with the configured
// credentials, or starts the embedded server and connects in process.
func (s *Server) connectNATS() (*nats.Conn, error) {
	cfg := s.cfg
	if cfg.NATSURL != "" {
		if cfg.NATSListen != "" || len(cfg.NATSIngestUsers) > 0 {
			return nil, errors.New("a NATS ingest listener is for the embedded server; configure an external NATS's users there")
		}
		return natsx.Connect(cfg.NATSURL, "auditd", cfg.NATSCredentials)
	}
	dir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ns, err := natsx.Embedded{Dir: dir, Listen: cfg.NATSListen, Ingest: cfg.NATSIngestUsers}.Start()
	if err != nil {
		return nil, err
	}
	s.ns = ns
	if u := ns.ListenURL(); u != "" {
		s.log.Info().Str("url", u).Int("users", len(cfg.NATSIngestUsers)).Msg("NATS ingest listener")
	}
	return ns.Connect("auditd")
}

// connectResponder opens the connection that answers NATS ingest requests,
// as a user NATS allows to publish under _INBOX only, and proves that NATS
// refuses it anything else. A user NATS does not confine is logged and
// shown by auditlog_nats_responder_restricted; auditd's own reply check
// still holds.
func (s *Server) connectResponder() (*nats.Conn, error) {
	var (
		nc  *nats.Conn
		err error
		// A refused answer other than the start-up probe is auditd trying
		// to speak outside the inboxes: never expected, always reported.
		onError = nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if !natsx.IsProbeViolation(err) {
				s.log.Error().Err(err).Msg("nats ingest responder")
			}
		})
	)
	switch {
	case s.ns != nil:
		nc, err = s.ns.ConnectResponder("auditd-responder", onError)
	case s.cfg.NATSResponderCredentials.Empty():
		return nil, errors.New("an external NATS needs a responder user for ingest replies (NATS_RESPONDER_USER with NATS_RESPONDER_PASSWORD, or NATS_RESPONDER_CREDS), allowed to publish to _INBOX.> only; see docs/operations.md#nats-permissions")
	default:
		nc, err = natsx.Connect(s.cfg.NATSURL, "auditd-responder", s.cfg.NATSResponderCredentials, onError)
	}
	if err != nil {
		return nil, fmt.Errorf("nats responder: %w", err)
	}
	switch err := natsx.CheckResponder(nc); {
	case err == nil:
		s.metrics.restricted.Set(1)
	case errors.Is(err, natsx.ErrResponderUnrestricted):
		s.metrics.restricted.Set(0)
		s.log.Error().Err(err).Msg("NATS does not confine the ingest responder: give its user publish permission on _INBOX.> only (docs/operations.md#nats-permissions)")
	default:
		nc.Close()
		return nil, err
	}
	return nc, nil
}

func (s *Server) openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s.pools = append(s.pools, pool)
	return pool, nil
}

// embeddedStorage is the embedded NATS server's file storage in use and
// its limit; not ok with an external NATS.
func (s *Server) embeddedStorage() (used, limit uint64, ok bool) {
	if s.ns == nil {
		return 0, 0, false
	}
	jsz, err := s.ns.Jsz(nil)
	if err != nil || jsz.Config.MaxStore <= 0 {
		return 0, 0, false
	}
	return jsz.Store, uint64(jsz.Config.MaxStore), true
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// JetStream is the server's JetStream context.
func (s *Server) JetStream() jetstream.JetStream { return s.js }

// NATSIngestURL is the client URL of the embedded server's ingest listener,
// or "" when it has none (the default) or NATS is external.
func (s *Server) NATSIngestURL() string {
	if s.ns == nil {
		return ""
	}
	return s.ns.ListenURL()
}

// EventStore is region r's read model.
func (s *Server) EventStore(r domain.Region) *readmodel.EventStore { return s.events[r] }

// VerifierKey is the note verifier key of the checkpoints the server signs.
func (s *Server) VerifierKey() string { return s.trees.VerifierKey() }

// IssueCheckpoints gives every organization whose tree has grown a signed
// checkpoint now, as the periodic issuer does; the error joins the regions
// that failed, each reported, while the others were served.
func (s *Server) IssueCheckpoints(ctx context.Context) error {
	return s.eachRegion(ctx, taskCheckpoints, s.trees.IssueRegion)
}

// Feed is the live event feed.
func (s *Server) Feed() *live.Feed { return s.feed }

// SettingsStore is the settings read model.
func (s *Server) SettingsStore() *readmodel.SettingsStore { return s.store }

// Listen binds the HTTP address; Run serves on it. Split from Run so callers
// know the address of ":0" before serving.
func (s *Server) Listen() (net.Addr, error) {
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	s.listener = l
	return l.Addr(), nil
}

// Run serves until ctx is cancelled, then shuts down gracefully: it stops
// accepting requests, lets in-flight ones finish, stops NATS ingest, lets
// each projector finish and ack its current batch, and closes connections.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	if s.listener == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	var err error
	if s.responder, err = s.connectResponder(); err != nil {
		return err
	}
	if s.members, err = projector.Join(ctx, s.control, s.cfg.HolderTimeout); err != nil {
		return err
	}
	pctx, stopProjectors := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.supervise(pctx, s.controlProjector) })
	for _, p := range s.eventProjectors {
		wg.Go(func() {
			if err := p.Run(pctx); err != nil {
				s.log.Error().Err(err).Str("stream", p.Stream()).Msg("partitioned projection stopped")
			}
		})
	}
	defer func() {
		stopProjectors()
		wg.Wait()
	}()

	wg.Go(func() { s.maintainPartitions(pctx) })
	// Records the counted reads as their windows end, and the rest once
	// the HTTP server has stopped (pctx ends after it, before NATS closes).
	wg.Go(func() { s.reads.Run(pctx) })
	wg.Go(func() { s.health.Run(pctx) })
	if s.cfg.RetentionEvery > 0 {
		wg.Go(func() { s.retentionLoop(pctx, s.cfg.RetentionEvery) })
	}
	if s.cfg.ReconcileEvery > 0 {
		wg.Go(func() { s.reconcileLoop(pctx, s.cfg.ReconcileEvery) })
	}
	if s.cfg.CheckpointEvery > 0 {
		wg.Go(func() { s.regionLoops(pctx, taskCheckpoints, s.cfg.CheckpointEvery, false, s.trees.IssueRegion) })
	}
	if s.cfg.ExportWorkers >= 0 {
		wg.Go(func() {
			if err := s.worker.Run(pctx); err != nil {
				s.log.Error().Err(err).Msg("export worker stopped")
			}
		})
	}

	if s.logEngine != nil {
		wg.Go(func() { s.logEngine.Run(pctx) })
	}

	svc, err := ingest.ServeNATS(pctx, s.responder, s.recorder, s.cfg.Verifier, s.metrics, s.log)
	if err != nil {
		return fmt.Errorf("nats ingest: %w", err)
	}
	defer stopService(svc, s.log)

	// Websockets are hijacked connections, which Shutdown does not wait
	// for; they end when their base context does, after Shutdown.
	wsctx, closeWebsockets := context.WithCancel(context.WithoutCancel(ctx))
	defer closeWebsockets()
	hs := &http.Server{
		Handler: s.handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return wsctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(s.listener) }()
	s.log.Info().Str("addr", s.listener.Addr().String()).Msg("auditd serving")

	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	s.log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	closeWebsockets()
	if err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// supervise restarts a failed projector with capped backoff until ctx ends.
func (s *Server) supervise(ctx context.Context, p *projector.Projector) {
	_ = repeat.Backoff(ctx, 100*time.Millisecond, 10*time.Second, func() error {
		if err := p.Run(ctx); err != nil {
			return err
		}
		return errors.New("returned while the server runs")
	}, func(err error, wait time.Duration) {
		s.log.Error().Err(err).Str("stream", p.Stream).Dur("retry_in", wait).Msg("projector stopped")
	})
}

// publishAckWait bounds the wait for JetStream to acknowledge an append.
// A healthy stream answers in milliseconds; an R3 stream that lost its
// leader elects another within a few seconds.
const publishAckWait = 5 * time.Second

// monthsAhead is how many months beyond now have their tables made.
const monthsAhead = 3

// maintainPartitions keeps monthly partitions created ahead of time while
// the server runs for months, so current events never land in the default
// partition. New partitions are always for future months, which the default
// partition cannot hold rows of.
func (s *Server) maintainPartitions(ctx context.Context) {
	repeat.Every(ctx, 12*time.Hour, func() {
		for _, st := range s.events {
			// Instances take turns (EnsureMonths locks), and the
			// second finds the months made.
			if err := st.EnsureMonths(ctx, monthsAhead); err != nil && ctx.Err() == nil {
				s.log.Error().Err(err).Str("schema", st.Schema()).Msg("creating partitions ahead failed")
			}
		}
	})
}

func stopService(svc micro.Service, log zerolog.Logger) {
	if err := svc.Stop(); err != nil {
		log.Warn().Err(err).Msg("stop nats ingest")
	}
}

// Ready reports why this instance cannot serve, or nil: NATS or Postgres
// unreachable from it. The health of what every instance shares (a
// projection stalled, events missing, slots nobody projects) is Problems':
// a load balancer must not drop a healthy instance because another froze.
func (s *Server) Ready(ctx context.Context) error {
	if s.nc.Status() != nats.CONNECTED {
		return fmt.Errorf("nats is %s", s.nc.Status())
	}
	if r := s.responder; r != nil && r.Status() != nats.CONNECTED {
		return fmt.Errorf("nats ingest responder is %s", r.Status())
	}
	for _, p := range s.pools {
		if err := p.Ping(ctx); err != nil {
			return errors.New("postgres does not answer")
		}
	}
	return nil
}

// Problems are what is wrong with the read models every instance shares,
// as last read; none when the deployment is healthy.
func (s *Server) Problems() []string { return s.health.Problems() }

// Projections is the health of every read model as last read.
func (s *Server) Projections() []ProjectionHealth { return s.health.Snapshot() }

// Close releases everything New acquired; Run calls it on return.
func (s *Server) Close() { s.close() }

func (s *Server) close() {
	if s.members != nil {
		s.members.Leave(context.Background())
		s.members = nil
	}
	for _, nc := range []*nats.Conn{s.responder, s.nc} {
		if nc == nil {
			continue
		}
		_ = nc.Drain()
		for !nc.IsClosed() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.responder, s.nc = nil, nil
	for _, p := range append(s.pools, s.integrityPools...) {
		p.Close()
	}
	s.pools, s.integrityPools = nil, nil
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

// Command auditd is the audit log service.
//
//	auditd serve                 run API, ingest and projectors
//	auditd token --org O --role ADMIN|USER|SERVICE [--name N --email E --sources S1,S2]
//	                             [--console [--url http://localhost:8080]]
//	auditd projections rebuild   drop and rebuild the read models from the log
//	auditd projections reconcile [--repair]
//	auditd projections partitions [N]  show or change the partition layout
//	                             compare each regional stream with its read model
//	auditd keygen [--name N]     make a checkpoint signing key (AUDITD_SIGNING_KEY)
//	auditd verify --key VKEY FILE
//	                             check an NDJSON export offline
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditlog/auditlog/integrity"
	"github.com/auditlog/auditlog/projector"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export"
	"github.com/auditlog/auditlog/internal/devpg"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// devSecret signs tokens when AUDITD_JWT_SECRET is unset; serve warns about it.
const devSecret = "auditd-development-secret-do-not-use-in-production"

func main() {
	server.TuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: auditd serve | token | keygen | verify --key VKEY FILE | projections rebuild | projections reconcile [--repair] | projections partitions [N]")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "token":
		return token(args[1:], stdout)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout)
	case "projections":
		switch {
		case len(args) >= 2 && args[1] == "rebuild":
			return rebuild(ctx, args[2:], stderr)
		case len(args) >= 2 && args[1] == "reconcile":
			return reconcile(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "partitions":
			return partitions(ctx, args[2:], stdout, stderr)
		}
		return errors.New("usage: auditd projections rebuild|reconcile|partitions [flags]")
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// envInt is the integer in the environment variable name, or def; a value
// that is not a number is left for the flag parser to refuse.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(env(name, "")); err == nil {
		return n
	}
	return def
}

// envDuration is the duration in the environment variable name, or def.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(name, "")); err == nil {
		return d
	}
	return def
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// common are the flags every command that touches the stores shares.
type common struct {
	databaseURL, natsURL, dataDir, logLevel string
	natsUser, natsCreds                     string
	dupWindow                               time.Duration
	placement                               bool
	replicas                                string
	retention, retentionFloor               string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.databaseURL, "database-url", env("DATABASE_URL", ""), "Postgres URL (DATABASE_URL); empty finds or starts a local server")
	fs.StringVar(&c.natsURL, "nats-url", env("NATS_URL", ""), "NATS URL (NATS_URL); empty runs an embedded server")
	fs.StringVar(&c.natsUser, "nats-user", env("NATS_USER", ""), "user auditd authenticates as on NATS_URL (NATS_USER; password in NATS_PASSWORD)")
	fs.StringVar(&c.natsCreds, "nats-creds", env("NATS_CREDS", ""), "credentials file (user JWT and nkey seed) for NATS_URL (NATS_CREDS)")
	fs.StringVar(&c.dataDir, "data-dir", env("AUDITD_DATA_DIR", ".data"), "data directory (AUDITD_DATA_DIR)")
	fs.StringVar(&c.logLevel, "log-level", env("AUDITD_LOG_LEVEL", "info"), "log level (AUDITD_LOG_LEVEL)")
	fs.DurationVar(&c.dupWindow, "dedupe-window", 10*time.Minute, "JetStream de-duplication window for event ids")
	fs.BoolVar(&c.placement, "region-placement", env("AUDITD_REGION_PLACEMENT", "") == "true",
		"place each regional stream on servers tagged region:<r> (clusters only; AUDITD_REGION_PLACEMENT)")
	fs.StringVar(&c.replicas, "replicas", env("AUDITD_REPLICAS", "1"),
		"replicas of every stream and bucket; more than 1 needs a NATS cluster at NATS_URL (AUDITD_REPLICAS)")
	fs.StringVar(&c.retention, "retention", env("AUDITD_RETENTION", ""),
		"how long each region keeps events after they occurred: 400d for all, US=400d,EU=730d per region, or 400d,EU=730d; empty keeps them for ever (AUDITD_RETENTION)")
	fs.StringVar(&c.retentionFloor, "retention-floor", env("AUDITD_RETENTION_FLOOR", domain.FormatPeriod(server.DefaultRetentionFloor)),
		"refuse to start with a retention shorter than this (AUDITD_RETENTION_FLOOR)")
}

// retentionConfig reads the retention flags and checks them against the
// floor, so a mistake stops the command before it touches anything.
func (c *common) retentionConfig() (map[domain.Region]time.Duration, time.Duration, error) {
	floor, err := domain.ParsePeriod(c.retentionFloor)
	if err != nil {
		return nil, 0, fmt.Errorf("--retention-floor: %w", err)
	}
	if floor <= 0 {
		return nil, 0, errors.New("--retention-floor must be positive: without a floor, a typo in --retention could remove most of the log")
	}
	periods, err := server.ParseRetention(c.retention)
	if err != nil {
		return nil, 0, fmt.Errorf("--retention: %w", err)
	}
	for _, r := range domain.Regions {
		ret := domain.Retention{Period: periods[r], Floor: floor}
		if err := ret.Check(); err != nil {
			return nil, 0, fmt.Errorf("--retention of %s: %w (see --retention-floor)", r, err)
		}
	}
	return periods, floor, nil
}

// checkReplicas refuses a replica count the NATS configuration cannot
// hold, before anything is started: replicas live on distinct servers of a
// cluster, and the embedded server is a single one.
func (c *common) checkReplicas() (int, error) {
	n, err := strconv.Atoi(c.replicas)
	switch {
	case err != nil || n < 1 || n > 5:
		return 0, fmt.Errorf("--replicas (AUDITD_REPLICAS) must be a number from 1 to 5, JetStream's limit, not %q", c.replicas)
	case n > 1 && c.natsURL == "":
		return 0, fmt.Errorf("--replicas %d needs a NATS cluster: set NATS_URL to its servers; the embedded NATS server is a single server and holds one replica", n)
	case c.placement && c.natsURL == "":
		return 0, errors.New("--region-placement needs a NATS cluster whose servers are tagged region:<region>: set NATS_URL; the embedded NATS server has no tags")
	}
	return n, nil
}

// setup parses args into fs and resolves the logger and server config.
func (c *common) setup(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (zerolog.Logger, server.Config, error) {
	if err := fs.Parse(args); err != nil {
		return zerolog.Nop(), server.Config{}, err
	}
	// Absolute, so that nothing depends on the directory a child process
	// (initdb, pg_ctl) runs in.
	dataDir, err := filepath.Abs(c.dataDir)
	if err != nil {
		return zerolog.Nop(), server.Config{}, fmt.Errorf("data directory: %w", err)
	}
	c.dataDir = dataDir
	log, err := c.logger(stderr)
	if err != nil {
		return log, server.Config{}, err
	}
	cfg, err := c.config(ctx, log)
	return log, cfg, err
}

func (c *common) logger(w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.logLevel)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level: %w", err)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "auditd").Logger(), nil
}

// database resolves the Postgres URL: the configured one, its database
// created if the server answers that it does not exist yet, else a local or
// private development server with an "auditlog" database.
func (c *common) database(ctx context.Context, log zerolog.Logger) (string, error) {
	if c.databaseURL != "" {
		created, err := devpg.CreateMissingDatabase(ctx, c.databaseURL)
		if err != nil {
			return "", fmt.Errorf("database: %w", err)
		}
		if created {
			log.Warn().Msg("the database DATABASE_URL names did not exist; created it")
		}
		return c.databaseURL, nil
	}
	pg, err := devpg.Find(ctx, filepath.Join(c.dataDir, "pg"))
	if err != nil {
		return "", err
	}
	url, err := devpg.EnsureDatabase(ctx, pg.URL, "auditlog")
	if err != nil {
		return "", err
	}
	if pg.Private {
		log.Warn().Str("dir", pg.Dir).Bool("started", pg.Started).
			Msg("DATABASE_URL not set and no server answers at the well-known URL; using a private development Postgres cluster (make pg-stop stops it)")
	} else {
		log.Warn().Msg("DATABASE_URL not set; using the local development Postgres")
	}
	return url, nil
}

func (c *common) config(ctx context.Context, log zerolog.Logger) (server.Config, error) {
	retention, floor, err := c.retentionConfig()
	if err != nil {
		return server.Config{}, err
	}
	replicas, err := c.checkReplicas()
	if err != nil {
		return server.Config{}, err
	}
	url, err := c.database(ctx, log)
	if err != nil {
		return server.Config{}, err
	}
	regional := map[domain.Region]string{}
	for _, r := range domain.Regions {
		// DATABASE_URL_EU etc. give a region a database of its own.
		if u := os.Getenv("DATABASE_URL_" + string(r)); u != "" {
			regional[r] = u
		}
	}
	return server.Config{
		// The signing key is a secret: from the environment only, never a
		// flag the process list shows.
		SigningKey:         os.Getenv("AUDITD_SIGNING_KEY"),
		DataDir:            c.dataDir,
		NATSURL:            c.natsURL,
		NATSCredentials:    natsx.Credentials{User: c.natsUser, Password: os.Getenv("NATS_PASSWORD"), File: c.natsCreds},
		DatabaseURL:        url,
		RegionDatabaseURLs: regional,
		Streams:            natsx.Streams{DuplicateWindow: c.dupWindow, Placement: c.placement, Replicas: replicas, Log: log},
		Retention:          retention,
		RetentionFloor:     floor,
		Log:                log,
	}, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c common
	c.register(fs)
	addr := fs.String("addr", env("AUDITD_ADDR", ":8080"), "HTTP listen address (AUDITD_ADDR)")
	secret := fs.String("jwt-secret", env("AUDITD_JWT_SECRET", ""), "HS256 secret for bearer tokens (AUDITD_JWT_SECRET)")
	jwks := fs.String("jwks", env("AUDITD_JWKS", ""), "JWKS file or URL; when set, tokens must be RS256/ES256 signed by its keys (AUDITD_JWKS)")
	introspection := fs.Bool("introspection", env("AUDITD_INTROSPECTION", "true") == "true", "allow GraphQL introspection (AUDITD_INTROSPECTION)")
	origins := fs.String("allowed-origins", env("AUDITD_ALLOWED_ORIGINS", ""),
		"comma-separated host patterns of browser pages, besides the API's own origin, that may open websockets (AUDITD_ALLOWED_ORIGINS)")
	publicURL := fs.String("public-url", env("AUDITD_PUBLIC_URL", ""),
		"base URL of the links the API hands out, e.g. https://audit.example.com; default the origin of each request (AUDITD_PUBLIC_URL)")
	downloadKey := fs.String("download-key", env("AUDITD_DOWNLOAD_KEY", ""),
		"key signing export download links; default derives it from the JWT secret (AUDITD_DOWNLOAD_KEY)")
	workers := fs.Int("export-workers", 2, "exports this instance runs at once; 0 runs none")
	exportTTL := fs.Duration("export-ttl", natsx.DefaultExportTTL, "how long export files are kept")
	exportAckWait := fs.Duration("export-ack-wait", envDuration("AUDITD_EXPORT_ACK_WAIT", natsx.DefaultExportAckWait),
		"how long a running export may go without a heartbeat before another instance takes it over (AUDITD_EXPORT_ACK_WAIT)")
	userTTL := fs.Duration("max-user-token-lifetime", auth.DefaultMaxUserLifetime, "refuse user tokens that expire later than this from now")
	serviceTTL := fs.Duration("max-service-token-lifetime", auth.DefaultMaxServiceLifetime, "refuse service tokens that expire later than this from now")
	reconcileEvery := fs.Duration("reconcile-every", server.DefaultReconcileEvery,
		"compare each regional stream with its read model and repair gaps this often; 0 never")
	stallAfter := fs.Duration("stall-after", server.DefaultStallAfter,
		"call a projection stalled on /readyz when it is behind and has not moved for this long")
	responderUser := fs.String("nats-responder-user", env("NATS_RESPONDER_USER", ""),
		"user that answers NATS ingest requests on NATS_URL, allowed to publish to _INBOX.> only (NATS_RESPONDER_USER; password in NATS_RESPONDER_PASSWORD)")
	responderCreds := fs.String("nats-responder-creds", env("NATS_RESPONDER_CREDS", ""),
		"credentials file of the NATS ingest responder user on NATS_URL (NATS_RESPONDER_CREDS)")
	natsListen := fs.String("nats-listen", env("AUDITD_NATS_LISTEN", ""),
		"embedded NATS: host:port of a listener for NATS ingest clients; empty opens none (AUDITD_NATS_LISTEN)")
	ingestUser := fs.String("nats-ingest-user", env("AUDITD_NATS_INGEST_USER", ""),
		"embedded NATS: user ingest clients connect as; password in AUDITD_NATS_INGEST_PASSWORD (AUDITD_NATS_INGEST_USER)")
	holderTimeout := fs.Duration("holder-timeout", envDuration("AUDITD_HOLDER_TIMEOUT", projector.DefaultHolderTimeout),
		"how long a Postgres session holding projection locks may be silent before Postgres ends it and another instance takes its partitions (AUDITD_HOLDER_TIMEOUT)")
	checkpointEvery := fs.Duration("checkpoint-every", server.DefaultCheckpointEvery,
		"sign a checkpoint of each organization's tree that grew this often; 0 only on demand")
	maxFutureSkew := fs.Duration("max-future-skew", envDuration("AUDITD_MAX_FUTURE_SKEW", domain.MaxClockSkew),
		"refuse events whose occurredAt lies further than this in the future; at most 12h (AUDITD_MAX_FUTURE_SKEW)")
	partitionCount := fs.Int("projection-partitions", envInt("AUDITD_PROJECTION_PARTITIONS", 1),
		"partitions projecting each regional stream, shared by all instances; seeds a new deployment only, change it with `auditd projections partitions N` (AUDITD_PROJECTION_PARTITIONS)")
	log, cfg, err := c.setup(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	// The flags take their defaults from these; a value that is not a
	// number or a duration must not pass for the default.
	if v := os.Getenv("AUDITD_PROJECTION_PARTITIONS"); v != "" {
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("AUDITD_PROJECTION_PARTITIONS=%q is not a number", v)
		}
	}
	if v := os.Getenv("AUDITD_HOLDER_TIMEOUT"); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Errorf("AUDITD_HOLDER_TIMEOUT: %w", err)
		}
	}
	if *holderTimeout < time.Second {
		return fmt.Errorf("--holder-timeout must be at least 1s (a live projector speaks every second), not %s", *holderTimeout)
	}
	cfg.HolderTimeout = *holderTimeout
	if v := os.Getenv("AUDITD_EXPORT_ACK_WAIT"); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Errorf("AUDITD_EXPORT_ACK_WAIT: %w", err)
		}
	}
	if v := os.Getenv("AUDITD_MAX_FUTURE_SKEW"); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return fmt.Errorf("AUDITD_MAX_FUTURE_SKEW: %w", err)
		}
	}
	if *maxFutureSkew <= 0 || *maxFutureSkew > domain.MaxFutureSkewLimit {
		return fmt.Errorf("--max-future-skew (AUDITD_MAX_FUTURE_SKEW) must be positive and at most %s, not %s", domain.MaxFutureSkewLimit, *maxFutureSkew)
	}
	cfg.MaxFutureSkew = *maxFutureSkew
	if !natsx.ValidPartitionCount(*partitionCount) {
		return fmt.Errorf("--projection-partitions must be a power of two from 1 to %d, not %d", projector.MaxPartitions, *partitionCount)
	}
	cfg.ProjectionPartitions = *partitionCount
	cfg.CheckpointEvery = *checkpointEvery
	if *checkpointEvery == 0 {
		cfg.CheckpointEvery = -1
	}
	if cfg.NATSListen = *natsListen; cfg.NATSListen != "" {
		// Passwords come from the environment only, never a flag the
		// process list shows.
		password := os.Getenv("AUDITD_NATS_INGEST_PASSWORD")
		if *ingestUser == "" || password == "" {
			return errors.New("--nats-listen needs AUDITD_NATS_INGEST_USER and AUDITD_NATS_INGEST_PASSWORD")
		}
		cfg.NATSIngestUsers = []natsx.User{{Name: *ingestUser, Password: password}}
	}
	cfg.NATSResponderCredentials = natsx.Credentials{User: *responderUser, Password: os.Getenv("NATS_RESPONDER_PASSWORD"), File: *responderCreds}
	if cfg.NATSURL != "" && cfg.NATSResponderCredentials.Empty() {
		return errors.New("NATS_URL needs a responder user for ingest replies: NATS_RESPONDER_USER with NATS_RESPONDER_PASSWORD, or NATS_RESPONDER_CREDS (docs/operations.md#nats-permissions)")
	}
	cfg.Addr = *addr
	cfg.PublicURL = *publicURL
	cfg.Introspection = *introspection
	if *origins != "" {
		cfg.AllowedOrigins = strings.Split(*origins, ",")
	}
	cfg.ExportWorkers = *workers
	if *workers == 0 {
		cfg.ExportWorkers = -1
	}
	cfg.Streams.ExportTTL = *exportTTL
	cfg.Streams.ExportAckWait = *exportAckWait
	cfg.StallAfter = *stallAfter
	cfg.ReconcileEvery = *reconcileEvery
	if *reconcileEvery == 0 {
		cfg.ReconcileEvery = -1
	}
	switch {
	case *jwks != "":
		if cfg.Verifier, err = auth.NewJWKSVerifier(ctx, *jwks); err != nil {
			return err
		}
	case *secret == "":
		// Anyone can sign tokens with the development secret, so it only
		// ever serves this machine.
		if cfg.Addr, err = loopbackOnly(cfg.Addr); err != nil {
			return err
		}
		log.Warn().Str("addr", cfg.Addr).Msg("AUDITD_JWT_SECRET not set; using the development secret, which anyone can sign tokens with, on loopback only")
		*secret = devSecret
		cfg.Verifier = auth.NewHMACVerifier([]byte(devSecret))
	default:
		cfg.Verifier = auth.NewHMACVerifier([]byte(*secret))
	}
	cfg.Verifier = cfg.Verifier.WithMaxLifetime(*userTTL, *serviceTTL).
		WithIssuerAudience(os.Getenv("AUDITD_JWT_ISSUER"), os.Getenv("AUDITD_JWT_AUDIENCE"))
	switch {
	case *downloadKey != "":
		cfg.DownloadKey = []byte(*downloadKey)
	case *jwks == "":
		// Instances sharing the JWT secret then accept each other's links.
		cfg.DownloadKey = auth.DeriveKey([]byte(*secret), "auditlog export download links")
	default:
		log.Warn().Msg("AUDITD_DOWNLOAD_KEY not set; download links work only on the instance that signed them")
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	bound, err := srv.Listen()
	if err != nil {
		srv.Close()
		return err
	}
	log.Info().Str("graphql", "http://"+displayAddr(bound.String())+"/query").Msg("GraphQL endpoint")
	return srv.Run(ctx)
}

// loopbackOnly keeps addr on a loopback interface: an address with no host
// (":8080") listens on 127.0.0.1, and any other host must be a loopback one.
func loopbackOnly(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if host == "localhost" {
		return addr, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return addr, nil
	}
	return "", fmt.Errorf("refusing to listen on %s with the development JWT secret, which anyone can sign tokens with: set AUDITD_JWT_SECRET or AUDITD_JWKS, or listen on loopback", addr)
}

func displayAddr(a string) string {
	if strings.HasPrefix(a, "[::]:") {
		return "localhost:" + strings.TrimPrefix(a, "[::]:")
	}
	if strings.HasPrefix(a, "0.0.0.0:") {
		return "localhost:" + strings.TrimPrefix(a, "0.0.0.0:")
	}
	return a
}

func token(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	org := fs.String("org", "", "organization id (required for ADMIN and USER)")
	role := fs.String("role", "ADMIN", "ADMIN, USER or SERVICE")
	name := fs.String("name", "Dev Admin", "display name")
	email := fs.String("email", "admin@example.com", "email")
	sources := fs.String("sources", strings.Join(sourceNames(), ","), "SERVICE: sources it may record for")
	orgs := fs.String("orgs", "", "SERVICE: orgs it may record for, comma-separated; empty = any")
	subject := fs.String("sub", "", "subject; default derives from role and email")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	secret := fs.String("jwt-secret", env("AUDITD_JWT_SECRET", devSecret), "HS256 secret (AUDITD_JWT_SECRET)")
	consoleLink := fs.Bool("console", false, "print a link to the console signed in with the token instead of the token")
	base := fs.String("url", "http://localhost:8080", "with --console: the base URL of auditd")
	issuer := fs.String("iss", env("AUDITD_JWT_ISSUER", ""), "iss claim, which auditd checks when AUDITD_JWT_ISSUER is set")
	audience := fs.String("aud", env("AUDITD_JWT_AUDIENCE", ""), "aud claim, which auditd checks when AUDITD_JWT_AUDIENCE is set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := auth.Claims{Org: *org, Name: *name, Email: *email}
	switch strings.ToUpper(*role) {
	case "ADMIN", "USER":
		if !domain.ValidOrgID(*org) {
			return errors.New("--org is required and must be 1-64 letters, digits, '-' or '_'")
		}
		c.Kind = string(domain.PrincipalUser)
		c.Roles = []string{strings.ToUpper(*role)}
		c.Subject = "user:" + *email
	case "SERVICE":
		c.Kind = string(domain.PrincipalService)
		c.Subject = "service:" + *name
		for _, s := range strings.Split(*sources, ",") {
			if s = strings.TrimSpace(s); s != "" {
				if !domain.Source(s).Valid() {
					return fmt.Errorf("unknown source %q", s)
				}
				c.Sources = append(c.Sources, s)
			}
		}
		if *orgs != "" {
			c.Orgs = strings.Split(*orgs, ",")
		} else if *org != "" {
			c.Orgs = []string{*org}
		}
	default:
		return fmt.Errorf("--role must be ADMIN, USER or SERVICE, not %q", *role)
	}
	if *subject != "" {
		c.Subject = *subject
	}
	c.Issuer = *issuer
	if *audience != "" {
		c.Audience = jwt.ClaimStrings{*audience}
	}
	t, err := auth.Mint([]byte(*secret), c, *ttl, time.Now())
	if err != nil {
		return err
	}
	if *consoleLink {
		// The token travels in the fragment, which the browser never sends.
		_, err = fmt.Fprintln(stdout, strings.TrimRight(*base, "/")+"/console/#token="+t)
		return err
	}
	_, err = fmt.Fprintln(stdout, t)
	return err
}

func sourceNames() []string {
	out := make([]string, len(domain.Sources))
	for i, s := range domain.Sources {
		out[i] = string(s)
	}
	return out
}

// withServer parses args into fs with the common flags, opens the stores
// (without serving) and runs fn on them.
func withServer(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer, fn func(zerolog.Logger, *server.Server) error) error {
	var c common
	c.register(fs)
	log, cfg, err := c.setup(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	return fn(log, srv)
}

func rebuild(ctx context.Context, args []string, stderr io.Writer) error {
	return withServer(ctx, flag.NewFlagSet("projections rebuild", flag.ContinueOnError), args, stderr,
		func(log zerolog.Logger, srv *server.Server) error {
			start := time.Now()
			if err := srv.Rebuild(ctx); err != nil {
				return err
			}
			log.Info().Dur("took", time.Since(start)).Msg("read models rebuilt")
			return nil
		})
}

// errGaps makes reconcile exit non-zero, for cron jobs and alerts.
var errGaps = errors.New("acknowledged events are missing from the read model")

func reconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projections reconcile", flag.ContinueOnError)
	repair := fs.Bool("repair", false, "re-apply every missing event from the stream")
	return withServer(ctx, fs, args, stderr, func(_ zerolog.Logger, srv *server.Server) error {
		reports, err := srv.Reconcile(ctx, *repair)
		if err != nil {
			return err
		}
		left := 0
		for _, rep := range reports {
			printReport(stdout, rep)
			left += len(rep.Gaps) - rep.Repaired
		}
		if left > 0 {
			return fmt.Errorf("%w: %d (run with --repair)", errGaps, left)
		}
		return nil
	})
}

// partitions prints the partition layout, or changes it to N: running
// instances stop the old layout's partitions and start the new one's within
// a second, each new partition starting where its slots stopped.
func partitions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projections partitions", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintf(fs.Output(), "usage: auditd projections partitions [flags] [N]\n") }
	var want int
	return withServer(ctx, fs, args, stderr, func(log zerolog.Logger, srv *server.Server) error {
		switch fs.NArg() {
		case 0:
			n, err := srv.ProjectionPartitions(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d partitions per regional stream\n", n)
			return nil
		case 1:
			n, err := strconv.Atoi(fs.Arg(0))
			if err != nil || !natsx.ValidPartitionCount(n) {
				return fmt.Errorf("partitions: N must be a power of two from 1 to %d (1, 2, 4 … %d), not %q",
					projector.MaxPartitions, projector.MaxPartitions, fs.Arg(0))
			}
			want = n
		default:
			return errors.New("usage: auditd projections partitions [flags] [N]")
		}
		old, err := srv.SetProjectionPartitions(ctx, want)
		if err != nil {
			return err
		}
		log.Info().Int("from", old).Int("to", want).Msg("partition layout changed; running instances switch within a second")
		fmt.Fprintf(stdout, "%d partitions per regional stream (was %d)\n", want, old)
		return nil
	})
}

func printReport(w io.Writer, rep *integrity.Report) {
	fmt.Fprintf(w, "%s: %d messages checked from sequence %d through %d in %s: %d gaps, %d repaired, %d quarantined, %d expired, %d unexplained rows\n",
		rep.Stream, rep.Checked, rep.From, rep.Through, rep.Took.Round(time.Millisecond), len(rep.Gaps), rep.Repaired,
		len(rep.Quarantined), rep.Expired, rep.Unexplained)
	orgs := slices.Sorted(maps.Keys(rep.Orgs))
	for _, org := range orgs {
		o := rep.Orgs[org]
		fmt.Fprintf(w, "  org %-20s messages %8d  stored %8d  duplicates %6d  missing %6d  quarantined %4d  expired %8d  rows %8d\n",
			org, o.Messages, o.Stored, o.Duplicates, o.Missing, o.Quarantined, o.Expired, o.Rows)
	}
	for _, g := range rep.Gaps {
		fmt.Fprintf(w, "  gap: sequence %d, org %s, event %s\n", g.Seq, g.OrgID, g.ID)
	}
	for _, x := range rep.Extra {
		fmt.Fprintf(w, "  extra: org %s, event %s, claims sequence %d, which holds no such event\n", x.OrgID, x.ID, x.Seq)
	}
	for _, q := range rep.Quarantined {
		fmt.Fprintf(w, "  quarantined: sequence %d, subject %s, %d bytes: %s\n", q.Seq, q.Subject, len(q.Data), q.Error)
	}
}

// keygen prints a new checkpoint signing key for AUDITD_SIGNING_KEY on
// stdout, and its verifier key, which is public, on stderr.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	name := fs.String("name", "auditlog", "key name, e.g. the service's host name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "verifier key (public): %s\n", vkey)
	_, err = fmt.Fprintln(stdout, skey)
	return err
}

// errUnverified makes verify exit non-zero.
var errUnverified = errors.New("export does not verify")

// verify checks an NDJSON export offline with the log's verifier key.
func verify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	key := fs.String("key", "", "the log's verifier key (auditLogVerifierKey)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || fs.NArg() != 1 {
		return errors.New("usage: auditd verify --key VKEY FILE")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	v, err := export.VerifyNDJSON(f, *key)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errUnverified, fs.Arg(0), err)
	}
	_, err = fmt.Fprintf(stdout, "%s: %s", fs.Arg(0), v)
	return err
}

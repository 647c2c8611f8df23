// Command auditd is the audit log service.
//
//	auditd serve                 run API, ingest and projectors
//	auditd token --org O --role ADMIN|USER|SERVICE [--name N --email E --sources S1,S2]
//	                             [--console [--url http://localhost:8080]]
//	auditd projections rebuild   drop and rebuild the read models from the log
//	auditd projections reconcile [--repair]
//	auditd projections partitions [N]  show or change the partition layout
//	                             compare each regional stream with its read model
//	auditd config [--markdown]   print the effective configuration (no secrets),
//	                             or the reference tables of docs/operations.md
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
	"github.com/auditlog/auditlog/config"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/export/ndjson"
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
		return errors.New("usage: auditd serve | config [--markdown] | token | keygen | verify --key VKEY FILE | projections rebuild | projections reconcile [--repair] | projections partitions [N]")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "token":
		return token(args[1:], stdout)
	case "config":
		return showConfig(args[1:], stdout)
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

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// setup loads the configuration of scope (config.Load: every flag and
// variable, checked) and resolves what it names: the data directory, made
// absolute, the logger and the database.
func setup(ctx context.Context, scope config.Scope, fs *flag.FlagSet, args []string, stderr io.Writer) (zerolog.Logger, server.Config, error) {
	cfg, err := config.Load(scope, fs, args, os.LookupEnv)
	if err != nil {
		return zerolog.Nop(), server.Config{}, err
	}
	// Absolute, so that nothing depends on the directory a child process
	// (initdb, pg_ctl) runs in.
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return zerolog.Nop(), server.Config{}, fmt.Errorf("data directory: %w", err)
	}
	log, err := logger(cfg.LogLevel, stderr)
	if err != nil {
		return log, server.Config{}, err
	}
	cfg.Log, cfg.Streams.Log = log, log
	if cfg.DatabaseURL, err = database(ctx, cfg.DatabaseURL, cfg.DataDir, log); err != nil {
		return log, server.Config{}, err
	}
	return log, *cfg, nil
}

func logger(levelName string, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(levelName)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level: %w", err)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "auditd").Logger(), nil
}

// database resolves the Postgres URL: the configured one, its database
// created if the server answers that it does not exist yet, else a local or
// private development server with an "auditlog" database.
func database(ctx context.Context, databaseURL, dataDir string, log zerolog.Logger) (string, error) {
	if databaseURL != "" {
		created, err := devpg.CreateMissingDatabase(ctx, databaseURL)
		if err != nil {
			return "", fmt.Errorf("database: %w", err)
		}
		if created {
			log.Warn().Msg("the database DATABASE_URL names did not exist; created it")
		}
		return databaseURL, nil
	}
	pg, err := devpg.Find(ctx, filepath.Join(dataDir, "pg"))
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

// showConfig prints the effective configuration of serve, secrets shown as
// (set) or (unset); with --markdown, the reference tables of
// docs/operations.md instead.
func showConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	markdown := fs.Bool("markdown", false, "print the reference tables of docs/operations.md")
	cfg, err := config.Load(config.Serve, fs, args, os.LookupEnv)
	if err != nil {
		return err
	}
	if *markdown {
		return config.Markdown(stdout)
	}
	return cfg.Print(stdout, config.Serve)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	log, cfg, err := setup(ctx, config.Serve, flag.NewFlagSet("serve", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	secret := cfg.JWTSecret
	switch {
	case cfg.JWKS != "":
		if cfg.Verifier, err = auth.NewJWKSVerifier(ctx, cfg.JWKS); err != nil {
			return err
		}
	case secret == "":
		// Anyone can sign tokens with the development secret, so it only
		// ever serves this machine.
		if cfg.Addr, err = loopbackOnly(cfg.Addr); err != nil {
			return err
		}
		log.Warn().Str("addr", cfg.Addr).Msg("AUDITD_JWT_SECRET not set; using the development secret, which anyone can sign tokens with, on loopback only")
		secret = devSecret
		cfg.Verifier = auth.NewHMACVerifier([]byte(devSecret))
	default:
		cfg.Verifier = auth.NewHMACVerifier([]byte(secret))
	}
	cfg.Verifier = cfg.Verifier.WithMaxLifetime(cfg.MaxUserTokenLifetime, cfg.MaxServiceTokenLifetime).
		WithIssuerAudience(cfg.JWTIssuer, cfg.JWTAudience)
	switch {
	case len(cfg.DownloadKey) > 0:
	case cfg.JWKS == "":
		// Instances sharing the JWT secret then accept each other's links.
		cfg.DownloadKey = auth.DeriveKey([]byte(secret), "auditlog export download links")
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
	log, cfg, err := setup(ctx, config.Shared, fs, args, stderr)
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
	v, err := ndjson.Verify(f, *key)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errUnverified, fs.Arg(0), err)
	}
	_, err = fmt.Fprintf(stdout, "%s: %s", fs.Arg(0), v)
	return err
}

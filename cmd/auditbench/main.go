// Command auditbench measures auditd end to end on this machine: ingest
// through the API and the NATS subject until queryable, the raw JetStream and
// Postgres ceilings for the same events, query latency at scale, export
// throughput and memory, live delivery delay to many subscribers, and log
// stream delivery to a Splunk HEC (throughput, lag, idle cost). It
// starts everything itself (embedded NATS, a scratch Postgres database) and
// prints one table, also written as JSON.
//
//	auditbench [-scale 1] [-only search] [-out .data/bench/latest.json]
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/internal/devpg"
	"github.com/auditlog/auditlog/internal/measure"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/projector"
	"github.com/auditlog/auditlog/server"
)

func main() {
	scale := flag.Float64("scale", 1, "size multiplier; make bench-quick uses 0.1")
	out := flag.String("out", envOr("BENCH_OUT", ".data/bench/latest.json"), "JSON report path (BENCH_OUT)")
	only := flag.String("only", "", "run some parts, comma-separated: ceilings, partitions, ingest, query, search, export, live, streams (default: all)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (auditd included) to this file")
	dedupe := flag.Duration("dedupe-window", 2*time.Minute, "JetStream de-duplication window for event ids (auditd's --dedupe-window)")
	flag.Parse()
	server.TuneGC() // measure auditd as it runs
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "auditbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*scale, *out, *only, *dedupe); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "auditbench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(scale float64, out, only string, dedupe time.Duration) error {
	ctx := context.Background()
	b := &bench{
		scale:     scale,
		ingestFor: time.Duration(float64(60*time.Second) * scale),
		rows:      int(1_000_000 * scale),
		orgs:      50,
		queries:   200,
	}
	rep := &measure.Report{
		Started:  time.Now().UTC(),
		Machine:  measure.Machine(),
		Versions: measure.Versions(),
		Settings: map[string]any{"scale": scale, "only": only, "gogc": gcPercent(), "ingest_seconds": b.ingestFor.Seconds(), "query_rows": b.rows,
			"orgs": b.orgs, "queries_per_path": b.queries, "batch": batchSize, "clients": clients, "dedupe_window": dedupe.String()},
	}
	fmt.Printf("auditbench: %d cores, scale %.2f\n\n", runtime.NumCPU(), scale)

	admin, err := devpg.Ensure(ctx, filepath.Join(".data", "pg"))
	if err != nil {
		return err
	}
	stopAuditd, err := b.start(ctx, admin, dedupe, false)
	if err != nil {
		return err
	}
	defer stopAuditd()
	b.pgAdmin, b.dedupe = admin, dedupe
	rep.Versions["postgres"] = pgVersion(ctx, b.dbURL)

	sb := b.streams()
	steps := []struct {
		part string
		run  func(context.Context, *measure.Report) error
	}{
		{"ceilings", b.ceilings}, {"partitions", b.partitionRates}, {"ingest", b.ingestAPI}, {"ingest", b.ingestNATS}, {"ingest", b.ingestSteady(5000)},
		{"ingest", b.ingestSteady(10000)}, {"ingest", b.ingestSteady(15000)}, {"ingest", b.treeCost}, {"ingest", b.withoutIntegrity},
		{"query", b.queryLatency}, {"search", b.searchLatency},
		{"export", b.exportRate}, {"export", b.exportFormats}, {"live", b.liveDelay},
		{"streams", sb.Throughput}, {"streams", sb.Lag}, {"streams", sb.Idle},
	}
	for _, step := range steps {
		if only != "" && !slices.Contains(strings.Split(only, ","), step.part) {
			continue
		}
		if err := step.run(ctx, rep); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nreport written to %s\n", out)
	return nil
}

// start starts auditd on loopback with embedded NATS and a scratch
// database of its own, which the returned stop drops; withoutIntegrity
// starts it keeping no records and building no trees
// (Config.BenchWithoutIntegrity). It sets b's server, address and NATS user.
func (b *bench) start(ctx context.Context, admin string, dedupe time.Duration, withoutIntegrity bool) (stop func(), err error) {
	dbName := fmt.Sprintf("auditlog_bench_%d", time.Now().UnixNano())
	dbURL, err := devpg.EnsureDatabase(ctx, admin, dbName)
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "auditbench-")
	if err != nil {
		dropDatabase(admin, dbName)
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dataDir); dropDatabase(admin, dbName) }
	secret := []byte("auditbench")
	// NATS ingest is measured the way internal services reach it: over the
	// loopback listener as an ingest user, with a service token.
	natsUser := natsx.User{Name: "auditbench", Password: rand.Text()}
	cfg := server.Config{
		Addr: "127.0.0.1:0", DataDir: dataDir, DatabaseURL: dbURL,
		Verifier: auth.NewHMACVerifier(secret), Streams: natsx.Streams{DuplicateWindow: dedupe},
		NATSListen: "127.0.0.1:-1", NATSIngestUsers: []natsx.User{natsUser},
		// Log streams deliver to the bench's collector on loopback.
		EgressAllow:           []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Log:                   zerolog.New(os.Stderr).Level(zerolog.WarnLevel),
		BenchWithoutIntegrity: withoutIntegrity,
		// auditd serve's default layout, which server.Config does not
		// assume (its zero value is one partition).
		ProjectionPartitions: projector.DefaultPartitionCount,
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cleanup()
		return nil, err
	}
	addr, err := srv.Listen()
	if err != nil {
		cleanup()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	b.srv, b.url, b.secret, b.natsUser, b.dbURL = srv, "http://"+addr.String(), secret, natsUser, dbURL
	return func() { cancel(); <-done; cleanup() }, nil
}

// gcPercent reads the collector's setting, which the runtime offers only by
// setting it.
func gcPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

func pgVersion(ctx context.Context, url string) string {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	var v string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v
}

func dropDatabase(admin, name string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

package main

import (
	"context"
	"crypto/rand"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/auditlog/auditlog/config"
	"github.com/auditlog/auditlog/internal/devpg"
	"github.com/auditlog/auditlog/internal/testenv"
)

// A first run against a fresh server names a database that does not exist
// yet; auditd creates it, and resolves a relative --data-dir once, before
// anything runs in another directory.
func TestSetupCreatesMissingDatabaseAndAbsoluteDataDir(t *testing.T) {
	ctx := context.Background()
	admin := testenv.AdminURL(t)
	name := "auditd_first_run_" + strings.ToLower(rand.Text()[:8])
	url, err := devpg.WithDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	testenv.DropOnCleanup(t, admin, name)
	t.Chdir(t.TempDir())

	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	_, cfg, err := setup(ctx, config.Serve, fs, []string{"--database-url", url, "--data-dir", "rel/.data"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != url {
		t.Fatalf("database url %q, want %q", cfg.DatabaseURL, url)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("database %s was not created: %v", name, err)
	}
	conn.Close(ctx)
	if !filepath.IsAbs(cfg.DataDir) || !strings.HasSuffix(cfg.DataDir, "/rel/.data") {
		t.Fatalf("data dir %q, want an absolute path ending in rel/.data", cfg.DataDir)
	}
}

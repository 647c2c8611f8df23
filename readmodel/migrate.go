// Package readmodel is the PostgreSQL side of the projection: the read
// model of each region (EventStore: events, ids, the Merkle tree as tiles,
// positions, quarantine) and of the settings (SettingsStore), the sinks
// the projector runtime hands batches to, the queries the API asks of them,
// their migrations (tern, embedded) and synthetic seeding. The read models
// can be dropped and rebuilt from the log at any time.
package readmodel

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/auditlog/auditlog/domain"
)

//go:embed migrations
var migrations embed.FS

// ControlSchema holds the settings read model.
const ControlSchema = "control"

// RegionSchema is the schema of region r's read model.
func RegionSchema(r domain.Region) string { return "audit_" + r.Lower() }

// Migrate creates schema and applies the embedded migrations of its kind
// ("region" or "control"). Any number of instances may start together: each
// migrates under one database-wide advisory lock (see migrateLock).
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema, kind string) error {
	return migrateTo(ctx, pool, schema, kind, -1)
}

// migrateLock is the session advisory lock every migration of the
// database runs under, whatever its schema: schema creation, extensions
// (CREATE EXTENSION IF NOT EXISTS races the same way) and tern's steps.
const migrateLock int64 = 0x6175646974_6d6967 // "audit" "mig"

// migrateTo applies the migrations of kind up to version, or all of them
// when version is negative.
func migrateTo(ctx context.Context, pool *pgxpool.Pool, schema, kind string, version int32) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	defer conn.Release()
	// CREATE SCHEMA IF NOT EXISTS is not safe against itself: two sessions
	// both see no schema and the second fails on pg_namespace's unique key.
	// tern's own lock is only taken after it, so one lock covers it all.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", schema, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock) //nolint:errcheck // ending the session ends the lock too
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schema)); err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	m, err := migrate.NewMigrator(ctx, conn.Conn(), schema+".schema_version")
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	m.Data["schema"] = schema
	sub, err := fs.Sub(migrations, "migrations/"+kind)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("migrate %s: load: %w", schema, err)
	}
	if version < 0 {
		err = m.Migrate(ctx)
	} else {
		err = m.MigrateTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	return nil
}

// DropSchema removes a read model entirely, for a rebuild.
func DropSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+quoteIdent(schema)+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	return nil
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// MigrationsDigest is a hex SHA-256 of every embedded migration, path and
// content, and of the regions MigrateAll migrates: two databases migrated
// by builds with the same digest have the same schema, so a copy of one can
// stand in for migrating the other.
func MigrationsDigest() (string, error) {
	h := sha256.New()
	for _, r := range domain.Regions {
		fmt.Fprintf(h, "region %s\x00", r)
	}
	err := fs.WalkDir(migrations, "migrations", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := migrations.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("migrations digest: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MigrateAll applies the control migrations and every region's to one
// database, as a single-database deployment's start-up does.
func MigrateAll(ctx context.Context, pool *pgxpool.Pool) error {
	if err := Migrate(ctx, pool, ControlSchema, "control"); err != nil {
		return err
	}
	for _, r := range domain.Regions {
		if err := Migrate(ctx, pool, RegionSchema(r), "region"); err != nil {
			return err
		}
	}
	return nil
}

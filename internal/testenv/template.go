package testenv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditlog/auditlog/internal/devpg"
	"github.com/auditlog/auditlog/readmodel"
	"github.com/auditlog/auditlog/repeat"
)

// templateLock serialises building the template database across test
// binaries: go test runs packages in parallel, each in its own process.
const templateLock int64 = 0x6175646974_746d70 // "audit" "tmp"

// templatePrefix names the template databases; the suffix is the
// migrations' digest, so a changed migration gets a template of its own.
const templatePrefix = "auditlog_template_"

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// MigratedPostgres is Postgres with the control and every region's
// migrations already applied. It copies a template database migrated once
// per set of migrations instead of running them again: each auditd start
// in a test saves the seconds five regions' migrations take.
func MigratedPostgres(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	templateOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		templateName, templateErr = ensureTemplate(ctx, admin)
	})
	if templateErr != nil {
		t.Fatalf("template database: %v", templateErr)
	}
	ctx := context.Background()
	name := "auditlog_test_" + RandomHex(6)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("create database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{templateName}.Sanitize()); err != nil {
		t.Fatalf("create database from %s: %v", templateName, err)
	}
	DropOnCleanup(t, admin, name)
	url, err := devpg.WithDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// ensureTemplate returns the name of the template database for this
// build's migrations, building it when no test binary has yet. It is built
// under another name and renamed when complete, so a template that exists
// is whole; templates of other migrations are dropped.
func ensureTemplate(ctx context.Context, admin string) (string, error) {
	digest, err := readmodel.MigrationsDigest()
	if err != nil {
		return "", err
	}
	name := templatePrefix + digest[:16]
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return "", fmt.Errorf("lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLock) //nolint:errcheck // closing the session unlocks too
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	dropStaleTemplates(ctx, conn)
	building := name + "_building"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", err
	}
	url, err := devpg.WithDatabase(admin, building)
	if err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return "", err
	}
	err = readmodel.MigrateAll(ctx, pool)
	pool.Close()
	if err != nil {
		return "", err
	}
	// A closed pool's sessions may linger for a moment on the server, and
	// neither a rename nor a copy may run while one does.
	rename := "ALTER DATABASE " + pgx.Identifier{building}.Sanitize() + " RENAME TO " + pgx.Identifier{name}.Sanitize()
	renameCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	inUse := errors.New("in use")
	if werr := repeat.Backoff(renameCtx, 10*time.Millisecond, 200*time.Millisecond, func() error {
		_, err = conn.Exec(renameCtx, rename)
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "55006" { // object_in_use
			return inUse
		}
		return nil
	}, func(error, time.Duration) {}); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return "", fmt.Errorf("rename %s: %w", building, err)
	}
	return name, nil
}

// dropStaleTemplates drops the templates of earlier migrations. One still
// being copied by another build's tests stays; a later run drops it.
func dropStaleTemplates(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE $1", templatePrefix+"%")
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize())
	}
}

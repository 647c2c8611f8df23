package devpg

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPrivateCluster exercises the path a machine without a local server
// takes: initdb, start on a free port, reuse, stop.
func TestPrivateCluster(t *testing.T) {
	if _, err := findBinary("initdb"); err != nil {
		t.Skip("PostgreSQL server binaries not installed: ", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	// The cluster may run as another account (root hands it to postgres),
	// which must reach the directory.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(tmp, "pg")
	url, err := start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Stop(context.Background(), dir); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if !answers(ctx, url) {
		t.Fatal("cluster does not answer")
	}
	db, err := EnsureDatabase(ctx, url, "auditlog")
	if err != nil {
		t.Fatal(err)
	}
	if !answers(ctx, db) {
		t.Fatalf("database %s does not answer", db)
	}
}

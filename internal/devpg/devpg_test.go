package devpg

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// closedURL names a loopback port nothing listens on, so that Find takes
// the private cluster path even where 127.0.0.1:5432 answers.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable"
}

func currentDatabase(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestPrivateCluster takes the path of a machine with no server at the
// well-known URL, from a checkout the way root keeps one: under a 0700
// directory (t.TempDir's parent is one) that the postgres account cannot
// enter. The cluster must start where postgres can run it, answer queries,
// be shared by parallel callers, and stop.
func TestPrivateCluster(t *testing.T) {
	if _, err := findBinary("initdb"); err != nil {
		t.Skip("PostgreSQL server binaries not installed: ", err)
	}
	t.Setenv(URLEnv, closedURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	private := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	// Relative, as make run's default used to be.
	t.Chdir(private)
	dir := filepath.Join("checkout", ".data", "pg")
	abs := filepath.Join(private, dir)
	t.Cleanup(func() {
		if err := Remove(context.Background(), abs); err != nil {
			t.Errorf("remove: %v", err)
		}
	})

	// Parallel test processes all call Find at once; one cluster starts.
	const callers = 3
	servers := make([]Server, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { servers[i], errs[i] = Find(ctx, dir) })
	}
	wg.Wait()
	started := 0
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !s.Private || s.URL != servers[0].URL || s.Dir != servers[0].Dir {
			t.Fatalf("callers got different servers: %+v", servers)
		}
		if s.Started {
			started++
		}
	}
	if started != 1 {
		t.Fatalf("%d callers started a cluster, want 1: %+v", started, servers)
	}
	s := servers[0]
	if where, err := ClusterDir(ctx, abs); err != nil || where != s.Dir {
		t.Fatalf("ClusterDir = %q, %v; Find used %q", where, err, s.Dir)
	}

	if os.Geteuid() == 0 {
		if strings.HasPrefix(s.Dir, private) {
			t.Fatalf("cluster in %s, which postgres cannot reach", s.Dir)
		}
		fi, err := os.Stat(s.Dir)
		if err != nil {
			t.Fatal(err)
		}
		owner, err := clusterOwner()
		if err != nil {
			t.Fatal(err)
		}
		if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != owner.Uid || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: uid %s mode %v, want postgres's (%s) and 0700", s.Dir, uid, fi.Mode().Perm(), owner.Uid)
		}
	} else if s.Dir != abs {
		t.Fatalf("cluster in %s, want %s", s.Dir, abs)
	}
	if got := currentDatabase(t, ctx, s.URL); got != "postgres" {
		t.Fatalf("current_database() = %q", got)
	}

	t.Run("EnsureDatabase", func(t *testing.T) {
		// An admin URL without a query string, as AUDITD_DEV_PG_URL or
		// TEST_DATABASE_URL may be written.
		admin := strings.TrimSuffix(s.URL, "?sslmode=disable")
		name := "devpg_test_" + strings.ToLower(rand.Text()[:8])
		u, err := EnsureDatabase(ctx, admin, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := currentDatabase(t, ctx, u); got != name {
			t.Fatalf("%s reaches database %q, want %q", u, got, name)
		}
		if again, err := EnsureDatabase(ctx, admin, name); err != nil || again != u {
			t.Fatalf("second EnsureDatabase = %q, %v", again, err)
		}
	})

	t.Run("CreateMissingDatabase", func(t *testing.T) {
		name := "devpg_test_" + strings.ToLower(rand.Text()[:8])
		asURL, err := WithDatabase(s.URL, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pgx.ParseConfig(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		asKeywords := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres sslmode=disable dbname=%s_kv", cfg.Port, name)
		for _, u := range []string{asURL, asKeywords} {
			created, err := CreateMissingDatabase(ctx, u)
			if err != nil || !created {
				t.Fatalf("%s: created %v, %v", u, created, err)
			}
			if created, err := CreateMissingDatabase(ctx, u); err != nil || created {
				t.Fatalf("%s again: created %v, %v", u, created, err)
			}
			if got := currentDatabase(t, ctx, u); !strings.HasPrefix(got, name) {
				t.Fatalf("%s reaches database %q", u, got)
			}
		}
	})

	t.Run("WellKnownFirst", func(t *testing.T) {
		// A server answering at the well-known URL is used as it is.
		t.Setenv(URLEnv, s.URL)
		got, err := Find(ctx, filepath.Join(t.TempDir(), "pg"))
		if err != nil || got.Private || got.URL != s.URL {
			t.Fatalf("Find = %+v, %v; want the well-known %s", got, err, s.URL)
		}
	})

	if err := Stop(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if answers(ctx, s.URL) {
		t.Fatal("cluster still answers after Stop")
	}
	if err := Stop(ctx, dir); err == nil {
		t.Fatal("second Stop found a cluster to stop")
	}
	// A later Find starts it again on the data it had.
	again, err := Find(ctx, dir)
	if err != nil || !again.Started || again.Dir != s.Dir {
		t.Fatalf("Find after Stop = %+v, %v", again, err)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/auditlog?sslmode=disable"},
		{"postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/auditlog"},
		{"postgresql://u:p%40ss@db.internal", "postgresql://u:p%40ss@db.internal/auditlog"},
		{"host=/run/postgresql dbname=postgres", "host=/run/postgresql dbname=postgres dbname='auditlog'"},
	} {
		got, err := WithDatabase(tc.in, "auditlog")
		if err != nil || got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if cfg, err := pgx.ParseConfig(got); err != nil || cfg.Database != "auditlog" {
			t.Errorf("%q parses to database %q, %v", got, cfg.Database, err)
		}
	}
}

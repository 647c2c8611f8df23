// Package devpg finds or starts a PostgreSQL server for development and
// tests: a server answering at a well-known URL (127.0.0.1:5432 unless
// AUDITD_DEV_PG_URL says otherwise), else a private cluster made with the
// machine's initdb and pg_ctl.
//
// The private cluster lives in the directory callers name (the checkout's
// .data/pg), except when running as root with a checkout the postgres
// account cannot reach (under /root, say): PostgreSQL refuses to run as
// root, so the cluster then goes to a per-checkout directory under /var/tmp
// that postgres owns. ClusterDir tells where.
package devpg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultURL is the well-known server tried first: a machine's own
// PostgreSQL, as Debian and most installers set it up.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URLEnv names the environment variable that replaces DefaultURL, so that a
// developer can point at another server, and a test or CI script can name a
// closed port to force the private cluster path on a machine whose 5432
// answers.
const URLEnv = "AUDITD_DEV_PG_URL"

// WellKnownURL is the server Find tries before a private cluster.
func WellKnownURL() string {
	if u := os.Getenv(URLEnv); u != "" {
		return u
	}
	return DefaultURL
}

// Server is what Find found or started, for callers that tell the user
// where their data is.
type Server struct {
	// URL reaches the server's maintenance database as a user who may
	// create databases.
	URL string
	// Private is set when the server is a private cluster rather than the
	// well-known one.
	Private bool
	// Dir is the private cluster's directory: data/, log and port.
	Dir string
	// Started is set when this call started the cluster.
	Started bool
}

// Ensure is Find for callers that need only the URL.
func Ensure(ctx context.Context, dir string) (string, error) {
	s, err := Find(ctx, dir)
	return s.URL, err
}

// Find returns the well-known server when it answers, else the private
// cluster for dir (see ClusterDir), initialized and started as needed. A
// private cluster keeps running afterwards so that later runs and parallel
// test processes share it; Stop ends it.
func Find(ctx context.Context, dir string) (Server, error) {
	wellKnown := WellKnownURL()
	if answers(ctx, wellKnown) {
		return Server{URL: wellKnown}, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Server{}, fmt.Errorf("private postgres cluster: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Server{}, fmt.Errorf("private postgres cluster: %w", err)
	}
	// Several test processes may get here at once; one starts the cluster.
	unlock, err := lockFile(filepath.Join(filepath.Dir(dir), "pg.lock"))
	if err != nil {
		return Server{}, fmt.Errorf("private postgres cluster: %w", err)
	}
	defer unlock()

	owner, err := clusterOwner()
	if err != nil {
		return Server{}, err
	}
	cluster, err := clusterDir(ctx, dir, owner)
	if err != nil {
		return Server{}, err
	}
	if port, err := os.ReadFile(filepath.Join(cluster, "port")); err == nil {
		u := clusterURL(strings.TrimSpace(string(port)))
		if answers(ctx, u) {
			return Server{URL: u, Private: true, Dir: cluster}, nil
		}
	}
	u, err := start(ctx, cluster, owner)
	if err != nil {
		return Server{}, fmt.Errorf("private postgres cluster in %s (no server answers at %s): %w", cluster, redact(wellKnown), err)
	}
	return Server{URL: u, Private: true, Dir: cluster, Started: true}, nil
}

// ClusterDir is where the private cluster for dir lives: dir itself, or,
// when running as root and the postgres account cannot reach dir,
// /var/tmp/auditlog-pg-<hash of dir>.
func ClusterDir(ctx context.Context, dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	owner, err := clusterOwner()
	if err != nil {
		return "", err
	}
	return clusterPath(ctx, dir, owner), nil
}

func clusterPath(ctx context.Context, dir string, owner *user.User) string {
	if owner == nil || reachable(ctx, dir, owner) {
		return dir
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(fallbackBase(), "auditlog-pg-"+hex.EncodeToString(sum[:6]))
}

// fallbackBase is /var/tmp, which outlives a reboot and is open to every
// account, else the temporary directory.
func fallbackBase() string {
	if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() {
		return "/var/tmp"
	}
	return os.TempDir()
}

// clusterDir is clusterPath made ready for owner: created and, when owner is
// set, owned by it. A directory under the shared /var/tmp is trusted only if
// it is a real directory that owner or root already owns.
func clusterDir(ctx context.Context, dir string, owner *user.User) (string, error) {
	cluster := clusterPath(ctx, dir, owner)
	if cluster == dir {
		return dir, chown(dir, owner)
	}
	if err := os.Mkdir(cluster, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("private postgres cluster (the postgres account cannot reach %s): %w", dir, err)
	}
	fi, err := os.Lstat(cluster)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	uid, _ := strconv.Atoi(owner.Uid)
	if !fi.IsDir() || !ok || (st.Uid != 0 && int(st.Uid) != uid) {
		return "", fmt.Errorf("private postgres cluster: %s is not a directory of root or %s; remove it", cluster, owner.Username)
	}
	if err := os.Chmod(cluster, 0o700); err != nil {
		return "", err
	}
	return cluster, chown(cluster, owner)
}

// reachable reports whether owner can enter dir, or the nearest part of it
// that exists (the rest is made 0755 by root). It asks the kernel as owner,
// which counts every ancestor's mode and ACL.
func reachable(ctx context.Context, dir string, owner *user.User) bool {
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
	test, err := exec.LookPath("test")
	if err != nil {
		return false
	}
	return run(ctx, owner, test, "-x", dir) == nil
}

func clusterURL(port string) string {
	return "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
}

// redact drops a password from u for messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

func answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx) == nil
}

// start initializes the cluster in dir if it has none and starts it on a
// free loopback port. It listens on TCP only: a Unix socket path has a
// length limit a deep checkout would pass.
func start(ctx context.Context, dir string, owner *user.User) (string, error) {
	initdb, err := findBinary("initdb")
	if err != nil {
		return "", err
	}
	pgctl, err := findBinary("pg_ctl")
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := run(ctx, owner, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
			return "", err
		}
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	// pg_ctl hands -o to a shell, hence the quotes.
	opts := fmt.Sprintf("-p %d -h 127.0.0.1 -c unix_socket_directories='' -c fsync=off", port)
	if err := run(ctx, owner, pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "start"); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "port"), []byte(strconv.Itoa(port)), 0o644); err != nil {
		return "", err
	}
	u := clusterURL(strconv.Itoa(port))
	if !answers(ctx, u) {
		return "", errors.New("started but does not answer; see " + filepath.Join(dir, "log"))
	}
	return u, nil
}

// ErrNotRunning is what Stop returns when no private cluster runs for dir,
// which callers that only want it stopped may ignore.
var ErrNotRunning = errors.New("no private postgres cluster running")

// Stop stops the private cluster for dir, if one runs.
func Stop(ctx context.Context, dir string) error {
	cluster, err := ClusterDir(ctx, dir)
	if err != nil {
		return err
	}
	data := filepath.Join(cluster, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
		return fmt.Errorf("%w in %s", ErrNotRunning, cluster)
	}
	pgctl, err := findBinary("pg_ctl")
	if err != nil {
		return err
	}
	owner, err := clusterOwner()
	if err != nil {
		return err
	}
	return run(ctx, owner, pgctl, "-D", data, "-m", "fast", "-w", "stop")
}

// Remove stops the private cluster for dir and deletes it with its data,
// for scripts that must leave nothing behind in /var/tmp.
func Remove(ctx context.Context, dir string) error {
	if err := Stop(ctx, dir); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	cluster, err := ClusterDir(ctx, dir)
	if err != nil {
		return err
	}
	return os.RemoveAll(cluster)
}

// findBinary looks on PATH, then in Debian's versioned directories.
func findBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s is not installed; install PostgreSQL's server (e.g. apt-get install postgresql), or set DATABASE_URL or %s to a server that answers", name, URLEnv)
}

// clusterOwner is who runs the cluster: PostgreSQL refuses to run as root,
// so root hands it to the postgres account.
func clusterOwner() (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root needs a postgres account to own the private cluster (apt-get install postgresql makes one)")
	}
	return u, nil
}

func chown(dir string, u *user.User) error {
	if u == nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Lchown(dir, uid, gid)
}

func run(ctx context.Context, u *user.User, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = "/"
	if u != nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// EnsureDatabase creates database name on the server of adminURL if it does
// not exist, and returns its URL.
func EnsureDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := createIfMissing(ctx, conn, name); err != nil {
		return "", err
	}
	return WithDatabase(adminURL, name)
}

// CreateMissingDatabase creates the database connString names when the
// server answers that it does not exist, so that a first run against a
// fresh server works as it does against the private cluster. It reports
// whether it created it.
func CreateMissingDatabase(ctx context.Context, connString string) (bool, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return false, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		conn.Close(ctx)
		return false, nil
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "3D000" { // invalid_catalog_name
		return false, err
	}
	name := cfg.Database
	var admin *pgx.Conn
	for _, maintenance := range []string{"postgres", "template1"} {
		c := cfg.Copy()
		c.Database = maintenance
		if admin, err = pgx.ConnectConfig(ctx, c); err == nil {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("database %q does not exist and no maintenance database to create it from answers: %w", name, err)
	}
	defer admin.Close(ctx)
	return createIfMissing(ctx, admin, name)
}

func createIfMissing(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for database %s: %w", name, err)
	}
	if exists {
		return false, nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P04" { // duplicate_database: a racing process made it
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create database %s: %w", name, err)
	}
	return true, nil
}

// WithDatabase is connString naming database name instead, in either of the
// forms libpq accepts: a URL or keyword=value pairs.
func WithDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", fmt.Errorf("database url: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// A later keyword overrides an earlier one.
	quoted := strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), `'`, `\'`)
	return strings.TrimSpace(connString) + " dbname='" + quoted + "'", nil
}

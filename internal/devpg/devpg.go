// Package devpg finds or starts a PostgreSQL server for development and
// tests: a server answering on 127.0.0.1:5432, else a private cluster under
// the data directory, made with the machine's initdb and pg_ctl.
package devpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the local server tried first.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Ensure returns the URL of a reachable server's maintenance database: the
// local one when it answers, else a private cluster in dir, started (and
// initialized) as needed. A private cluster keeps running afterwards so
// later runs and parallel test processes share it; Stop ends it.
func Ensure(ctx context.Context, dir string) (string, error) {
	if answers(ctx, DefaultURL) {
		return DefaultURL, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Several test processes may get here at once; one starts the cluster.
	unlock, err := lockFile(filepath.Join(dir, "..", "pg.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	if port, err := os.ReadFile(filepath.Join(dir, "port")); err == nil {
		url := clusterURL(strings.TrimSpace(string(port)))
		if answers(ctx, url) {
			return url, nil
		}
	}
	return start(ctx, dir)
}

func clusterURL(port string) string {
	return "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
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

func start(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	initdb, err := findBinary("initdb")
	if err != nil {
		return "", err
	}
	pgctl, err := findBinary("pg_ctl")
	if err != nil {
		return "", err
	}
	data := filepath.Join(dir, "data")
	owner, err := clusterOwner()
	if err != nil {
		return "", err
	}
	if err := chown(dir, owner); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := run(ctx, owner, initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
			return "", fmt.Errorf("initdb: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	opts := fmt.Sprintf("-p %d -h 127.0.0.1 -k %s -c fsync=off", port, dir)
	if err := run(ctx, owner, pgctl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "start"); err != nil {
		return "", fmt.Errorf("pg_ctl start: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "port"), []byte(strconv.Itoa(port)), 0o644); err != nil {
		return "", err
	}
	url := clusterURL(strconv.Itoa(port))
	if !answers(ctx, url) {
		return "", errors.New("private postgres cluster started but does not answer")
	}
	return url, nil
}

// Stop stops the private cluster in dir, if one runs.
func Stop(ctx context.Context, dir string) error {
	pgctl, err := findBinary("pg_ctl")
	if err != nil {
		return err
	}
	owner, err := clusterOwner()
	if err != nil {
		return err
	}
	return run(ctx, owner, pgctl, "-D", filepath.Join(dir, "data"), "-m", "fast", "stop")
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
	return "", fmt.Errorf("no PostgreSQL server answers on 127.0.0.1:5432 and %s is not installed; install PostgreSQL (e.g. apt-get install postgresql) or set DATABASE_URL", name)
}

// clusterOwner is who runs the cluster: PostgreSQL refuses to run as root,
// so root hands it to the postgres account.
func clusterOwner() (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root needs a postgres account to own the private cluster")
	}
	return u, nil
}

func chown(dir string, u *user.User) error {
	if u == nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

func run(ctx context.Context, u *user.User, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	if u != nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = "/"
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
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return "", err
	}
	return strings.Replace(adminURL, "/"+cfg.Database+"?", "/"+name+"?", 1), nil
}

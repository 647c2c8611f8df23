// Package testenv starts the real dependencies integration tests need: an
// embedded NATS JetStream server, a fresh Postgres database, and a whole
// auditd on a loopback port. Everything is torn down by t.Cleanup.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/devpg"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

var (
	adminOnce sync.Once
	adminURL  string
	adminErr  error
)

// RepoRoot finds the module root, where .data and the cluster configuration live.
func RepoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// AdminURL is a Postgres URL with the right to create databases: the
// TEST_DATABASE_URL environment variable, else a local or private server.
func AdminURL(t testing.TB) string {
	t.Helper()
	adminOnce.Do(func() {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			adminURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		adminURL, adminErr = devpg.Ensure(ctx, filepath.Join(RepoRoot(), ".data", "pg"))
	})
	if adminErr != nil {
		t.Fatalf("postgres: %v", adminErr)
	}
	return adminURL
}

// Postgres creates an empty database for this test and drops it afterwards.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	ctx := context.Background()
	name := "auditlog_test_" + RandomHex(6)
	url, err := devpg.EnsureDatabase(ctx, admin, name)
	if err != nil {
		t.Fatalf("create database: %v", err)
	}
	DropOnCleanup(t, admin, name)
	return url
}

// DropOnCleanup drops database name, through the server admin reaches,
// when t ends.
func DropOnCleanup(t testing.TB, admin, name string) {
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
}

// Rebuild stops e, rebuilds every read model from the streams as
// auditd projections rebuild does, and starts auditd again on the same
// configuration.
func (e *Env) Rebuild(t testing.TB) *Env {
	t.Helper()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	return StartConfig(t, e.Config)
}

// RandomHex is n random bytes in hex, for names and passwords no two tests share.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Secret signs the tokens of test environments.
var Secret = []byte("testenv-secret")

// Env is a running auditd with its own NATS and database.
type Env struct {
	*server.Server
	URL    string // http://127.0.0.1:port
	DBURL  string
	Config server.Config
	cancel context.CancelFunc
	done   chan error
}

// Option adjusts an Env's configuration before it starts.
type Option func(*server.Config)

// Start runs auditd for t on a free loopback port.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	return StartConfig(t, Config(t, opts...))
}

// Config is the configuration Start runs auditd with: a fresh database
// and data directory, the test secret, and opts applied.
func Config(t testing.TB, opts ...Option) server.Config {
	t.Helper()
	cfg := server.Config{
		Addr:          "127.0.0.1:0",
		DataDir:       t.TempDir(),
		DatabaseURL:   MigratedPostgres(t),
		Verifier:      auth.NewHMACVerifier(Secret),
		Streams:       natsx.Streams{DuplicateWindow: time.Minute},
		Introspection: true,
		Log:           zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// StartConfig runs auditd with cfg exactly.
func StartConfig(t testing.TB, cfg server.Config) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("start auditd: %v", err)
	}
	addr, err := srv.Listen()
	if err != nil {
		srv.Close()
		t.Fatalf("listen: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	e := &Env{Server: srv, URL: "http://" + addr.String(), DBURL: cfg.DatabaseURL, Config: cfg, cancel: stop, done: make(chan error, 1)}
	go func() { e.done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("auditd stopped with: %v", err)
		}
	})
	return e
}

// Stop shuts auditd down gracefully and returns what Run returned. Calling it
// again returns nil.
func (e *Env) Stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("auditd did not stop within 30s")
	}
}

// IngestUser is the NATS user WithNATSIngest lets connect.
var IngestUser = natsx.User{Name: "ingest", Password: "testenv-ingest-password"}

// WithNATSIngest opens the embedded NATS's ingest listener on a free
// loopback port for IngestUser; NATSIngest connects through it.
func WithNATSIngest() Option {
	return func(c *server.Config) {
		c.NATSListen = "127.0.0.1:-1"
		c.NATSIngestUsers = []natsx.User{IngestUser}
	}
}

// NATSIngest connects to e's ingest listener as IngestUser, the way an
// internal service does, with opts added; e must have been started
// WithNATSIngest.
func (e *Env) NATSIngest(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	url := e.NATSIngestURL()
	if url == "" {
		t.Fatal("auditd has no NATS ingest listener; start it WithNATSIngest")
	}
	opts = append([]nats.Option{nats.UserInfo(IngestUser.Name, IngestUser.Password), nats.Name(t.Name()),
		nats.CustomInboxPrefix(natsx.IngestInboxPrefix(IngestUser.Name))}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as ingest user: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Token mints a token for claims, valid for an hour.
func Token(t testing.TB, c auth.Claims) string {
	t.Helper()
	s, err := auth.Mint(Secret, c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// AdminToken is a token of an administrator of org.
func AdminToken(t testing.TB, org string) string {
	return Token(t, auth.Claims{
		RegisteredClaims: jwtSubject("user:admin@" + org), Org: org, Kind: "user",
		Roles: []string{domain.RoleAdmin}, Name: "Ada Admin", Email: "ada@" + org + ".example",
	})
}

// UserToken is a token of a user of org who is not an administrator.
func UserToken(t testing.TB, org string) string {
	return Token(t, auth.Claims{
		RegisteredClaims: jwtSubject("user:user@" + org), Org: org, Kind: "user",
		Roles: []string{"USER"}, Name: "Uma User", Email: "uma@" + org + ".example",
	})
}

// ServiceToken is a token of a service that may record for every source and org.
func ServiceToken(t testing.TB) string {
	sources := make([]string, len(domain.Sources))
	for i, s := range domain.Sources {
		sources[i] = string(s)
	}
	return Token(t, auth.Claims{RegisteredClaims: jwtSubject("service:test"), Kind: "service", Sources: sources})
}

// Response is a GraphQL response.
type Response struct {
	Status int
	Header http.Header
	Data   json.RawMessage
	Errors []GraphQLError
}

// GraphQLError is one entry of a response's errors.
type GraphQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the error's extensions.code.
func (e GraphQLError) Code() string { s, _ := e.Extensions["code"].(string); return s }

// Do POSTs a GraphQL request to e with token (none when empty).
func (e *Env) Do(t testing.TB, token, query string, vars map[string]any) Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return e.Post(t, token, bytes.NewReader(body))
}

// Post sends body to /query as it is. A body that is not a *bytes.Reader,
// *bytes.Buffer or *strings.Reader has no declared length and goes chunked.
func (e *Env) Post(t testing.TB, token string, body io.Reader) Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/query", body)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(t, req)
}

func send(t testing.TB, req *http.Request) Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("graphql request: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   json.RawMessage `json:"data"`
		Errors []GraphQLError  `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("graphql response (status %d) is not JSON: %v", resp.StatusCode, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Data: out.Data, Errors: out.Errors}
}

// MustData fails t when r has errors and decodes its data into v.
func (r Response) MustData(t testing.TB, v any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("graphql errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// ErrorCode is the code of the only error of r; it fails t otherwise.
func (r Response) ErrorCode(t testing.TB) string {
	t.Helper()
	if len(r.Errors) != 1 {
		t.Fatalf("want exactly one error, got %+v (data %s)", r.Errors, r.Data)
	}
	return r.Errors[0].Code()
}

// WaitProjected waits until every read model holds everything its stream
// held when WaitProjected was called.
func (e *Env) WaitProjected(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type target struct {
		stream     string
		checkpoint func(context.Context) (uint64, error)
	}
	targets := []target{{natsx.ControlStream, e.SettingsStore().Position}}
	for _, r := range domain.Regions {
		targets = append(targets, target{natsx.AuditStream(r), e.EventStore(r).Position})
	}
	// Settings changes append opt events to regional streams, so settle the
	// control stream before reading the regional ones' heads.
	for _, tg := range targets {
		s, err := e.JetStream().Stream(ctx, tg.stream)
		if err != nil {
			t.Fatalf("stream %s: %v", tg.stream, err)
		}
		last := s.CachedInfo().State.LastSeq
		for {
			cp, err := tg.checkpoint(ctx)
			if err != nil {
				t.Fatalf("checkpoint %s: %v", tg.stream, err)
			}
			if cp >= last {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: read model at %d, stream at %d after 20s", tg.stream, cp, last)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// EnableOrg opts org in to region through the API.
func (e *Env) EnableOrg(t testing.TB, org string, region domain.Region) {
	t.Helper()
	r := e.Do(t, AdminToken(t, org), `mutation($r: Region!) { enableAuditLog(region: $r) { enabled } }`,
		map[string]any{"r": string(region)})
	var out struct{ EnableAuditLog struct{ Enabled bool } }
	r.MustData(t, &out)
	if !out.EnableAuditLog.Enabled {
		t.Fatalf("enable %s: still disabled", org)
	}
}

func jwtSubject(sub string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: sub} }

// JetStream starts an embedded NATS server for t, without a listener, with
// the audit streams declared, and returns an in-process JetStream context
// on it.
func JetStream(t testing.TB, streams natsx.Streams) jetstream.JetStream {
	t.Helper()
	ns, err := natsx.Embedded{Dir: t.TempDir()}.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect("testenv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return js
}

// Pool opens a pool on a fresh database for t.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ExternalNATS is a NATS server with JetStream that auditd reaches over
// loopback TCP, as a deployment's own server, which tests can stop and
// start again on the same port and storage.
type ExternalNATS struct {
	t    testing.TB
	opts natsserver.Options
	ns   *natsserver.Server
}

// StartExternalNATS starts an ExternalNATS for t on a free loopback port.
func StartExternalNATS(t testing.TB) *ExternalNATS {
	t.Helper()
	x := &ExternalNATS{t: t, opts: natsserver.Options{
		ServerName: "external", Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		// The users of docs/operations.md#nats-permissions; a client that
		// names none is auditd's user, as tests that dial directly expect.
		Users: []*natsserver.User{
			{Username: ExternalUser.User, Password: ExternalUser.Password},
			{Username: ExternalResponder.User, Password: ExternalResponder.Password, Permissions: natsx.ResponderPermissions()},
			{Username: IngestUser.Name, Password: IngestUser.Password, Permissions: natsx.IngestPermissions(IngestUser.Name)},
		},
		NoAuthUser: ExternalUser.User,
	}}
	x.start()
	x.opts.Port = x.ns.Addr().(*net.TCPAddr).Port // a restart comes back on the same port
	t.Cleanup(x.Stop)
	return x
}

func (x *ExternalNATS) start() {
	x.t.Helper()
	opts := x.opts
	ns, err := natsserver.NewServer(&opts)
	if err != nil {
		x.t.Fatalf("nats server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		x.t.Fatal("nats server not ready after 10s")
	}
	x.ns = ns
}

// ExternalUser and ExternalResponder are auditd's users on an
// ExternalNATS: every right, and ingest replies only.
var (
	ExternalUser      = natsx.Credentials{User: "auditd", Password: "testenv-auditd-password"}
	ExternalResponder = natsx.Credentials{User: "auditd-responder", Password: "testenv-responder-password"}
)

// Use points c at x with auditd's users.
func (x *ExternalNATS) Use(c *server.Config) {
	c.NATSURL = x.URL()
	c.NATSCredentials = ExternalUser
	c.NATSResponderCredentials = ExternalResponder
}

// URL is where clients reach the server.
func (x *ExternalNATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", x.opts.Port) }

// Stop shuts the server down at once, dropping every connection.
func (x *ExternalNATS) Stop() {
	if x.ns != nil {
		x.ns.Shutdown()
		x.ns.WaitForShutdown()
		x.ns = nil
	}
}

// Restart starts the stopped server again with the storage it had.
func (x *ExternalNATS) Restart() { x.start() }

// BucketUsage is the bytes and values a key-value bucket of e holds now,
// to check that a request wrote nothing.
func (e *Env) BucketUsage(t testing.TB, bucket string) (bytes, values uint64) {
	t.Helper()
	kv, err := e.JetStream().KeyValue(t.Context(), bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	st, err := kv.Status(t.Context())
	if err != nil {
		t.Fatalf("bucket %s status: %v", bucket, err)
	}
	return st.Bytes(), st.Values()
}

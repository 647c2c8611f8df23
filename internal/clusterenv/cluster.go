// Package clusterenv runs real processes for the cluster tests: a three-node
// nats-server cluster from the repo's cluster/*.conf, and auditd binaries
// built from this module, which a test can kill, freeze, thaw and restart.
// The in-process dependencies of other tests are internal/testenv's.
package clusterenv

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/note"

	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
)

// ClusterSize is the number of nodes StartNATSCluster starts, as the repo's
// cluster/n1.conf ... n3.conf describe.
const ClusterSize = 3

// ClusterUser is the NATS user auditd authenticates as in the repo's
// cluster configuration.
const ClusterUser = "auditd"

// ClusterResponderUser answers ingest requests in the repo's cluster
// configuration: it may publish under _INBOX only.
const ClusterResponderUser = "auditd-responder"

// binaries builds each command once per test binary.
type binaries struct {
	mu    sync.Mutex
	built map[string]*builtBinary
}

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

var testBinaries = &binaries{built: map[string]*builtBinary{}}

// Binary builds the main package pkg (a module path or ./cmd/...) of this
// module into .data/testbin/name, once per test binary, and returns its
// path. The go command's own cache keeps a rebuild of an unchanged package
// quick; the file is replaced atomically, so a test binary running an
// earlier build is not disturbed.
func Binary(t testing.TB, name, pkg string) string {
	t.Helper()
	testBinaries.mu.Lock()
	b := testBinaries.built[name]
	if b == nil {
		b = &builtBinary{}
		testBinaries.built[name] = b
	}
	testBinaries.mu.Unlock()
	b.once.Do(func() { b.path, b.err = build(name, pkg) })
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

func build(name, pkg string) (string, error) {
	root := testenv.RepoRoot()
	dir := filepath.Join(root, ".data", "testbin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		gocmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s-%d-%s", name, os.Getpid(), testenv.RandomHex(4)))
	cmd := exec.Command(gocmd, "build", "-o", tmp, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// NATSCluster is a three-node NATS JetStream cluster of real nats-server
// processes, built from the module's nats-server and configured by the
// repo's cluster/n<i>.conf, on free loopback ports with storage in temporary
// directories. Nodes are numbered 0 to ClusterSize-1 and named n1 to n3.
type NATSCluster struct {
	t        testing.TB
	bin      string
	env      []string
	password string
	// responderPassword is ClusterResponderUser's.
	responderPassword string
	nodes             [ClusterSize]*natsNode

	mu      sync.Mutex
	dbURL   string // the database every auditd of this cluster shares
	signing string // and their checkpoint signing key
}

type natsNode struct {
	name                      string
	conf, store, logPath      string
	port, routePort, httpPort int
	cmd                       *exec.Cmd
	done                      chan struct{}
}

// ClusterOption adjusts a cluster before it starts.
type ClusterOption func(*clusterOptions)

type clusterOptions struct {
	tags map[int][]string
}

// WithNodeTags gives node i (0-based) exactly tags instead of the repo
// configuration's server_tags, e.g. to leave one node out of a region.
func WithNodeTags(i int, tags ...string) ClusterOption {
	return func(o *clusterOptions) { o.tags[i] = tags }
}

// serverTagsLine is the line of a node's configuration that carries its
// placement tags.
var serverTagsLine = regexp.MustCompile(`(?m)^server_tags:.*$`)

// StartNATSCluster starts a cluster for t from the repo's configuration and
// waits until JetStream has a meta leader that every node follows. The
// processes are killed when t ends; their logs are shown if t failed.
func StartNATSCluster(t testing.TB, opts ...ClusterOption) *NATSCluster {
	t.Helper()
	o := clusterOptions{tags: map[int][]string{}}
	for _, opt := range opts {
		opt(&o)
	}
	for i := range o.tags {
		if i < 0 || i >= ClusterSize {
			t.Fatalf("WithNodeTags(%d): nodes are 0 to %d", i, ClusterSize-1)
		}
	}
	c := &NATSCluster{t: t, bin: Binary(t, "nats-server", "github.com/nats-io/nats-server/v2"), password: "p" + testenv.RandomHex(16),
		responderPassword: "p" + testenv.RandomHex(16)}
	dir := t.TempDir()
	routePassword := "p" + testenv.RandomHex(16)
	c.env = []string{
		"AUDITLOG_NATS_PASSWORD=" + c.password,
		"AUDITLOG_NATS_RESPONDER_PASSWORD=" + c.responderPassword,
		"AUDITLOG_NATS_INGEST_PASSWORD=p" + testenv.RandomHex(16),
		"AUDITLOG_NATS_SYS_PASSWORD=p" + testenv.RandomHex(16),
		"AUDITLOG_NATS_ROUTE_PASSWORD=" + routePassword,
	}
	ports := freePorts(t, 3*ClusterSize)
	for i := range c.nodes {
		n := &natsNode{
			name: fmt.Sprintf("n%d", i+1), store: filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			conf: filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1)), logPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1)),
			port: ports[3*i], routePort: ports[3*i+1], httpPort: ports[3*i+2],
		}
		src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "cluster", n.name+".conf"))
		if err != nil {
			t.Fatalf("cluster configuration: %v", err)
		}
		if tags, ok := o.tags[i]; ok {
			quoted := make([]string, len(tags))
			for j, tag := range tags {
				quoted[j] = strconv.Quote(tag)
			}
			src = serverTagsLine.ReplaceAll(src, []byte("server_tags: ["+strings.Join(quoted, ", ")+"]"))
		}
		if err := os.WriteFile(n.conf, src, 0o600); err != nil {
			t.Fatal(err)
		}
		v := fmt.Sprintf("AUDITLOG_N%d_", i+1)
		c.env = append(c.env,
			v+"PORT="+strconv.Itoa(n.port), v+"ROUTE_PORT="+strconv.Itoa(n.routePort),
			v+"HTTP_PORT="+strconv.Itoa(n.httpPort), v+"STORE_DIR="+n.store,
			fmt.Sprintf("%sROUTE=nats-route://route:%s@127.0.0.1:%d", v, routePassword, n.routePort))
		c.nodes[i] = n
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stopNode(i)
		}
		if t.Failed() {
			for _, n := range c.nodes {
				showLog(t, "nats-server "+n.name, n.logPath)
			}
		}
	})
	for i := range c.nodes {
		c.startNode(i)
	}
	c.WaitReady()
	return c
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (c *NATSCluster) startNode(i int) {
	c.t.Helper()
	n := c.nodes[i]
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "-c", n.conf)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(n.done)
	}()
}

// stopNode kills node i, if it runs, and waits for it to end.
func (c *NATSCluster) stopNode(i int) {
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// Kill ends node i at once with SIGKILL, as a crash would.
func (c *NATSCluster) Kill(i int) { c.stopNode(i) }

// Terminate stops node i with SIGTERM, as an operator's restart does: the
// server shuts down gracefully (its JetStream assets stepping down first)
// and exits; it waits up to 30 s, then kills it.
func (c *NATSCluster) Terminate(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s did not exit within 30s of SIGTERM; killing it", n.name)
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// Restart starts the killed node i again, with its storage and ports, and
// waits until the cluster is whole again.
func (c *NATSCluster) Restart(i int) {
	c.t.Helper()
	if c.nodes[i].cmd != nil {
		c.t.Fatalf("restart %s: it is running", c.nodes[i].name)
	}
	c.startNode(i)
	c.WaitReady()
}

// Name is the server name of node i: n1, n2 or n3.
func (c *NATSCluster) Name(i int) string { return c.nodes[i].name }

// URLs are the client URLs of the nodes.
func (c *NATSCluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.port)
	}
	return urls
}

// URL is every node's client URL, comma-separated, as NATS_URL takes them.
func (c *NATSCluster) URL() string { return strings.Join(c.URLs(), ",") }

// Credentials are those of ClusterUser, auditd's user with every right.
func (c *NATSCluster) Credentials() natsx.Credentials {
	return natsx.Credentials{User: ClusterUser, Password: c.password}
}

// ResponderCredentials are those of ClusterResponderUser, which may publish
// ingest replies under _INBOX only.
func (c *NATSCluster) ResponderCredentials() natsx.Credentials {
	return natsx.Credentials{User: ClusterResponderUser, Password: c.responderPassword}
}

// JetStream connects to the cluster as ClusterUser for t.
func (c *NATSCluster) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.UserInfo(ClusterUser, c.password), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// metaCluster is the part of a node's /jsz that says who leads JetStream.
type metaCluster struct {
	MetaCluster struct {
		Leader   string `json:"leader"`
		Size     int    `json:"cluster_size"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

// WaitReady waits until every running node is healthy and follows one meta
// leader, and, when all nodes run, all of them are current, twice in a row
// a second apart: while routes settle, a node may drop out for a moment.
func (c *NATSCluster) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var why string
	ready := 0
	for time.Now().Before(deadline) {
		if why = c.notReady(); why == "" {
			if ready++; ready == 2 {
				return
			}
			time.Sleep(time.Second)
			continue
		}
		ready = 0
		for _, n := range c.nodes {
			if n.cmd != nil {
				select {
				case <-n.done:
					c.t.Fatalf("nats-server %s ended early", n.name)
				default:
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("NATS cluster not ready after 60s: %s", why)
}

// notReady says why the cluster is not ready yet, or "" when it is.
func (c *NATSCluster) notReady() string {
	views := map[string]metaCluster{}
	leader := ""
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", n.httpPort)
		if err := httpOK(base + "/healthz"); err != nil {
			return n.name + " /healthz: " + err.Error()
		}
		var m metaCluster
		if err := httpJSON(base+"/jsz", &m); err != nil {
			return n.name + " /jsz: " + err.Error()
		}
		switch l := m.MetaCluster.Leader; {
		case l == "":
			return n.name + " knows no meta leader"
		case leader != "" && l != leader:
			return fmt.Sprintf("%s follows %s, another node %s", n.name, l, leader)
		}
		leader = m.MetaCluster.Leader
		views[n.name] = m
	}
	if len(views) < len(c.nodes) {
		return ""
	}
	current := 0
	for _, r := range views[leader].MetaCluster.Replicas {
		if r.Current && !r.Offline {
			current++
		}
	}
	if current != len(c.nodes)-1 {
		return fmt.Sprintf("%d of %d followers of %s are current", current, len(c.nodes)-1, leader)
	}
	return ""
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpOK(url string) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func httpJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// showLog logs the file at path to t, under title.
func showLog(t testing.TB, title, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	const most = 64 << 10
	if len(b) > most {
		b = b[len(b)-most:]
	}
	t.Logf("--- %s (%s) ---\n%s", title, path, b)
}

// shared is what every auditd of a cluster shares: one database, one
// checkpoint signing key and the JWT secret of testenv.Token.
func (c *NATSCluster) shared(t testing.TB) (dbURL, signingKey string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dbURL == "" {
		skey, _, err := note.GenerateKey(rand.Reader, "auditlog-cluster-test")
		if err != nil {
			t.Fatal(err)
		}
		c.dbURL, c.signing = testenv.Postgres(t), skey
	}
	return c.dbURL, c.signing
}

// AuditdOptions configure an auditd process StartAuditd runs.
type AuditdOptions struct {
	// Replicas is AUDITD_REPLICAS; 0 leaves it to auditd's default.
	Replicas int
	// Placement is AUDITD_REGION_PLACEMENT.
	Placement bool
	// Env are further NAME=value settings.
	Env []string
}

// Auditd is a running `auditd serve` process.
type Auditd struct {
	// URL is where it serves, http://127.0.0.1:<port>.
	URL     string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // what Wait returned, once done is closed
}

// StartAuditd builds auditd once per test binary and runs `auditd serve`
// for t on a free loopback port against cluster, with the database, signing
// key and JWT secret (testenv.Secret, so testenv.Token and its kin work) every auditd of
// cluster shares, and waits until it is ready. The process is killed when
// t ends; its log is shown if t failed.
func StartAuditd(t testing.TB, cluster *NATSCluster, opts AuditdOptions) *Auditd {
	t.Helper()
	a, err := TryStartAuditd(t, cluster, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TryStartAuditd is StartAuditd for a start that may fail: the error then
// holds auditd's last words on stderr.
func TryStartAuditd(t testing.TB, cluster *NATSCluster, opts AuditdOptions) (*Auditd, error) {
	t.Helper()
	a := &Auditd{logPath: filepath.Join(t.TempDir(), "auditd.log"), done: make(chan struct{})}
	logFile, err := os.Create(a.logPath)
	if err != nil {
		return nil, err
	}
	a.cmd = cluster.Command(t, opts, "serve")
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	a.cmd.Stdout = logFile
	dieWithParent(a.cmd)
	if err := a.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start auditd: %w", err)
	}
	bound := make(chan string, 1)
	go func() {
		// Copy the log to its file, and pick the bound address from it.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logFile.Write(append(line, '\n'))
			var entry struct {
				GraphQL string `json:"graphql"`
			}
			if json.Unmarshal(line, &entry) == nil && entry.GraphQL != "" {
				select {
				case bound <- strings.TrimSuffix(entry.GraphQL, "/query"):
				default:
				}
			}
		}
		a.err = a.cmd.Wait()
		logFile.Close()
		close(a.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			a.dumpGoroutines()
		}
		a.Kill()
		if t.Failed() {
			showLog(t, "auditd", a.logPath)
		}
	})
	select {
	case a.URL = <-bound:
	case <-a.done:
		return nil, fmt.Errorf("auditd ended before serving (%v): %s", a.err, a.lastLines(5))
	case <-time.After(90 * time.Second):
		a.Kill()
		return nil, fmt.Errorf("auditd did not serve within 90s: %s", a.lastLines(5))
	}
	if err := a.waitReady(60 * time.Second); err != nil {
		return nil, err
	}
	return a, nil
}

// Command is the auditd command args (`serve`, `projections reconcile`…)
// configured as StartAuditd configures its processes: the cluster's NATS,
// the shared database, signing key and JWT secret, and opts.
func (c *NATSCluster) Command(t testing.TB, opts AuditdOptions, args ...string) *exec.Cmd {
	t.Helper()
	bin := Binary(t, "auditd", "./cmd/auditd")
	dbURL, skey := c.shared(t)
	env := []string{
		"AUDITD_ADDR=127.0.0.1:0",
		"AUDITD_DATA_DIR=" + t.TempDir(),
		"AUDITD_JWT_SECRET=" + string(testenv.Secret),
		"AUDITD_SIGNING_KEY=" + skey,
		"DATABASE_URL=" + dbURL,
		"NATS_URL=" + c.URL(),
		"NATS_USER=" + ClusterUser,
		"NATS_PASSWORD=" + c.password,
		"NATS_RESPONDER_USER=" + ClusterResponderUser,
		"NATS_RESPONDER_PASSWORD=" + c.responderPassword,
		"AUDITD_REGION_PLACEMENT=" + strconv.FormatBool(opts.Placement),
	}
	if opts.Replicas > 0 {
		env = append(env, "AUDITD_REPLICAS="+strconv.Itoa(opts.Replicas))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(withoutSettings(os.Environ()), append(env, opts.Env...)...)
	return cmd
}

// Database is the URL of the database every auditd of the cluster shares.
func (c *NATSCluster) Database(t testing.TB) string {
	t.Helper()
	url, _ := c.shared(t)
	return url
}

// withoutSettings drops the environment's own auditd, NATS and database
// settings, so that a developer's shell does not change a test.
func withoutSettings(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "AUDITD_") || strings.HasPrefix(kv, "NATS_") || strings.HasPrefix(kv, "DATABASE_URL") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (a *Auditd) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := httpOK(a.URL + "/readyz")
		if err == nil {
			return nil
		}
		select {
		case <-a.done:
			return fmt.Errorf("auditd ended before it was ready (%v): %s", a.err, a.lastLines(5))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("auditd not ready after %s: /readyz: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is what the process has logged so far.
func (a *Auditd) Log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

func (a *Auditd) lastLines(n int) string {
	lines := strings.Split(strings.TrimSpace(a.Log()), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// dumpGoroutines makes a failed test's auditd write every goroutine's
// stack to its log (Go's answer to SIGQUIT) and exit.
func (a *Auditd) dumpGoroutines() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-a.done:
	case <-time.After(3 * time.Second):
	}
}

// Kill ends the process at once with SIGKILL and waits for it.
func (a *Auditd) Kill() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Kill()
	<-a.done
}

// Freeze stops the process with SIGSTOP: it keeps its connections and
// does nothing, as a hung host would, until Thaw.
func (a *Auditd) Freeze() { _ = a.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process with SIGCONT.
func (a *Auditd) Thaw() { _ = a.cmd.Process.Signal(syscall.SIGCONT) }

// Stop asks the process to shut down with SIGTERM and waits up to 30 s for
// it to end; it returns how it ended (nil for a clean exit).
func (a *Auditd) Stop() error {
	select {
	case <-a.done:
		return a.err
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return a.err
	case <-time.After(30 * time.Second):
		a.Kill()
		return errors.New("auditd did not stop within 30s of SIGTERM; killed it")
	}
}

// Do POSTs a GraphQL request to a with token, as testenv.Env.Do does.
func (a *Auditd) Do(t testing.TB, token, query string, vars map[string]any) testenv.Response {
	t.Helper()
	return (&testenv.Env{URL: a.URL}).Do(t, token, query, vars)
}

// Metric is the value of the unlabelled metric name on a's /metrics, or
// -1 when a does not serve it.
func (a *Auditd) Metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get(a.URL + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %s: %v", name, err)
			}
			return f
		}
	}
	return -1
}

// Readiness is what /readyz answers.
type Readiness struct {
	Code        int
	Status      string
	Projections []struct {
		Stream     string
		Stored     uint64
		Checkpoint uint64
		Lag        uint64
		Stalled    bool
		Partitions int
		Held       []int
	}
}

// Ready reads a's /readyz.
func (a *Auditd) Ready(t testing.TB) Readiness {
	t.Helper()
	var r Readiness
	resp, err := http.Get(a.URL + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	r.Code = resp.StatusCode
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	return r
}

// Held are the partitions of stream a projects, by its /readyz.
func (r Readiness) Held(stream string) []int {
	for _, p := range r.Projections {
		if p.Stream == stream {
			return p.Held
		}
	}
	return nil
}

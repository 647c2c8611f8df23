package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/natsx"
	"github.com/auditlog/auditlog/server"
)

// persisted is a persisted query request: the query (empty for the hash
// alone) and its hash, sent over method with token.
func persisted(t *testing.T, env *testenv.Env, method, token, query, hash string) testenv.Response {
	t.Helper()
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
	var req *http.Request
	if method == http.MethodGet {
		extJSON, _ := json.Marshal(ext)
		q := url.Values{"extensions": {string(extJSON)}}
		if query != "" {
			q.Set("query", query)
		}
		req, _ = http.NewRequest(http.MethodGet, env.URL+"/query?"+q.Encode(), nil)
	} else {
		body, _ := json.Marshal(map[string]any{"query": query, "extensions": ext})
		req, _ = http.NewRequest(http.MethodPost, env.URL+"/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out testenv.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s persisted query: %d, not JSON: %v", method, resp.StatusCode, err)
	}
	out.Status = resp.StatusCode
	return out
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAnonymousPersistedQueriesStoreNothing: a request without a valid
// token that sends a query with its hash, over GET or POST, runs it as
// plain text and writes nothing to the bucket; the hash stays unknown. Once
// an authenticated caller stores it, anyone may use the hash.
func TestAnonymousPersistedQueriesStoreNothing(t *testing.T) {
	env := testenv.Start(t)
	admin := testenv.AdminToken(t, "acme")
	tests := []struct{ name, method, token string }{
		{"POST, no token", http.MethodPost, ""},
		{"GET, no token", http.MethodGet, ""},
		{"POST, bad token", http.MethodPost, "not-a-token"},
		{"GET, bad token", http.MethodGet, "not-a-token"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			query := fmt.Sprintf("query Anon%d { __typename }%s", i, strings.Repeat(" ", 8<<10))
			hash := sha(query)
			beforeBytes, beforeValues := env.BucketUsage(t, natsx.APQBucket)
			r := persisted(t, env, tc.method, tc.token, query, hash)
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), "Query") {
				t.Fatalf("the query did not run as plain text: %+v %s", r.Errors, r.Data)
			}
			afterBytes, afterValues := env.BucketUsage(t, natsx.APQBucket)
			if afterBytes != beforeBytes || afterValues != beforeValues {
				t.Fatalf("bucket went from %d bytes, %d values to %d, %d", beforeBytes, beforeValues, afterBytes, afterValues)
			}
			if code := persisted(t, env, tc.method, tc.token, "", hash).ErrorCode(t); code != "PERSISTED_QUERY_NOT_FOUND" {
				t.Fatalf("hash alone after anonymous registration: %s", code)
			}
		})
	}

	// Stored by an administrator, the hash serves anonymous callers too.
	query := "query Shared { __typename }"
	if r := persisted(t, env, http.MethodPost, admin, query, sha(query)); len(r.Errors) > 0 {
		t.Fatalf("authenticated registration: %+v", r.Errors)
	}
	if _, values := env.BucketUsage(t, natsx.APQBucket); values != 1 {
		t.Fatalf("bucket holds %d queries, want the administrator's 1", values)
	}
	if r := persisted(t, env, http.MethodGet, "", "", sha(query)); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "Query") {
		t.Fatalf("anonymous use of a stored hash: %+v %s", r.Errors, r.Data)
	}
	if got := scrape(t, env)["auditlog_persisted_queries_refused_total{reason=anonymous}"]; got != float64(len(tests)) {
		t.Errorf("anonymous registrations counted %v, want %d", got, len(tests))
	}
}

// TestPersistedQueryCaps: an authenticated query over the per-query cap is
// refused with QUERY_TOO_LARGE and not stored; once the bucket is at its
// byte cap, new queries are refused with PERSISTED_QUERY_STORE_FULL while
// stored ones, ingest and reads go on, and /readyz and the metrics say so.
func TestPersistedQueryCaps(t *testing.T) {
	const capBytes = 64 << 10
	env := testenv.Start(t, func(c *server.Config) { c.Streams.APQMaxBytes = capBytes })
	env.EnableOrg(t, "acme", domain.RegionUS)
	admin := testenv.AdminToken(t, "acme")

	big := "query Big { __typename }" + strings.Repeat(" ", natsx.MaxAPQQueryBytes)
	r := persisted(t, env, http.MethodPost, admin, big, sha(big))
	if code := r.ErrorCode(t); code != "QUERY_TOO_LARGE" {
		t.Fatalf("over the per-query cap: %s", code)
	}
	if _, values := env.BucketUsage(t, natsx.APQBucket); values != 0 {
		t.Fatalf("a query over the cap was stored (%d values)", values)
	}

	var stored []string
	var refusedAfter time.Duration
	for i := range 2 * capBytes / (4 << 10) {
		q := fmt.Sprintf("query Fill%d { __typename }%s", i, strings.Repeat(" ", 4<<10))
		start := time.Now()
		r := persisted(t, env, http.MethodPost, admin, q, sha(q))
		if len(r.Errors) == 0 {
			stored = append(stored, q)
			continue
		}
		refusedAfter = time.Since(start)
		if code := r.ErrorCode(t); code != "PERSISTED_QUERY_STORE_FULL" {
			t.Fatalf("registration %d refused with %s, want PERSISTED_QUERY_STORE_FULL", i, code)
		}
		break
	}
	if refusedAfter == 0 {
		t.Fatalf("%d queries stored in a %d byte bucket, none refused", len(stored), capBytes)
	}
	b, values := env.BucketUsage(t, natsx.APQBucket)
	t.Logf("bucket full after %d queries: %d bytes of %d, %d values; refusal took %v", len(stored), b, capBytes, values, refusedAfter)
	if b > capBytes {
		t.Fatalf("bucket holds %d bytes, over its %d cap", b, capBytes)
	}
	// Stored queries still run by hash, and re-sending one's text is fine.
	if r := persisted(t, env, http.MethodPost, admin, "", sha(stored[0])); len(r.Errors) > 0 {
		t.Fatalf("stored query by hash: %+v", r.Errors)
	}
	if r := persisted(t, env, http.MethodPost, admin, stored[0], sha(stored[0])); len(r.Errors) > 0 {
		t.Fatalf("stored query sent again: %+v", r.Errors)
	}
	// Ingest and reads are untouched.
	mustRecord(t, env, []map[string]any{userCreated("acme", time.Now(), "full@acme.example")})
	var out struct{ AuditLogSettings struct{ Enabled bool } }
	env.Do(t, admin, `{ auditLogSettings { enabled } }`, nil).MustData(t, &out)

	var ready struct {
		Status  string
		Cluster struct {
			Status   string
			Problems []string
		}
		Storage server.StorageHealth
	}
	full := func(problems []string) bool {
		for _, p := range problems {
			if strings.Contains(p, natsx.APQBucket) {
				return true
			}
		}
		return false
	}
	// /readyz reads storage at most every few seconds: wait for a reading
	// taken after the bucket filled.
	code := 0
	waitFor(t, 10*time.Second, "/readyz reporting the full bucket", func() bool {
		resp, err := http.Get(env.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
			t.Fatal(err)
		}
		code = resp.StatusCode
		return ready.Storage.PersistedQueriesFull
	})
	if code != http.StatusOK || ready.Cluster.Status != "degraded" || !full(ready.Cluster.Problems) {
		t.Fatalf("/readyz: %d %+v; want 200 with the full bucket among the cluster's problems", code, ready)
	}
	m := scrape(t, env)
	if m["auditlog_persisted_query_bucket_full"] != 1 || m["auditlog_persisted_queries_refused_total{reason=full}"] != 1 ||
		m["auditlog_persisted_queries_refused_total{reason=too_large}"] != 1 || m["auditlog_persisted_query_bucket_max_bytes"] != capBytes {
		t.Fatalf("metrics: full %v, refused full %v, too_large %v, max %v", m["auditlog_persisted_query_bucket_full"],
			m["auditlog_persisted_queries_refused_total{reason=full}"], m["auditlog_persisted_queries_refused_total{reason=too_large}"],
			m["auditlog_persisted_query_bucket_max_bytes"])
	}
}

// gatedBody yields n bytes of JSON whitespace, then blocks until gate is
// closed before yielding the rest: a request the server answers while the
// reader is blocked was answered without reading what lies past n.
type gatedBody struct {
	head     []byte // sent before the padding
	n, total int
	sent     int
	gate     <-chan struct{}
}

func (g *gatedBody) Read(p []byte) (int, error) {
	if g.sent >= g.total {
		return 0, io.EOF
	}
	if g.sent >= g.n {
		<-g.gate
	}
	k := min(len(p), g.total-g.sent)
	if g.sent < g.n {
		k = min(k, g.n-g.sent)
	}
	for i := range k {
		at := g.sent + i
		switch {
		case at < len(g.head):
			p[i] = g.head[at]
		case at == g.total-1:
			p[i] = '}'
		default:
			p[i] = ' '
		}
	}
	g.sent += k
	return k, nil
}

// paddedRequest is a /query POST of a valid JSON body of total bytes whose
// reader stops after n until gate closes; declared sets Content-Length.
func paddedRequest(env *testenv.Env, token string, total, n int, declared bool, gate <-chan struct{}) *http.Request {
	body := &gatedBody{head: []byte(`{"query":"{ __typename }"`), n: n, total: total, gate: gate}
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/query", body)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if declared {
		req.ContentLength = int64(total)
	}
	return req
}

type answer struct {
	status int
	code   string
	took   time.Duration
	err    error
}

// impatient gives up on an answer the server would only give after reading
// a body the client holds back.
var impatient = &http.Client{Timeout: 10 * time.Second}

func do(req *http.Request) answer {
	start := time.Now()
	resp, err := impatient.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	var out struct{ Errors []testenv.GraphQLError }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	a := answer{status: resp.StatusCode, took: time.Since(start)}
	if len(out.Errors) > 0 {
		a.code = out.Errors[0].Code()
	}
	return a
}

// TestAnonymousLargeBodiesRefusedUnread: a 10 MB body without a valid
// token is refused with 413 and UNAUTHENTICATED while the client has sent
// at most 1 MiB of it (a declared length: nothing), whether its length is
// declared or chunked, and the server never held more than the anonymous
// cap of it. An authenticated body over that cap is served.
// /readyz answers anyone: a flood of probes shares one reading of
// JetStream's storage (two API requests) instead of making one each.
func TestReadinessProbesShareOneStorageReading(t *testing.T) {
	env := testenv.Start(t)
	probe := func() {
		resp, err := http.Get(env.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/readyz: %d", resp.StatusCode)
		}
	}
	const probes = 100
	before := scrape(t, env)["auditlog_storage_readings_total"]
	start := time.Now()
	for range probes {
		probe()
	}
	took := time.Since(start)
	readings := scrape(t, env)["auditlog_storage_readings_total"] - before
	// One reading serves every probe for two seconds (the scrapes read it
	// too); a slow machine may cross an interval's end.
	if limit := 2 + float64(took/(2*time.Second)); readings > limit {
		t.Fatalf("%d probes in %s made %.0f storage readings, want at most %.0f", probes, took, readings, limit)
	}
	t.Logf("%d probes in %s: %.0f storage readings", probes, took, readings)
}

func TestAnonymousLargeBodiesRefusedUnread(t *testing.T) {
	env := testenv.Start(t)
	const total = 10 << 20
	tests := []struct {
		name     string
		token    string
		sendable int // what the client sends before it waits for the answer
		declared bool
	}{
		{"declared length, no token", "", 0, true},
		{"chunked, no token", "", 1 << 20, false},
		{"declared length, bad token", "not-a-token", 0, true},
		{"chunked, bad token", "not-a-token", 1 << 20, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			defer close(gate)
			answers := make(chan answer, 1)
			req := paddedRequest(env, tc.token, total, tc.sendable, tc.declared, gate)
			go func() { answers <- do(req) }()
			var a answer
			select {
			case a = <-answers:
			case <-time.After(10 * time.Second):
				t.Fatalf("no answer in 10s while the client held back all past %d bytes: the server waits for the whole body", tc.sendable)
			}
			if a.err != nil || a.status != http.StatusRequestEntityTooLarge || a.code != "UNAUTHENTICATED" {
				t.Fatalf("got %d %s (%v), want 413 UNAUTHENTICATED", a.status, a.code, a.err)
			}
			t.Logf("%d byte body refused in %v with the client holding back all past %d bytes", total, a.took, tc.sendable)
			if a.took > 2*time.Second {
				t.Errorf("refusal took %v", a.took)
			}
		})
	}
	m := scrape(t, env)
	if peak := m["auditlog_http_body_budget_peak_bytes"]; peak > server.AnonymousMaxRequestBytes {
		t.Errorf("anonymous bodies held %v bytes at once, over the %d cap", peak, server.AnonymousMaxRequestBytes)
	}
	if got := m["auditlog_http_bodies_refused_total{caller=anonymous}{reason=too_large}"]; got != float64(len(tests)) {
		t.Errorf("counted %v anonymous refusals, want %d", got, len(tests))
	}
	if _, values := env.BucketUsage(t, natsx.APQBucket); values != 0 {
		t.Errorf("the bucket holds %d values", values)
	}

	open := make(chan struct{})
	close(open)
	a := do(paddedRequest(env, testenv.AdminToken(t, "acme"), 1<<20, 1<<20, false, open))
	if a.err != nil || a.status != http.StatusOK || a.code != "" {
		t.Fatalf("authenticated 1 MiB body: %d %s %v", a.status, a.code, a.err)
	}
}

// TestBodyBudgetBoundsConcurrentBodies: K authenticated bodies at once
// never hold more than the budget; those that cannot get their share
// within the wait are refused with 503 UNAVAILABLE, the others are served
// once their clients send the rest. Chunked bodies, which take their share
// as they arrive, obey the same budget.
func TestBodyBudgetBoundsConcurrentBodies(t *testing.T) {
	const (
		size   = 1 << 20
		budget = 3 * size
		k      = 8
	)
	env := testenv.Start(t, func(c *server.Config) {
		c.MaxRequestBytes, c.BodyBudget, c.BodyWait = size, budget, 300*time.Millisecond
	})
	admin := testenv.AdminToken(t, "acme")

	// Declared lengths: exactly budget/size get their share.
	gate := make(chan struct{})
	answers := make(chan answer, k)
	for range k {
		req := paddedRequest(env, admin, size, size/2, true, gate) // half sent, then waits
		go func() { answers <- do(req) }()
	}
	var refused []answer
	deadline := time.After(10 * time.Second)
	for len(refused) < k-budget/size {
		select {
		case a := <-answers:
			if a.err != nil || a.status != http.StatusServiceUnavailable || a.code != "UNAVAILABLE" {
				close(gate)
				t.Fatalf("while the budget is taken: %d %s %v, want 503 UNAVAILABLE", a.status, a.code, a.err)
			}
			refused = append(refused, a)
		case <-deadline:
			close(gate)
			t.Fatalf("%d of %d requests refused within 10s, want %d", len(refused), k, k-budget/size)
		}
	}
	held := scrape(t, env)["auditlog_http_body_budget_in_use_bytes"]
	close(gate)
	for range k - len(refused) {
		if a := <-answers; a.err != nil || a.status != http.StatusOK {
			t.Fatalf("a request within the budget: %d %s %v", a.status, a.code, a.err)
		}
	}
	m := scrape(t, env)
	t.Logf("%d declared bodies of %d bytes at once, budget %d: %d refused (503 UNAVAILABLE after %v), %v bytes held while the rest waited, peak %v",
		k, size, budget, len(refused), refused[0].took, held, m["auditlog_http_body_budget_peak_bytes"])
	if held != budget {
		t.Errorf("%v bytes held while the clients waited, want the whole %d budget", held, budget)
	}
	if peak := m["auditlog_http_body_budget_peak_bytes"]; peak > budget {
		t.Errorf("peak %v bytes held, over the %d budget", peak, budget)
	}

	// Chunked: served or refused, never over the budget.
	gate = make(chan struct{})
	for range k {
		req := paddedRequest(env, admin, size, size/2, false, gate)
		go func() { answers <- do(req) }()
	}
	served, refusedChunked := 0, 0
	for served+refusedChunked < k {
		if refusedChunked > 0 && gate != nil {
			close(gate)
			gate = nil
		}
		a := <-answers
		switch {
		case a.err == nil && a.status == http.StatusOK:
			served++
		case a.err == nil && a.status == http.StatusServiceUnavailable && a.code == "UNAVAILABLE":
			refusedChunked++
		default:
			t.Fatalf("chunked body: %d %s %v", a.status, a.code, a.err)
		}
	}
	m = scrape(t, env)
	t.Logf("%d chunked bodies of %d bytes at once: %d served, %d refused, peak %v", k, size, served, refusedChunked, m["auditlog_http_body_budget_peak_bytes"])
	if served == 0 || refusedChunked == 0 {
		t.Errorf("chunked: %d served, %d refused; want some of each", served, refusedChunked)
	}
	if peak := m["auditlog_http_body_budget_peak_bytes"]; peak > budget {
		t.Errorf("peak %v bytes held, over the %d budget", peak, budget)
	}
	if use := m["auditlog_http_body_budget_in_use_bytes"]; use != 0 {
		t.Errorf("%v bytes still held after every answer", use)
	}
}

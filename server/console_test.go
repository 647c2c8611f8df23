package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

func TestConsoleServedWithStrictPolicy(t *testing.T) {
	env := testenv.Start(t)
	for path, want := range map[string]string{
		"/console/":            `<script type="module" src="app.js">`,
		"/console/app.js":      "import ",
		"/console/api.js":      "graphql-transport-ws",
		"/console/console.css": ":root",
	} {
		resp, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, body lacks %q", path, resp.StatusCode, want)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		host := strings.TrimPrefix(env.URL, "http://")
		for _, d := range []string{"default-src 'self'", "connect-src 'self' ws://" + host + " wss://" + host, "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline code", path, csp)
		}
	}
	// Nothing in the console names another host.
	for _, f := range []string{"/console/", "/console/app.js", "/console/api.js", "/console/console.css"} {
		resp, err := http.Get(env.URL + f)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte("http://")) || bytes.Contains(body, []byte("https://")) || bytes.Contains(body, []byte("//cdn")) {
			t.Errorf("%s names an absolute URL", f)
		}
	}
	resp, err := http.Get(env.URL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/console/" {
		t.Errorf("/console led to %s", resp.Request.URL.Path)
	}
}

func preflight(t *testing.T, url, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCORSForAllowedOriginsOnly(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.AllowedOrigins = []string{"app.example.com", "*.apps.example.com"} })
	env.EnableOrg(t, "acme", domain.RegionUS)
	token := testenv.AdminToken(t, "acme")
	for origin, ok := range map[string]bool{
		"https://app.example.com":      true,
		"https://one.apps.example.com": true,
		"https://evil.example":         false,
		"null":                         false,
	} {
		resp := preflight(t, env.URL+"/query", origin)
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if ok {
			if resp.StatusCode != http.StatusNoContent || got != origin ||
				!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
				!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") ||
				resp.Header.Get("Access-Control-Allow-Methods") != "GET, POST" {
				t.Errorf("preflight of %s: %d %v", origin, resp.StatusCode, resp.Header)
			}
		} else if got != "" || resp.StatusCode == http.StatusNoContent {
			t.Errorf("preflight of %s answered %d with Allow-Origin %q", origin, resp.StatusCode, got)
		}

		body, _ := json.Marshal(map[string]any{"query": "{ auditLogSettings { enabled } }"})
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/query", bytes.NewReader(body))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if got := r.Header.Get("Access-Control-Allow-Origin"); (got == origin) != ok || (!ok && got != "") {
			t.Errorf("POST from %s: Allow-Origin %q", origin, got)
		}
		if r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("POST from %s allows credentials", origin)
		}
	}
}

func TestPersistedQueries(t *testing.T) {
	env := testenv.Start(t)
	env.EnableOrg(t, "acme", domain.RegionEU)
	token := testenv.AdminToken(t, "acme")
	query := "query Persisted { auditLogSettings { enabled region } }"
	sum := sha256.Sum256([]byte(query))
	hash := hex.EncodeToString(sum[:])
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
	post := func(body map[string]any) testenv.Response {
		b, _ := json.Marshal(body)
		return env.Post(t, token, bytes.NewReader(b))
	}

	if code := post(map[string]any{"extensions": ext}).ErrorCode(t); code != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("unknown hash: %s", code)
	}
	var out struct{ AuditLogSettings struct{ Region string } }
	post(map[string]any{"query": query, "extensions": ext}).MustData(t, &out)
	if out.AuditLogSettings.Region != "EU" {
		t.Fatalf("with the query: %+v", out)
	}
	post(map[string]any{"extensions": ext}).MustData(t, &out)
	if out.AuditLogSettings.Region != "EU" {
		t.Fatalf("hash alone: %+v", out)
	}
	// Over GET too, as a CDN-friendly client sends it.
	extJSON, _ := json.Marshal(ext)
	req, _ := http.NewRequest(http.MethodGet, env.URL+"/query?extensions="+string(bytes.ReplaceAll(extJSON, []byte(`"`), []byte("%22"))), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"region":"EU"`) {
		t.Errorf("GET with the hash: %s", b)
	}
	// A hash that does not match the query is refused and stores nothing.
	bad := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("0", 64)}}
	if r := post(map[string]any{"query": query, "extensions": bad}); len(r.Errors) != 1 {
		t.Errorf("mismatched hash: %+v", r)
	}
	if code := post(map[string]any{"extensions": bad}).ErrorCode(t); code != "PERSISTED_QUERY_NOT_FOUND" {
		t.Errorf("mismatched hash was stored: %s", code)
	}
	// A second instance sharing the NATS would see it: the cache is the
	// JetStream bucket, not memory.
	kv, err := env.JetStream().KeyValue(t.Context(), "AUDIT_APQ")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(t.Context(), hash); err != nil || string(e.Value()) != query {
		t.Errorf("bucket holds %v, %v", e, err)
	}
}

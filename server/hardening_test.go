package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/internal/testenv"
	"github.com/auditlog/auditlog/server"
)

func TestQueryHardening(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.Introspection = false })
	admin := testenv.AdminToken(t, "acme")

	// 500 rows of every field is too expensive; 50 rows of every field is not.
	heavy := `{ auditEvents(first: 500) { edges { node { ` + nodeFields + ` } } } }`
	if r := env.Do(t, admin, heavy, nil); r.ErrorCode(t) != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("heavy query: %+v", r.Errors)
	}
	light := `{ auditEvents(first: 50) { edges { node { ` + nodeFields + ` } } } }`
	if r := env.Do(t, admin, light, nil); len(r.Errors) > 0 {
		t.Fatalf("ordinary query refused: %+v", r.Errors)
	}
	if r := env.Do(t, admin, `{ __schema { types { name } } }`, nil); len(r.Errors) == 0 ||
		!strings.Contains(r.Errors[0].Message, "introspection") {
		t.Fatalf("introspection allowed while disabled: %+v", r.Errors)
	}
}

func TestRequestTimeoutCancelsWork(t *testing.T) {
	env := testenv.Start(t, func(c *server.Config) { c.RequestTimeout = time.Nanosecond })
	r := env.Do(t, testenv.AdminToken(t, "acme"), `{ auditEvents { totalCount } }`, nil)
	if len(r.Errors) == 0 {
		t.Fatalf("no error under a 1ns deadline: %s", r.Data)
	}
	e := r.Errors[0]
	if e.Code() != "INTERNAL" || !strings.Contains(e.Message, "timed out") {
		t.Fatalf("got %+v, want a timed-out error", e)
	}
}

// TestRequestBodyLimit: a body over the limit is refused with 413 and a code
// before any of it is decoded, whether its length is declared or not, and
// none of its events is recorded; bodies under it work either way.
func TestRequestBodyLimit(t *testing.T) {
	const limit = 8 << 10
	env := testenv.Start(t, func(c *server.Config) { c.MaxRequestBytes = limit })
	env.EnableOrg(t, "acme", domain.RegionUS)
	batch := func(n int) []byte {
		events := make([]map[string]any, n)
		for i := range events {
			events[i] = userCreated("acme", time.Now(), fmt.Sprintf("u%d@acme.example", i))
		}
		body, _ := json.Marshal(map[string]any{"query": recordMutation, "variables": map[string]any{"events": events}})
		return body
	}
	small, large := batch(2), batch(60)
	if len(small) >= limit || len(large) <= limit {
		t.Fatalf("bodies of %d and %d bytes do not straddle the %d byte limit", len(small), len(large), limit)
	}
	chunked := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) } // hides the length

	tests := []struct {
		name   string
		body   io.Reader
		status int
		code   string
	}{
		{"declared length under the limit", bytes.NewReader(small), http.StatusOK, ""},
		{"chunked under the limit", chunked(batch(2)), http.StatusOK, ""}, // new ids, or they would be duplicates
		{"declared length over the limit", bytes.NewReader(large), http.StatusRequestEntityTooLarge, "BAD_USER_INPUT"},
		{"chunked over the limit", chunked(large), http.StatusRequestEntityTooLarge, "BAD_USER_INPUT"},
		{"not JSON", strings.NewReader(`{"query": `), http.StatusBadRequest, "BAD_USER_INPUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Post(t, testenv.ServiceToken(t), tc.body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d (errors %+v)", r.Status, tc.status, r.Errors)
			}
			if tc.code == "" {
				var out struct {
					RecordAuditEvents struct{ Results []recordResult }
				}
				r.MustData(t, &out)
				return
			}
			if got := r.ErrorCode(t); got != tc.code || r.Errors[0].Message == "" {
				t.Fatalf("got %+v, want code %s with a message", r.Errors, tc.code)
			}
		})
	}

	// Only the two batches under the limit were recorded.
	env.WaitProjected(t)
	var out struct{ AuditEvents struct{ TotalCount int } }
	env.Do(t, testenv.AdminToken(t, "acme"), `{ auditEvents(filter: {types: [USER_CREATED]}) { totalCount } }`, nil).MustData(t, &out)
	if out.AuditEvents.TotalCount != 4 {
		t.Fatalf("%d events recorded, want the 4 of the two accepted batches", out.AuditEvents.TotalCount)
	}
}

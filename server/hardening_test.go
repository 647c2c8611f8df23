package server_test

import (
	"strings"
	"testing"
	"time"

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

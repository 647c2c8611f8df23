package gqlguard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/auditlog/auditlog/graph"
	"github.com/auditlog/auditlog/httpapi/gqlguard"
)

// TestCostLimitRefusesLateRequests: a request whose client went away, or
// whose time is up, is refused before gqlgen parses or validates it, which
// it cannot interrupt.
func TestCostLimitRefusesLateRequests(t *testing.T) {
	schema := graph.NewSchema(&graph.Resolver{}).Schema()
	c := gqlguard.NewCostLimit(schema, gqlguard.QueryLimits(), graph.CostWeights(), time.Hour)
	params := &graphql.RawParams{Query: `{ auditLogSettings { enabled } }`}

	if err := c.MutateOperationParameters(graphql.StartOperationTrace(t.Context()), params); err != nil {
		t.Fatalf("a live request was refused: %v", err)
	}
	gone, cancel := context.WithCancel(graphql.StartOperationTrace(t.Context()))
	cancel()
	if err := c.MutateOperationParameters(gone, params); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("client gone: got %v", err)
	}
	c = gqlguard.NewCostLimit(schema, gqlguard.QueryLimits(), graph.CostWeights(), time.Millisecond)
	late := graphql.StartOperationTrace(t.Context())
	time.Sleep(2 * time.Millisecond)
	if err := c.MutateOperationParameters(late, params); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("time up: got %v", err)
	}
	if err := c.MutateOperationContext(late, nil); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("time up after validation: got %v", err)
	}
}

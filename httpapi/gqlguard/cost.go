package gqlguard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph"
	"github.com/auditlog/auditlog/querycost"
)

// QueryLimits are the limits of one request: a client cannot make one
// request cost the server more. Every query is measured against them before
// gqlgen parses, validates, sizes or runs it (see CostLimit), in time linear
// in its text.
func QueryLimits() querycost.Limits {
	return querycost.Limits{
		// 64 KiB of query text is twenty times the largest query the API's
		// own clients send; events travel in variables, not in the text.
		Bytes:       64 << 10,
		Tokens:      15_000,
		Definitions: 100,
		// Repeated response names in one selection set: validation compares
		// every pair of them (4,000 took 2 s), execution merges them.
		Repeats: 100,
		// Fields selected with fragments expanded: gqlgen's own complexity
		// and field collection walk this expansion, spread by spread.
		Fields:  2_000,
		Aliases: 100,
		Depth:   12,
		// Weight is the page- and list-weighted size of the answer, the same
		// 10,000 as gqlgen's complexity limit, which stays as a second check.
		Weight: MaxComplexity,
		// One verifyAuditLog, one checkpoint and two proofs of each kind
		// per request (see graph.IntegrityCalls); a second alias is
		// refused COMPLEXITY_LIMIT_EXCEEDED before anything runs.
		Calls: graph.IntegrityCalls(),
	}
}

// MaxComplexity bounds gqlgen's page-weighted complexity.
const MaxComplexity = 10_000

// CostLimit refuses a request that is too costly, or too late, before any
// work that grows with its shape: MutateOperationParameters runs before
// gqlgen parses and validates the query (validation takes no context, and
// its complexity and field collection walk every fragment spread), for
// HTTP and websocket operations alike. It parses the query itself, once,
// with a token limit, and measures it with each fragment measured once.
// It is a gqlgen handler extension; build it with NewCostLimit.
type CostLimit struct {
	schema  *ast.Schema
	limits  querycost.Limits
	weights querycost.Weights
	// timeout bounds a request from its start, as deadline does, so that
	// a request already late is not validated and planned.
	timeout time.Duration
}

// NewCostLimit measures every query against schema with limits and weights,
// and refuses a request older than timeout (from its start) before gqlgen
// validates or plans it.
func NewCostLimit(schema *ast.Schema, limits querycost.Limits, weights querycost.Weights, timeout time.Duration) CostLimit {
	return CostLimit{schema: schema, limits: limits, weights: weights, timeout: timeout}
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = CostLimit{}

// ExtensionName implements graphql.HandlerExtension.
func (CostLimit) ExtensionName() string { return "CostLimit" }

// Validate implements graphql.HandlerExtension.
func (CostLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters measures the raw query.
func (c CostLimit) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if err := c.late(ctx); err != nil {
		return err
	}
	err := c.limits.Check(c.schema, p.Query, p.OperationName, p.Variables, c.weights)
	if err == nil {
		return nil
	}
	var (
		limit *querycost.LimitError
		cycle *querycost.CycleError
		parse *gqlerror.Error
	)
	switch {
	case errors.As(err, &limit):
		return refusal(limitCode(limit.Limit), err)
	case errors.As(err, &cycle):
		e := gqlerror.Errorf("%s", cycle.Error())
		errcode.Set(e, errcode.ValidationFailed)
		return e
	case errors.As(err, &parse):
		errcode.Set(parse, errcode.ParseFailed) // as gqlgen's own parser would say
		return parse
	default:
		return gqlerror.WrapIfUnwrapped(fmt.Errorf("measuring the query: %w", err))
	}
}

// MutateOperationContext runs after validation, before complexity and
// execution: a request that became late or lost its client meanwhile
// stops here.
func (c CostLimit) MutateOperationContext(ctx context.Context, _ *graphql.OperationContext) *gqlerror.Error {
	return c.late(ctx)
}

// late refuses a request whose client is gone or whose time is up.
func (c CostLimit) late(ctx context.Context) *gqlerror.Error {
	if err := ctx.Err(); err != nil {
		return &gqlerror.Error{Message: err.Error(), Err: err}
	}
	if time.Since(graphql.GetStartTime(ctx)) > c.timeout {
		return &gqlerror.Error{Message: "request timed out", Err: context.DeadlineExceeded}
	}
	return nil
}

// limitCode is the extensions.code of a refusal: the answer's size, and
// integrity checks called too often, are complexity, as gqlgen calls it;
// depth keeps the code it always had; the rest is the query's own size.
func limitCode(l querycost.Limit) domain.Code {
	switch l {
	case querycost.LimitWeight:
		return domain.CodeComplexityLimit
	case querycost.LimitDepth:
		return domain.CodeBadUserInput
	case querycost.LimitCalls:
		// Too many integrity checks in one request: it costs too much,
		// and asking again the same way would not help.
		return domain.CodeComplexityLimit
	default:
		return domain.CodeQueryTooLarge
	}
}

// refusal is err as a *domain.Error with code, presented already: gqlgen's
// websocket transport sends an operation's refusal as it is.
func refusal(code domain.Code, err error) *gqlerror.Error {
	de := domain.Errorf(code, "", "%s", err.Error())
	return &gqlerror.Error{Message: de.Error(), Err: de, Extensions: map[string]any{"code": string(code)}}
}

// ResponseLimit replaces an answer whose data is larger than max bytes by a
// RESPONSE_TOO_LARGE error, so that it is not sent. The cost limits keep
// such answers rare: an answer is built before its size is known.
func ResponseLimit(max int, present graphql.ErrorPresenterFunc) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		if resp == nil || len(resp.Data) <= max {
			return resp
		}
		err := domain.Errorf(domain.CodeResponseTooLarge, "",
			"the answer is larger than %d bytes; ask for fewer rows or fields", max)
		return &graphql.Response{
			Errors:     gqlerror.List{present(ctx, err)},
			Extensions: resp.Extensions,
		}
	}
}

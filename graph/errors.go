package graph

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditlog/auditlog/domain"
)

// ErrorPresenter gives every error an extensions.code. Errors the client
// can act on keep their message; anything else becomes INTERNAL with a
// generic message, and the detail goes to the log only, with the request id.
func ErrorPresenter() graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var de *domain.Error
		if errors.As(err, &de) {
			if de.Cause != nil {
				zerolog.Ctx(ctx).Warn().Err(de.Cause).Str("code", string(de.Code)).
					Str("path", gqlErr.Path.String()).Msg(de.Message)
			}
			gqlErr.Message = de.Error()
			gqlErr.Extensions = map[string]any{"code": string(de.Code)}
			if de.Field != "" {
				gqlErr.Extensions["field"] = de.Field
			}
			if de.RetryAfter > 0 {
				gqlErr.Extensions["retryAfter"] = de.RetryAfter.Seconds()
			}
			return gqlErr
		}
		if errors.Is(err, context.DeadlineExceeded) {
			gqlErr.Message = "request timed out"
			gqlErr.Extensions = map[string]any{"code": string(domain.CodeInternal)}
			return gqlErr
		}
		if gqlErr.Extensions["code"] != nil {
			return gqlErr // parse and validation errors keep gqlgen's code
		}
		var ie *internalError
		if !errors.As(err, &ie) {
			// Not from a resolver, so from gqlgen coercing the client's
			// arguments, e.g. an unparsable Time.
			gqlErr.Extensions = map[string]any{"code": string(domain.CodeBadUserInput)}
			return gqlErr
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			// The client went away (a browser left the page): nothing
			// failed, and nobody reads the answer.
			zerolog.Ctx(ctx).Debug().Err(err).Str("path", gqlErr.Path.String()).Msg("request cancelled by the client")
			return &gqlerror.Error{Message: "request cancelled", Path: gqlErr.Path,
				Extensions: map[string]any{"code": string(domain.CodeInternal)}}
		}
		zerolog.Ctx(ctx).Error().Err(err).Str("path", gqlErr.Path.String()).Msg("internal error")
		return &gqlerror.Error{
			Message:    "internal error",
			Path:       gqlErr.Path,
			Extensions: map[string]any{"code": string(domain.CodeInternal)},
		}
	}
}

// internalError marks a resolver error that is not the client's to fix.
type internalError struct{ err error }

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// MarkInternal is a field middleware: any resolver error that is neither a
// *domain.Error nor gqlgen's own (introspection fields, gqlerror values) is
// the server's fault, and the presenter must hide it.
func MarkInternal(ctx context.Context, next graphql.Resolver) (any, error) {
	res, err := next(ctx)
	if err == nil {
		return res, nil
	}
	var (
		de *domain.Error
		ge *gqlerror.Error
	)
	fc := graphql.GetFieldContext(ctx)
	introspection := fc != nil && fc.Field.Field != nil && strings.HasPrefix(fc.Field.Name, "__")
	if !introspection && !errors.As(err, &de) && !errors.As(err, &ge) {
		err = &internalError{err}
	}
	return res, err
}

// endSubscription ends a subscription with err, presented like any other
// error: the client gets an error message for the operation, not a silent
// complete. The resolver closes its channel after calling it.
func endSubscription(ctx context.Context, err error) {
	transport.AddSubscriptionError(ctx, ErrorPresenter()(ctx, err))
}

// Recover turns a panic into an INTERNAL error and logs its stack.
func Recover() graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		zerolog.Ctx(ctx).Error().Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).Msg("resolver panicked")
		return &internalError{errors.New("panic")}
	}
}

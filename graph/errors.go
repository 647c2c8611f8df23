package graph

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/auditlog/auditlog/domain"
)

// ErrorPresenter gives every error an extensions.code. Errors the client
// can act on keep their message; anything else becomes INTERNAL with a
// generic message, and the detail goes to the log only, with the request id.
func ErrorPresenter(log zerolog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var de *domain.Error
		if errors.As(err, &de) {
			gqlErr.Message = de.Error()
			gqlErr.Extensions = map[string]any{"code": string(de.Code)}
			if de.Field != "" {
				gqlErr.Extensions["field"] = de.Field
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
		if isInputError(err) {
			gqlErr.Extensions = map[string]any{"code": string(domain.CodeBadUserInput)}
			return gqlErr
		}
		zerolog.Ctx(ctx).Error().Err(err).Str("path", gqlErr.Path.String()).Msg("internal error")
		return &gqlerror.Error{
			Message:    "internal error",
			Path:       gqlErr.Path,
			Extensions: map[string]any{"code": string(domain.CodeInternal)},
		}
	}
}

// isInputError reports errors gqlgen raised while coercing arguments, e.g. an
// unparsable Time; they are the client's to fix.
func isInputError(err error) bool {
	var ge *gqlerror.Error
	if !errors.As(err, &ge) {
		return false
	}
	return ge.Rule != ""
}

// Recover turns a panic into an INTERNAL error and logs its stack.
func Recover(log zerolog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		zerolog.Ctx(ctx).Error().Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).Msg("resolver panicked")
		return errors.New("internal error")
	}
}

package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph/model"
)

// hasRole is the one place fields are authorized. Resolvers behind it take
// the principal with principal(ctx), which cannot fail there.
func hasRole(ctx context.Context, _ any, next graphql.Resolver, role model.Role) (any, error) {
	p, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	switch role {
	case model.RoleAdmin:
		if !p.IsAdmin() {
			return nil, domain.Errorf(domain.CodeForbidden, "", "requires an administrator of the organization")
		}
	case model.RoleService:
		if p.Kind != domain.PrincipalService {
			return nil, domain.Errorf(domain.CodeForbidden, "", "requires a service token")
		}
	default:
		return nil, domain.Errorf(domain.CodeForbidden, "", "unknown role %s", role)
	}
	return next(ctx)
}

// principal is the caller of a field guarded by @hasRole.
func principal(ctx context.Context) *domain.Principal {
	p, _ := auth.FromContext(ctx)
	return p
}

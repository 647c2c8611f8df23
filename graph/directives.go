package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/graph/model"
	"github.com/auditlog/auditlog/ingest"
)

// OwnRecorder records events the audit log emits about itself.
type OwnRecorder interface {
	RecordOwn(ctx context.Context, e *domain.Event) (ingest.Status, error)
}

// authorizer implements @hasRole, the one place fields are authorized.
// Resolvers behind it take the principal with principal(ctx).
type authorizer struct {
	own OwnRecorder
	now func() time.Time
}

func (a authorizer) hasRole(ctx context.Context, _ any, next graphql.Resolver, role model.Role, recordDenial *bool) (any, error) {
	p, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	switch role {
	case model.RoleAdmin:
		if !p.IsAdmin() {
			if recordDenial != nil && *recordDenial {
				a.recordDenial(ctx, p)
			}
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

// denialNamespace derives denial event ids from who tried what in which
// minute, so a user hammering the button leaves one event a minute.
var denialNamespace = uuid.MustParse("2d6a4a0e-4c1b-4f55-9c55-0f3c1f1e9b7a")

// recordDenial leaves a refused settings change by a user of the org in the
// org's own log. Service tokens and other orgs' users are not the org's
// people, so their attempts are only logged by the server. Failing to record
// never changes the answer: the caller is refused either way.
func (a authorizer) recordDenial(ctx context.Context, p *domain.Principal) {
	if p.Kind != domain.PrincipalUser || a.own == nil {
		return
	}
	action := graphql.GetFieldContext(ctx).Field.Name
	now := a.now().UTC()
	key := p.OrgID + "\x00" + p.Subject + "\x00" + action + "\x00" + now.Truncate(time.Minute).Format(time.RFC3339)
	e := &domain.Event{
		ID: uuid.NewSHA1(denialNamespace, []byte(key)).String(), OrgID: p.OrgID,
		Source: domain.SourcePlatform, Type: domain.TypeAuditLogSettingsDenied, OccurredAt: now,
		Actor:   p.Actor(),
		Target:  &domain.Target{Kind: "AUDIT_LOG_SETTINGS", ID: p.OrgID},
		Details: []byte(`{"action":"` + action + `"}`),
	}
	if _, err := a.own.RecordOwn(ctx, e); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("action", action).Msg("recording a denied settings change failed")
	}
}

// principal is the caller of a field guarded by @hasRole.
func principal(ctx context.Context) *domain.Principal {
	p, _ := auth.FromContext(ctx)
	return p
}

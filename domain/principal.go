package domain

import "slices"

// PrincipalKind tells people from services.
type PrincipalKind string

// Kinds of principal.
const (
	PrincipalUser    PrincipalKind = "user"
	PrincipalService PrincipalKind = "service"
)

// RoleAdmin is the role that may read the log and change its settings.
const RoleAdmin = "ADMIN"

// Principal is the authenticated caller, as its token describes it.
type Principal struct {
	Subject string
	OrgID   string
	Name    string
	Email   string
	Roles   []string
	Kind    PrincipalKind
	Sources []Source // services: the products they may record for
	Orgs    []string // services: the orgs they may record for; empty = any
}

// IsAdmin reports whether p is an administrator of its organization.
func (p *Principal) IsAdmin() bool {
	return p.Kind == PrincipalUser && slices.Contains(p.Roles, RoleAdmin)
}

// Actor is p as it appears in events it causes.
func (p *Principal) Actor() Actor {
	return Actor{Kind: ActorUser, ID: p.Subject, Name: p.Name, Email: p.Email}
}

// CanRecord reports why p may not record an event of org in source, or nil.
func (p *Principal) CanRecord(org string, src Source) error {
	if p.Kind != PrincipalService {
		return Errorf(CodeForbidden, "", "only service principals may record events")
	}
	if !slices.Contains(p.Sources, src) {
		return Errorf(CodeForbidden, "source", "token may not record events for source %s", src)
	}
	if len(p.Orgs) > 0 && !slices.Contains(p.Orgs, org) {
		return Errorf(CodeForbidden, "orgId", "token may not record events for org %s", org)
	}
	return nil
}

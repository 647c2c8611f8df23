// Package model holds the Go types behind the GraphQL schema: the generated
// enums and inputs, and hand-written views of domain events, one per
// category, that expose each category's payload as typed fields.
package model

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/auditlog/auditlog/domain"
)

// AuditEvent is any concrete event type of the schema.
type AuditEvent interface{ isAuditEvent() }

// eventFields resolves the fields every AuditEvent has.
type eventFields struct{ e *domain.Event }

func (eventFields) isAuditEvent() {}

// ID is the event id.
func (f eventFields) ID() string { return f.e.ID }

// Type is what happened.
func (f eventFields) Type() AuditEventType { return AuditEventType(f.e.Type) }

// Category is the type's category.
func (f eventFields) Category() AuditEventCategory { return AuditEventCategory(f.e.Category()) }

// Source is the product.
func (f eventFields) Source() AuditSource { return AuditSource(f.e.Source) }

// Description is the type's human description.
func (f eventFields) Description() string { return f.e.Description() }

// OccurredAt is when it happened.
func (f eventFields) OccurredAt() time.Time { return f.e.OccurredAt }

// RecordedAt is when the log accepted it.
func (f eventFields) RecordedAt() time.Time { return f.e.RecordedAt }

// Actor is who did it.
func (f eventFields) Actor() *Actor { return NewActor(&f.e.Actor) }

// Target is what it was done to.
func (f eventFields) Target() *Target {
	t := f.e.Target
	if t == nil {
		return nil
	}
	return &Target{Kind: t.Kind, ID: t.ID, Name: optional(t.Name)}
}

// IPAddress is the client address of the action.
func (f eventFields) IPAddress() *string { return optional(f.e.IPAddress) }

// UserAgent is the client of the action.
func (f eventFields) UserAgent() *string { return optional(f.e.UserAgent) }

// RequestID ties the event to the producer's request.
func (f eventFields) RequestID() *string { return optional(f.e.RequestID) }

// Details is the payload as recorded.
func (f eventFields) Details() json.RawMessage {
	if len(f.e.Details) == 0 {
		return json.RawMessage("{}")
	}
	return f.e.Details
}

// NewActor presents a domain actor.
func NewActor(a *domain.Actor) *Actor {
	return &Actor{Kind: ActorKind(a.Kind), ID: a.ID, Name: optional(a.Name), Email: optional(a.Email)}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// The concrete event types. Their exported fields are the category's typed
// payload, decoded from details.
type (
	// ApiKeyEvent is an API key event.
	ApiKeyEvent struct {
		eventFields
		APIKeyID, APIKeyName, KeyType, FromCustomerID, ToCustomerID *string
	}
	// ExternalIdpEvent is an external identity provider event.
	ExternalIdpEvent struct {
		eventFields
		IdpName, CertificateFingerprint *string
		CertificateExpiresAt            *time.Time
		ChangedFields                   []string
	}
	// KeyContactEvent is a key contact event.
	KeyContactEvent struct {
		eventFields
		ContactEmail, ContactName *string
	}
	// MfaEvent is a multi-factor authentication event.
	MfaEvent struct {
		eventFields
		MfaRequired   *bool
		ChangedFields []string
	}
	// OrganizationEvent is an organization event.
	OrganizationEvent struct {
		eventFields
		PreviousName, NewName, FromCustomerID, ToCustomerID *string
	}
	// PasswordPolicyEvent is a password policy event.
	PasswordPolicyEvent struct {
		eventFields
		ChangedFields []string
		MinLength     *int
	}
	// OrganizationProductEvent is an organization product event.
	OrganizationProductEvent struct {
		eventFields
		ProductCode, LicenseType *string
		TrialEndsAt              *time.Time
	}
	// UserEvent is a user event.
	UserEvent struct {
		eventFields
		UserID, UserEmail, UserName, FromCustomerID, ToCustomerID *string
		ChangedFields                                             []string
	}
	// UserRoleEvent is a user role event.
	UserRoleEvent struct {
		eventFields
		UserID, Role, PreviousRole *string
	}
	// UserAccessEvent is a user access event.
	UserAccessEvent struct {
		eventFields
		UserID, ProductCode, FromCustomerID, ToCustomerID *string
	}
	// CustomerEvent is a customer event.
	CustomerEvent struct {
		eventFields
		PreviousName, NewName, FromCustomerID, ToCustomerID *string
	}
	// AuditLogEvent is an event of the audit log itself: opt-in, opt-out,
	// a refused settings change, an export, a read.
	AuditLogEvent struct {
		eventFields
		Region                             *Region
		Action                             *string
		ExportID, Format, Filter           *string
		EventID, ResourceKind, ResourceID  *string
		Count, Distinct                    *int
		Reads                              []string
		StreamID, StreamName, StreamKind   *string
		Destination, PausedBy, PauseReason *string
		ChangedFields                      []string
	}
	// PolicyEvent is a Custom Policy Builder event.
	PolicyEvent struct {
		eventFields
		PolicyID, PolicyName *string
		Changes              []*PolicyChange
	}
)

// PolicyChange is one changed field of a policy update.
type PolicyChange struct {
	Field  string          `json:"field"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// NewAuditEvent presents e as the concrete type of its category.
func NewAuditEvent(e *domain.Event) AuditEvent {
	f := eventFields{e}
	var v AuditEvent
	switch e.Category() {
	case domain.CategoryAPIKey:
		v = &ApiKeyEvent{eventFields: f}
	case domain.CategoryExternalIDP:
		v = &ExternalIdpEvent{eventFields: f}
	case domain.CategoryKeyContact:
		v = &KeyContactEvent{eventFields: f}
	case domain.CategoryMFA:
		v = &MfaEvent{eventFields: f}
	case domain.CategoryOrganization:
		v = &OrganizationEvent{eventFields: f}
	case domain.CategoryPasswordPolicy:
		v = &PasswordPolicyEvent{eventFields: f}
	case domain.CategoryOrganizationProduct:
		v = &OrganizationProductEvent{eventFields: f}
	case domain.CategoryUser:
		v = &UserEvent{eventFields: f}
	case domain.CategoryUserRole:
		v = &UserRoleEvent{eventFields: f}
	case domain.CategoryUserAccess:
		v = &UserAccessEvent{eventFields: f}
	case domain.CategoryCustomer:
		v = &CustomerEvent{eventFields: f}
	case domain.CategoryAuditLog:
		v = &AuditLogEvent{eventFields: f}
	default:
		v = &PolicyEvent{eventFields: f, Changes: []*PolicyChange{}}
	}
	// Payload keys match field names case-insensitively, which is how
	// encoding/json decodes; the catalog test keeps both in step.
	_ = json.Unmarshal(e.Details, v) // validated at ingest
	return v
}

// LiveCursor is the event's position in its organization's live feed.
func (f eventFields) LiveCursor() string { return LiveCursor(f.e.Seq) }

// Record is the event's leaf bytes, base64.
func (f eventFields) Record() string { return base64.StdEncoding.EncodeToString(f.e.Record) }

// LeafIndex is the event's leaf in its organization's tree, once projected.
func (f eventFields) LeafIndex() *int {
	if f.e.LeafIndex == nil {
		return nil
	}
	n := int(*f.e.LeafIndex)
	return &n
}

package domain

import "slices"

// Category groups event types as the product's audit table does.
type Category string

// Event categories, from the platform's published list plus the policy builder.
const (
	CategoryAPIKey              Category = "API_KEY"
	CategoryExternalIDP         Category = "EXTERNAL_IDP"
	CategoryKeyContact          Category = "KEY_CONTACT"
	CategoryMFA                 Category = "MFA"
	CategoryOrganization        Category = "ORGANIZATION"
	CategoryPasswordPolicy      Category = "PASSWORD_POLICY"
	CategoryOrganizationProduct Category = "ORGANIZATION_PRODUCT"
	CategoryUser                Category = "USER"
	CategoryUserRole            Category = "USER_ROLE"
	CategoryUserAccess          Category = "USER_ACCESS"
	CategoryCustomer            Category = "CUSTOMER"
	CategoryRBAC                Category = "RBAC"
	CategoryAuditLog            Category = "AUDIT_LOG"
	CategoryPolicy              Category = "POLICY"
)

// Categories lists every category in catalog order.
var Categories = []Category{
	CategoryAPIKey, CategoryExternalIDP, CategoryKeyContact, CategoryMFA,
	CategoryOrganization, CategoryPasswordPolicy, CategoryOrganizationProduct,
	CategoryUser, CategoryUserRole, CategoryUserAccess, CategoryCustomer,
	CategoryRBAC, CategoryAuditLog, CategoryPolicy,
}

// Valid reports whether c is a known category.
func (c Category) Valid() bool { return slices.Contains(Categories, c) }

// FieldType is the JSON shape a payload field must have.
type FieldType string

// Payload field types.
const (
	FieldString     FieldType = "String"
	FieldEmail      FieldType = "Email"
	FieldBoolean    FieldType = "Boolean"
	FieldInt        FieldType = "Int"
	FieldTime       FieldType = "Time"
	FieldStringList FieldType = "[String]"
	FieldChangeList FieldType = "[Change]"
)

// Field is one declared field of an event type's payload.
type Field struct {
	Name        string
	Type        FieldType
	Required    bool
	Description string
}

// TypeInfo describes one event type of the catalog.
type TypeInfo struct {
	Type        EventType
	Category    Category
	Description string
	Fields      []Field
}

// EventType names what happened, e.g. USER_CREATED.
type EventType string

// Event types that other packages refer to by name.
const (
	TypeAuditLogOptIn  EventType = "AUDIT_LOG_OPT_IN"
	TypeAuditLogOptOut EventType = "AUDIT_LOG_OPT_OUT"
	// TypeAuditLogSettingsDenied records a user of the org who tried to
	// change the settings without being an administrator.
	TypeAuditLogSettingsDenied EventType = "AUDIT_LOG_SETTINGS_DENIED"
	// TypeAuditLogExported records an administrator taking the log away as
	// a file: auditors ask who exported what.
	TypeAuditLogExported EventType = "AUDIT_LOG_EXPORTED"
	// TypeAuditLogViewed records a read of the log itself: a search, an
	// event opened, a resource's history, a live feed, a download.
	TypeAuditLogViewed EventType = "AUDIT_LOG_VIEWED"
	// The log stream types record an administrator (or, for a pause, auditd
	// itself) creating, changing, pausing, resuming and deleting a stream
	// that delivers the log to a SIEM: where the log goes is part of the log.
	TypeAuditLogStreamCreated EventType = "AUDIT_LOG_STREAM_CREATED"
	TypeAuditLogStreamUpdated EventType = "AUDIT_LOG_STREAM_UPDATED"
	TypeAuditLogStreamPaused  EventType = "AUDIT_LOG_STREAM_PAUSED"
	TypeAuditLogStreamResumed EventType = "AUDIT_LOG_STREAM_RESUMED"
	TypeAuditLogStreamDeleted EventType = "AUDIT_LOG_STREAM_DELETED"
	TypePolicyCreated         EventType = "POLICY_CREATED"
	TypePolicyUpdated         EventType = "POLICY_UPDATED"
	TypePolicyDeleted         EventType = "POLICY_DELETED"
)

// Info returns the catalog entry of t.
func (t EventType) Info() (TypeInfo, bool) {
	i, ok := catalogIndex[t]
	if !ok {
		return TypeInfo{}, false
	}
	return catalog[i], true
}

// System reports whether only the audit log itself may record t: the
// AUDIT_LOG category (opt-in and opt-out, denied settings changes, exports,
// reads of the log). A service that could write them could forge the log's
// own lifecycle, which an auditor could not tell from the real one.
func (t EventType) System() bool { return t.Category() == CategoryAuditLog }

// Valid reports whether t is in the catalog.
func (t EventType) Valid() bool { _, ok := catalogIndex[t]; return ok }

// Category is t's category, or "" for an unknown type.
func (t EventType) Category() Category { i, _ := t.Info(); return i.Category }

// Description is t's human description, or "" for an unknown type.
func (t EventType) Description() string { i, _ := t.Info(); return i.Description }

// Catalog returns every event type, grouped by category in catalog order. The
// slice is a copy; callers may not change the catalog.
func Catalog() []TypeInfo { return slices.Clone(catalog) }

// Reusable field declarations; the same field means the same thing in every type.
var (
	fUserID         = Field{Name: "userId", Type: FieldString, Required: true, Description: "ID of the user acted on"}
	fUserEmail      = Field{Name: "userEmail", Type: FieldEmail, Description: "email of the user acted on"}
	fUserName       = Field{Name: "userName", Type: FieldString, Description: "name of the user acted on"}
	fChangedFields  = Field{Name: "changedFields", Type: FieldStringList, Description: "names of the settings that changed"}
	fFromCustomer   = Field{Name: "fromCustomerId", Type: FieldString, Required: true, Description: "customer account moved from"}
	fToCustomer     = Field{Name: "toCustomerId", Type: FieldString, Required: true, Description: "customer account moved to"}
	fProductCode    = Field{Name: "productCode", Type: FieldString, Required: true, Description: "product, e.g. INSIGHT_IDR"}
	fAPIKeyID       = Field{Name: "apiKeyId", Type: FieldString, Required: true, Description: "ID of the API key"}
	fAPIKeyName     = Field{Name: "apiKeyName", Type: FieldString, Description: "display name of the API key"}
	fIDPName        = Field{Name: "idpName", Type: FieldString, Description: "name of the external identity provider"}
	fPreviousName   = Field{Name: "previousName", Type: FieldString, Required: true, Description: "name before the change"}
	fNewName        = Field{Name: "newName", Type: FieldString, Required: true, Description: "name after the change"}
	fContactEmail   = Field{Name: "contactEmail", Type: FieldEmail, Required: true, Description: "email of the key contact"}
	fRegion         = Field{Name: "region", Type: FieldString, Required: true, Description: "region where audit data is stored"}
	fPolicyID       = Field{Name: "policyId", Type: FieldString, Required: true, Description: "ID of the policy"}
	fPolicyName     = Field{Name: "policyName", Type: FieldString, Description: "name of the policy"}
	fPolicyNameReq  = Field{Name: "policyName", Type: FieldString, Required: true, Description: "name of the policy"}
	fPolicyChanges  = Field{Name: "changes", Type: FieldChangeList, Required: true, Description: "changed fields with before and after values"}
	fOptionalRegion = Field{Name: "region", Type: FieldString, Description: "region where audit data is stored"}
)

func user(extra ...Field) []Field { return append([]Field{fUserID}, extra...) }

// catalog is the published list of event types. Its order is the order the
// API lists them in.
var catalog = []TypeInfo{
	{"API_KEY_CREATED", CategoryAPIKey, "New API key was created", []Field{fAPIKeyID, fAPIKeyName,
		{Name: "keyType", Type: FieldString, Description: "USER or ORGANIZATION key"}}},
	{"API_KEY_DELETED", CategoryAPIKey, "API key was deleted", []Field{fAPIKeyID, fAPIKeyName}},
	{"API_KEY_MOVED", CategoryAPIKey, "API key was moved to a new customer account due to a customer account merge", []Field{fAPIKeyID, fFromCustomer, fToCustomer}},

	{"EIDP_ENABLED", CategoryExternalIDP, "User Authentication using an External IDP was enabled", []Field{fIDPName}},
	{"EIDP_DISABLED", CategoryExternalIDP, "User Authentication using an External IDP was disabled", []Field{fIDPName}},
	{"EIDP_X509_CERT_UPLOADED", CategoryExternalIDP, "An X509 security certificate was uploaded for the External IDP", []Field{fIDPName,
		{Name: "certificateFingerprint", Type: FieldString, Required: true, Description: "SHA-256 fingerprint of the certificate"},
		{Name: "certificateExpiresAt", Type: FieldTime, Description: "when the certificate expires"}}},
	{"EIDP_UPDATED", CategoryExternalIDP, "The configuration profile for the External IDP used for user authentication was updated", []Field{fIDPName, fChangedFields}},
	{"EIDP_DELETED", CategoryExternalIDP, "The configuration profile for the External IDP used for user authentication was deleted", []Field{fIDPName}},
	{"JIT_PROFILE_UPDATED", CategoryExternalIDP, "The Just In Time provisioning profile applied to users accessing the Insight Platform from an External IDP was updated", []Field{fIDPName, fChangedFields}},

	{"KEY_CONTACT_ADDED", CategoryKeyContact, "New Key Contact was added", []Field{fContactEmail,
		{Name: "contactName", Type: FieldString, Description: "name of the key contact"}}},
	{"KEY_CONTACT_REMOVED", CategoryKeyContact, "Key Contact was removed", []Field{fContactEmail}},

	{"MFA_UPDATED", CategoryMFA, "MFA configuration data was changed", []Field{
		{Name: "mfaRequired", Type: FieldBoolean, Description: "whether MFA is required after the change"}, fChangedFields}},

	{"ORG_NAME_UPDATED", CategoryOrganization, "Organization Display Name was changed", []Field{fPreviousName, fNewName}},
	{"ORGANIZATION_MOVED", CategoryOrganization, "The organization was moved from one customer account to another due to a customer account merge", []Field{fFromCustomer, fToCustomer}},

	{"PASSWORD_POLICY_UPDATED", CategoryPasswordPolicy, "Password policy was modified", []Field{
		{Name: "changedFields", Type: FieldStringList, Required: true, Description: "names of the settings that changed"},
		{Name: "minLength", Type: FieldInt, Description: "minimum password length after the change"}}},

	{"ORG_PRODUCT_CREATED", CategoryOrganizationProduct, "A new Insight Product License was added to the Customer’s organization", []Field{fProductCode,
		{Name: "licenseType", Type: FieldString, Description: "kind of license, e.g. PAID or TRIAL"}}},
	{"PRODUCT_TRIAL_EVENT", CategoryOrganizationProduct, "A new product free trial was started", []Field{fProductCode,
		{Name: "trialEndsAt", Type: FieldTime, Description: "when the trial ends"}}},

	{"USER_ACCOUNT_RESET", CategoryUser, "User account was reset", user(fUserEmail)},
	{"USER_CREATED", CategoryUser, "New user was created", user(
		Field{Name: "userEmail", Type: FieldEmail, Required: true, Description: "email of the user acted on"}, fUserName)},
	{"USER_DELETED", CategoryUser, "User account was deleted", user(fUserEmail, fUserName)},
	{"USER_MFA_RESET", CategoryUser, "User MFA was reset", user(fUserEmail)},
	{"USER_UPDATED", CategoryUser, "User profile was updated", user(fUserEmail, fChangedFields)},
	{"USER_ACTIVATED", CategoryUser, "User account was activated", user(fUserEmail)},
	{"USER_CHANGED_PASSWORD", CategoryUser, "User changed their password", user()},
	{"USER_CHANGED_SECURITY_QUESTION", CategoryUser, "User changed their security question", user()},
	{"USER_ACTIVATION_RESENT", CategoryUser, "User account activation email resent", user(fUserEmail)},
	{"USER_FORGOTTEN_PASSWORD", CategoryUser, "User forgot their password", user(fUserEmail)},
	{"USER_MOVED", CategoryUser, "User account was moved to another customer account due to a customer account merge", user(fFromCustomer, fToCustomer)},
	{"USER_LOGOUT", CategoryUser, "User logged out", user()},

	{"USER_ROLE_SET", CategoryUserRole, "User role was set or updated", user(
		Field{Name: "role", Type: FieldString, Required: true, Description: "role after the change"},
		Field{Name: "previousRole", Type: FieldString, Description: "role before the change"})},

	{"USER_TO_ORG_PRODUCT_CREATED", CategoryUserAccess, "A user was assigned access to a product", user(fProductCode)},
	{"USER_TO_ORG_PRODUCT_DELETED", CategoryUserAccess, "A user was unassigned access to a product", user(fProductCode)},
	{"USER_TO_PRODUCT_NAVIGATION", CategoryUserAccess, "A user navigated to access a specified product", user(fProductCode)},
	{"USER_SWITCHED_CUSTOMER", CategoryUserAccess, "A user with multi customer account access navigated from their primary customer account to access another customer account", user(fFromCustomer, fToCustomer)},
	{"USER_CUSTOMER_MOVED", CategoryUserAccess, "A user account was moved from one customer account to another due to a customer account merge", user(fFromCustomer, fToCustomer)},

	{"CUSTOMER_NAME_UPDATED", CategoryCustomer, "The Customer Account Name was updated", []Field{fPreviousName, fNewName}},
	{"CUSTOMER_MERGED", CategoryCustomer, "The Customer account was merged with another customer account", []Field{fFromCustomer, fToCustomer}},

	{TypeAuditLogOptIn, CategoryAuditLog, "Audit Logging was turned on", []Field{fRegion}},
	{TypeAuditLogOptOut, CategoryAuditLog, "Audit Logging was turned off", []Field{fOptionalRegion}},
	{TypeAuditLogSettingsDenied, CategoryAuditLog, "A user without administrator rights tried to change the audit log settings", []Field{
		{Name: "action", Type: FieldString, Required: true, Description: "the refused operation, e.g. disableAuditLog"}}},
	{TypeAuditLogExported, CategoryAuditLog, "Audit log events were exported to a file", []Field{
		{Name: "exportId", Type: FieldString, Required: true, Description: "the export job"},
		{Name: "format", Type: FieldString, Required: true, Description: "CSV or NDJSON"},
		{Name: "filter", Type: FieldString, Description: "the filter of the export, as JSON"}}},
	{TypeAuditLogViewed, CategoryAuditLog, "The audit log was read: searched, an event opened, a history or live feed read, or an export downloaded", []Field{
		{Name: "action", Type: FieldString, Required: true, Description: "search, view, history, live, download or tiles"},
		{Name: "filter", Type: FieldString, Description: "for search and live: the filter, as JSON"},
		{Name: "eventId", Type: FieldString, Description: "for view: the event opened"},
		{Name: "resourceKind", Type: FieldString, Description: "for history: the kind of resource"},
		{Name: "resourceId", Type: FieldString, Description: "for history: the resource"},
		{Name: "exportId", Type: FieldString, Description: "for download: the export job"},
		{Name: "count", Type: FieldInt, Description: "how many reads the event stands for: 1 for a reader's first read of this kind in a window, the reads after it for the event recorded when the window ends (absent in events recorded before counting: 1)"},
		{Name: "distinct", Type: FieldInt, Description: "for the event recorded when a window ends: how many different things its reads read"},
		{Name: "reads", Type: FieldStringList, Description: "for the event recorded when a window ends: up to 20 of the different filters, events, resources or exports read"}}},
	{TypeAuditLogStreamCreated, CategoryAuditLog, "A log stream delivering the audit log to a SIEM was created", streamFields()},
	{TypeAuditLogStreamUpdated, CategoryAuditLog, "A log stream was changed", streamFields(
		Field{Name: "changedFields", Type: FieldStringList, Description: "the settings changed: destination, enabled, filter, name, secrets"})},
	{TypeAuditLogStreamPaused, CategoryAuditLog, "A log stream was paused, by an administrator or by the audit log after failing too long", streamFields(
		Field{Name: "pausedBy", Type: FieldString, Required: true, Description: "ADMIN or AUDITD"},
		Field{Name: "pauseReason", Type: FieldString, Description: "for AUDITD: why it paused the stream"})},
	{TypeAuditLogStreamResumed, CategoryAuditLog, "A paused log stream was resumed", streamFields()},
	{TypeAuditLogStreamDeleted, CategoryAuditLog, "A log stream was deleted", streamFields()},

	{TypePolicyCreated, CategoryPolicy, "A policy was created in the Custom Policy Builder", []Field{fPolicyID, fPolicyNameReq}},
	{TypePolicyUpdated, CategoryPolicy, "A policy was updated in the Custom Policy Builder", []Field{fPolicyID, fPolicyName, fPolicyChanges}},
	{TypePolicyDeleted, CategoryPolicy, "A policy was deleted in the Custom Policy Builder", []Field{fPolicyID, fPolicyName}},
}

// streamFields are the details of the log stream types, then more. They
// never hold a destination's secret: only its kind and where it points.
func streamFields(more ...Field) []Field {
	return append([]Field{
		{Name: "streamId", Type: FieldString, Required: true, Description: "the log stream"},
		{Name: "streamName", Type: FieldString, Required: true, Description: "the log stream's name"},
		{Name: "streamKind", Type: FieldString, Required: true, Description: "WEBHOOK, SPLUNK_HEC or SYSLOG"},
		{Name: "destination", Type: FieldString, Description: "where it delivers: the URL, or host:port for syslog"},
	}, more...)
}

var catalogIndex = func() map[EventType]int {
	m := make(map[EventType]int, len(catalog))
	for i, t := range catalog {
		m[t.Type] = i
	}
	return m
}()

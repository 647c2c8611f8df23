package domain

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// catalogExamples has, for every catalog type, a payload that must be
// accepted and one that must be rejected naming wantField.
var catalogExamples = []struct {
	typ       EventType
	valid     string
	invalid   string
	wantField string
}{
	{"API_KEY_CREATED", `{"apiKeyId":"k1","apiKeyName":"ci","keyType":"USER"}`, `{"apiKeyName":"ci"}`, "details.apiKeyId"},
	{"API_KEY_DELETED", `{"apiKeyId":"k1"}`, `{"apiKeyId":7}`, "details.apiKeyId"},
	{"API_KEY_MOVED", `{"apiKeyId":"k1","fromCustomerId":"c1","toCustomerId":"c2"}`, `{"apiKeyId":"k1","fromCustomerId":"c1"}`, "details.toCustomerId"},
	{"EIDP_ENABLED", `{"idpName":"Okta"}`, `{"idpName":true}`, "details.idpName"},
	{"EIDP_DISABLED", `{}`, `{"idp":"Okta"}`, "details.idp"},
	{"EIDP_X509_CERT_UPLOADED", `{"certificateFingerprint":"ab:cd","certificateExpiresAt":"2027-01-01T00:00:00Z"}`, `{"certificateFingerprint":"ab:cd","certificateExpiresAt":"next year"}`, "details.certificateExpiresAt"},
	{"EIDP_UPDATED", `{"idpName":"Okta","changedFields":["ssoUrl"]}`, `{"changedFields":"ssoUrl"}`, "details.changedFields"},
	{"EIDP_DELETED", `{"idpName":"Okta"}`, `[]`, "details"},
	{"JIT_PROFILE_UPDATED", `{"changedFields":["defaultRole"]}`, `{"changedFields":[""]}`, "details.changedFields[0]"},
	{"KEY_CONTACT_ADDED", `{"contactEmail":"sec@acme.example","contactName":"Sec"}`, `{"contactEmail":"not-an-email"}`, "details.contactEmail"},
	{"KEY_CONTACT_REMOVED", `{"contactEmail":"sec@acme.example"}`, `{}`, "details.contactEmail"},
	{"MFA_UPDATED", `{"mfaRequired":true}`, `{"mfaRequired":"yes"}`, "details.mfaRequired"},
	{"ORG_NAME_UPDATED", `{"previousName":"Acme","newName":"Acme Corp"}`, `{"previousName":"Acme","newName":"  "}`, "details.newName"},
	{"ORGANIZATION_MOVED", `{"fromCustomerId":"c1","toCustomerId":"c2"}`, `{"fromCustomerId":"c1"}`, "details.toCustomerId"},
	{"PASSWORD_POLICY_UPDATED", `{"changedFields":["minLength"],"minLength":12}`, `{"changedFields":["minLength"],"minLength":12.5}`, "details.minLength"},
	{"ORG_PRODUCT_CREATED", `{"productCode":"INSIGHT_IDR","licenseType":"PAID"}`, `{"licenseType":"PAID"}`, "details.productCode"},
	{"PRODUCT_TRIAL_EVENT", `{"productCode":"INSIGHT_VM","trialEndsAt":"2026-12-31T00:00:00Z"}`, `{"productCode":"INSIGHT_VM","trialEndsAt":17}`, "details.trialEndsAt"},
	{"USER_ACCOUNT_RESET", `{"userId":"u1"}`, `{}`, "details.userId"},
	{"USER_CREATED", `{"userId":"u1","userEmail":"ann@acme.example","userName":"Ann"}`, `{"userId":"u1"}`, "details.userEmail"},
	{"USER_DELETED", `{"userId":"u1","userEmail":"ann@acme.example"}`, `{"userId":"u1","userEmail":"Ann <ann@acme.example>"}`, "details.userEmail"},
	{"USER_MFA_RESET", `{"userId":"u1"}`, `{"userId":null}`, "details.userId"},
	{"USER_UPDATED", `{"userId":"u1","changedFields":["email"]}`, `{"userId":"u1","changedFields":[1]}`, "details.changedFields"},
	{"USER_ACTIVATED", `{"userId":"u1"}`, `{"userId":""}`, "details.userId"},
	{"USER_CHANGED_PASSWORD", `{"userId":"u1"}`, `{"userId":"u1","password":"hunter2"}`, "details.password"},
	{"USER_CHANGED_SECURITY_QUESTION", `{"userId":"u1"}`, `{"userId":["u1"]}`, "details.userId"},
	{"USER_ACTIVATION_RESENT", `{"userId":"u1","userEmail":"ann@acme.example"}`, `{"userId":"u1","userEmail":"ann@"}`, "details.userEmail"},
	{"USER_FORGOTTEN_PASSWORD", `{"userId":"u1"}`, `{"user":"u1"}`, "details.userId"},
	{"USER_MOVED", `{"userId":"u1","fromCustomerId":"c1","toCustomerId":"c2"}`, `{"userId":"u1","toCustomerId":"c2"}`, "details.fromCustomerId"},
	{"USER_LOGOUT", `{"userId":"u1"}`, `"u1"`, "details"},
	{"USER_ROLE_SET", `{"userId":"u1","role":"ADMIN","previousRole":"READ_ONLY"}`, `{"userId":"u1"}`, "details.role"},
	{"USER_TO_ORG_PRODUCT_CREATED", `{"userId":"u1","productCode":"INSIGHT_IDR"}`, `{"productCode":"INSIGHT_IDR"}`, "details.userId"},
	{"USER_TO_ORG_PRODUCT_DELETED", `{"userId":"u1","productCode":"INSIGHT_IDR"}`, `{"userId":"u1"}`, "details.productCode"},
	{"USER_TO_PRODUCT_NAVIGATION", `{"userId":"u1","productCode":"INSIGHT_VM"}`, `{"userId":"u1","productCode":false}`, "details.productCode"},
	{"USER_SWITCHED_CUSTOMER", `{"userId":"u1","fromCustomerId":"c1","toCustomerId":"c2"}`, `{"userId":"u1","fromCustomerId":"c1","toCustomerId":{}}`, "details.toCustomerId"},
	{"USER_CUSTOMER_MOVED", `{"userId":"u1","fromCustomerId":"c1","toCustomerId":"c2"}`, `{"fromCustomerId":"c1","toCustomerId":"c2"}`, "details.userId"},
	{"CUSTOMER_NAME_UPDATED", `{"previousName":"A","newName":"B"}`, `{"newName":"B"}`, "details.previousName"},
	{"CUSTOMER_MERGED", `{"fromCustomerId":"c1","toCustomerId":"c2"}`, `{"fromCustomerId":"c1","toCustomerId":"c2","extra":1}`, "details.extra"},
	{"AUDIT_LOG_OPT_IN", `{"region":"EU"}`, `{}`, "details.region"},
	{"AUDIT_LOG_OPT_OUT", `{"region":"EU"}`, `{"region":1}`, "details.region"},
	{"AUDIT_LOG_SETTINGS_DENIED", `{"action":"disableAuditLog"}`, `{"action":""}`, "details.action"},
	{"AUDIT_LOG_EXPORTED", `{"exportId":"01J","format":"CSV","filter":"{}"}`, `{"exportId":"01J"}`, "details.format"},
	{"AUDIT_LOG_VIEWED", `{"action":"search","filter":"{\"search\":\"ada\"}"}`, `{"filter":"{}"}`, "details.action"},
	{"AUDIT_LOG_STREAM_CREATED", `{"streamId":"s1","streamName":"siem","streamKind":"WEBHOOK","destination":"https://siem.example.com/hook"}`, `{"streamId":"s1","streamKind":"WEBHOOK"}`, "details.streamName"},
	{"AUDIT_LOG_STREAM_UPDATED", `{"streamId":"s1","streamName":"siem","streamKind":"WEBHOOK","changedFields":["filter"]}`, `{"streamId":"s1","streamName":"siem","streamKind":"WEBHOOK","changedFields":"filter"}`, "details.changedFields"},
	{"AUDIT_LOG_STREAM_PAUSED", `{"streamId":"s1","streamName":"siem","streamKind":"SYSLOG","pausedBy":"AUDITD","pauseReason":"failing since 2026-01-01T00:00:00Z"}`, `{"streamId":"s1","streamName":"siem","streamKind":"SYSLOG"}`, "details.pausedBy"},
	{"AUDIT_LOG_STREAM_RESUMED", `{"streamId":"s1","streamName":"siem","streamKind":"SPLUNK_HEC"}`, `{"streamName":"siem","streamKind":"SPLUNK_HEC"}`, "details.streamId"},
	{"AUDIT_LOG_STREAM_DELETED", `{"streamId":"s1","streamName":"siem","streamKind":"SPLUNK_HEC"}`, `{"streamId":"s1","streamName":"siem"}`, "details.streamKind"},
	{"POLICY_CREATED", `{"policyId":"p1","policyName":"CIS"}`, `{"policyId":"p1"}`, "details.policyName"},
	{"POLICY_UPDATED", `{"policyId":"p1","changes":[{"field":"threshold","before":3,"after":5}]}`, `{"policyId":"p1","changes":[]}`, "details.changes"},
	{"POLICY_DELETED", `{"policyId":"p1","policyName":"CIS"}`, `{"policyId":"p1","changes":[{"field":"x"}]}`, "details.changes"},
}

func TestCatalogExamples(t *testing.T) {
	covered := map[EventType]bool{}
	for _, tc := range catalogExamples {
		covered[tc.typ] = true
		t.Run(string(tc.typ), func(t *testing.T) {
			if err := ValidateDetails(tc.typ, json.RawMessage(tc.valid)); err != nil {
				t.Errorf("valid example rejected: %v", err)
			}
			err := ValidateDetails(tc.typ, json.RawMessage(tc.invalid))
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("invalid example accepted (err %v)", err)
			}
			if de.Code != CodeBadUserInput || de.Field != tc.wantField {
				t.Errorf("got %s on %q (%v), want BAD_USER_INPUT on %q", de.Code, de.Field, de, tc.wantField)
			}
		})
	}
	for _, info := range Catalog() {
		if !covered[info.Type] {
			t.Errorf("catalog type %s has no example", info.Type)
		}
		if info.Description == "" || !info.Category.Valid() {
			t.Errorf("catalog type %s lacks a description or category", info.Type)
		}
	}
}

func TestChangeListEntries(t *testing.T) {
	err := ValidateDetails(TypePolicyUpdated, json.RawMessage(`{"policyId":"p","changes":[{"field":"a"},{"before":1}]}`))
	var de *Error
	if !errors.As(err, &de) || de.Field != "details.changes[1].field" {
		t.Fatalf("got %v, want error on details.changes[1].field", err)
	}
}

func validEvent() Event {
	return Event{
		ID: "01JDQ8Z6V1K9E3M4N5P6Q7R8S9", OrgID: "acme", Source: SourcePlatform, Type: "USER_LOGOUT",
		OccurredAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Actor:      Actor{Kind: ActorUser, ID: "u1", Name: "Ann", Email: "ann@acme.example"},
		Details:    json.RawMessage(`{"userId":"u1"}`),
	}
}

func TestEventValidate(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		mutate    func(*Event)
		wantField string // empty: valid
	}{
		{"valid", func(*Event) {}, ""},
		{"uuid id", func(e *Event) { e.ID = "3f2b8c1e-9d4a-4b7e-8f10-2a3b4c5d6e7f" }, ""},
		{"ipv6", func(e *Event) { e.IPAddress = "2001:db8::1" }, ""},
		{"bad id", func(e *Event) { e.ID = "event-1" }, "id"},
		{"org with dot", func(e *Event) { e.OrgID = "acme.evil" }, "orgId"},
		{"org with wildcard", func(e *Event) { e.OrgID = "*" }, "orgId"},
		{"unknown source", func(e *Event) { e.Source = "NOPE" }, "source"},
		{"unknown type", func(e *Event) { e.Type = "USER_EXPLODED" }, "type"},
		{"zero time", func(e *Event) { e.OccurredAt = time.Time{} }, "occurredAt"},
		{"future", func(e *Event) { e.OccurredAt = now.Add(time.Hour) }, "occurredAt"},
		{"ancient", func(e *Event) { e.OccurredAt = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) }, "occurredAt"},
		{"actor kind", func(e *Event) { e.Actor.Kind = "ROBOT" }, "actor.kind"},
		{"actor id", func(e *Event) { e.Actor.ID = " " }, "actor.id"},
		{"actor email", func(e *Event) { e.Actor.Email = "nobody" }, "actor.email"},
		{"target id", func(e *Event) { e.Target = &Target{Kind: "USER"} }, "target.id"},
		{"ip", func(e *Event) { e.IPAddress = "300.1.1.1" }, "ipAddress"},
		{"invalid utf8", func(e *Event) { e.UserAgent = "\xff" }, "userAgent"},
		{"payload", func(e *Event) { e.Details = json.RawMessage(`{}`) }, "details.userId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validEvent()
			tc.mutate(&e)
			err := e.Validate(now)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || de.Field != tc.wantField || de.Code != CodeBadUserInput {
				t.Fatalf("got %v, want BAD_USER_INPUT on %s", err, tc.wantField)
			}
		})
	}
}

package ocsf

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditlog/auditlog/domain"
)

var product = Product{Name: "Audit Log", VendorName: "Example", Version: "1.0"}

func event(t domain.EventType, details string) *domain.Event {
	leaf := int64(41)
	return &domain.Event{
		ID: "01J00000000000000000000001", OrgID: "org-1", Source: domain.SourcePlatform, Type: t,
		OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC),
		RecordedAt: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
		Actor:      domain.Actor{Kind: domain.ActorUser, ID: "u-1", Name: "Ada", Email: "ada@example.com"},
		Target:     &domain.Target{Kind: "USER", ID: "u-2", Name: "Bob"},
		IPAddress:  "203.0.113.7", UserAgent: "curl/8", RequestID: "req-9",
		Details: json.RawMessage(details), LeafIndex: &leaf,
	}
}

// decode renders e and reads it back as plain JSON, so the test checks what
// a SIEM receives rather than Go struct fields.
func decode(t *testing.T, e *domain.Event) map[string]any {
	t.Helper()
	b, err := Marshal(e, product)
	if err != nil {
		t.Fatalf("%s: %v", e.Type, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v in %s", e.Type, err, b)
	}
	return m
}

func get(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[p]
	}
	return v
}

// Every catalog type maps to one of the three classes with the fields OCSF
// requires of it and of every event.
func TestEveryCatalogTypeHasRequiredFields(t *testing.T) {
	for _, info := range domain.Catalog() {
		m := decode(t, event(info.Type, `{"userId":"u-2","userEmail":"bob@example.com"}`))
		class := int(get(m, "class_uid").(float64))
		activity := int(get(m, "activity_id").(float64))
		wantCat := map[int]int{ClassAPIActivity: 6, ClassAccountChange: 3, ClassAuthentication: 3}[class]
		if wantCat == 0 {
			t.Errorf("%s: class_uid %d is not one of 3001, 3002, 6003", info.Type, class)
			continue
		}
		if got := int(get(m, "category_uid").(float64)); got != wantCat {
			t.Errorf("%s: category_uid %d, want %d", info.Type, got, wantCat)
		}
		if got := int(get(m, "type_uid").(float64)); got != class*100+activity {
			t.Errorf("%s: type_uid %d, want %d", info.Type, got, class*100+activity)
		}
		if activity == 0 {
			t.Errorf("%s: activity_id is Unknown", info.Type)
		}
		for _, path := range [][]string{
			{"class_name"}, {"category_name"}, {"activity_name"}, {"type_name"}, {"time"},
			{"severity_id"}, {"metadata", "version"}, {"metadata", "product", "name"},
			{"metadata", "product", "vendor_name"}, {"metadata", "uid"}, {"metadata", "sequence"},
			{"actor", "user", "uid"}, {"src_endpoint", "ip"}, {"unmapped", "leaf_index"},
		} {
			if v := get(m, path...); v == nil || v == "" {
				t.Errorf("%s: %v missing in %v", info.Type, path, m)
			}
		}
		switch class {
		case ClassAPIActivity:
			if get(m, "api", "operation") != string(info.Type) || get(m, "api", "service", "name") != "PLATFORM" {
				t.Errorf("%s: api = %v", info.Type, m["api"])
			}
		case ClassAccountChange, ClassAuthentication:
			if get(m, "user", "uid") == nil {
				t.Errorf("%s: no user in %v", info.Type, m)
			}
		}
	}
}

func TestMapping(t *testing.T) {
	tests := []struct {
		typ            domain.EventType
		class, act, ty int
	}{
		{"USER_CREATED", 3001, 1, 300101},
		{"USER_DELETED", 3001, 6, 300106},
		{"USER_CHANGED_PASSWORD", 3001, 3, 300103},
		{"USER_MFA_RESET", 3001, 11, 300111},
		{"USER_ROLE_SET", 3001, 7, 300107},
		{"USER_TO_ORG_PRODUCT_DELETED", 3001, 8, 300108},
		{"USER_UPDATED", 3001, 99, 300199},
		{"USER_LOGOUT", 3002, 2, 300202},
		{"API_KEY_CREATED", 6003, 1, 600301},
		{"KEY_CONTACT_REMOVED", 6003, 4, 600304},
		{"EIDP_UPDATED", 6003, 3, 600303},
		{"AUDIT_LOG_VIEWED", 6003, 2, 600302},
		{"AUDIT_LOG_EXPORTED", 6003, 2, 600302},
		{"AUDIT_LOG_SETTINGS_DENIED", 6003, 99, 600399},
		{"SOMETHING_NEW_LATER", 6003, 99, 600399},
	}
	for _, tt := range tests {
		m := decode(t, event(tt.typ, `{"userId":"u-2"}`))
		got := [3]int{int(m["class_uid"].(float64)), int(m["activity_id"].(float64)), int(m["type_uid"].(float64))}
		if got != [3]int{tt.class, tt.act, tt.ty} {
			t.Errorf("%s: class, activity, type = %v, want %v", tt.typ, got, [3]int{tt.class, tt.act, tt.ty})
		}
	}
}

func TestFields(t *testing.T) {
	e := event("USER_CREATED", `{"userId":"u-2","userEmail":"bob@example.com","userName":"Bob"}`)
	m := decode(t, e)
	want := map[string]any{
		"time":                       float64(e.OccurredAt.UnixMilli()),
		"severity_id":                float64(1),
		"status_id":                  float64(1),
		"metadata.version":           Version,
		"metadata.product.name":      "Audit Log",
		"metadata.uid":               e.ID,
		"metadata.sequence":          float64(41),
		"metadata.logged_time":       float64(e.RecordedAt.UnixMilli()),
		"metadata.correlation_uid":   "req-9",
		"metadata.tenant_uid":        "org-1",
		"actor.user.uid":             "u-1",
		"actor.user.name":            "Ada",
		"actor.user.email_addr":      "ada@example.com",
		"actor.user.type_id":         float64(1),
		"src_endpoint.ip":            "203.0.113.7",
		"http_request.user_agent":    "curl/8",
		"user.uid":                   "u-2",
		"user.email_addr":            "bob@example.com",
		"user.name":                  "Bob",
		"unmapped.org_id":            "org-1",
		"unmapped.event_type":        "USER_CREATED",
		"unmapped.category":          "USER",
		"unmapped.leaf_index":        float64(41),
		"unmapped.details.userEmail": "bob@example.com",
		"message":                    "New user was created",
	}
	for path, v := range want {
		if got := get(m, strings.Split(path, ".")...); got != v {
			t.Errorf("%s = %v, want %v", path, got, v)
		}
	}
	if get(m, "api") != nil {
		t.Error("an Account Change event has api")
	}

	denied := decode(t, event(domain.TypeAuditLogSettingsDenied, `{"action":"disableAuditLog"}`))
	if denied["status_id"] != float64(2) || denied["severity_id"] != float64(3) {
		t.Errorf("denied settings change: status %v, severity %v", denied["status_id"], denied["severity_id"])
	}

	// A key and the platform itself are actors too.
	for kind, typeID := range map[domain.ActorKind]float64{domain.ActorAPIKey: 99, domain.ActorSystem: 3, "ROBOT": 0} {
		e := event("API_KEY_DELETED", `{}`)
		e.Actor.Kind = kind
		if got := get(decode(t, e), "actor", "user", "type_id"); got != typeID {
			t.Errorf("actor %s: type_id %v, want %v", kind, got, typeID)
		}
	}
}

// Events as they come: no details, no IP, no target, no leaf index yet,
// details that are not an object. None may fail or emit invalid JSON.
func TestSparseAndOddEvents(t *testing.T) {
	e := event("USER_LOGOUT", "")
	e.IPAddress, e.UserAgent, e.RequestID, e.Target, e.LeafIndex = "", "", "", nil, nil
	m := decode(t, e)
	if get(m, "unmapped", "details") == nil {
		t.Error("empty details are not {}")
	}
	if get(m, "user", "uid") != "u-1" {
		t.Errorf("logoff without a userId: user %v, want the actor", m["user"])
	}
	if _, ok := m["src_endpoint"]; !ok {
		t.Error("src_endpoint missing")
	}
	if get(m, "metadata", "sequence") != nil {
		t.Error("an event not yet projected claims a sequence")
	}
	e = event("USER_DELETED", `["not","an","object"]`)
	if get(decode(t, e), "user", "uid") != "u-2" {
		t.Error("a user event with odd details does not fall back to the target")
	}
	if _, err := Marshal(&domain.Event{}, product); err == nil {
		t.Error("an event without an id was mapped")
	}
	if _, err := Marshal(nil, product); err == nil {
		t.Error("a nil event was mapped")
	}
}

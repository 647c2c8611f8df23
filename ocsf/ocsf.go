// Package ocsf maps audit events to the Open Cybersecurity Schema Framework
// (OCSF 1.3), the schema SIEMs such as Amazon Security Lake, Splunk and
// Google SecOps ingest natively, so a log stream in OCSF needs no parser on
// the receiving side.
//
// Each event type maps to one of three classes: Account Change [3001] for
// what happens to a user account (created, deleted, password, MFA, roles,
// product access), Authentication [3002] for a session ending (USER_LOGOUT),
// and API Activity [6003] for every other change or read made through the
// platform, with activity_id from the type's verb (created, updated,
// deleted, viewed). Classes lists the table. Fields OCSF has no place for
// (the organization, source product, catalog type and details, the leaf
// index) are kept under unmapped.
package ocsf

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/auditlog/auditlog/domain"
)

// Version is the OCSF schema version the events claim in metadata.version.
const Version = "1.3.0"

// Category and class ids of OCSF 1.x used here.
const (
	CategoryIAM         = 3 // Identity & Access Management
	CategoryApplication = 6 // Application Activity

	ClassAccountChange  = 3001
	ClassAuthentication = 3002
	ClassAPIActivity    = 6003
)

// Activity ids of the three classes (OCSF 1.3). 99 is Other in every class.
const (
	ActivityOther = 99

	AccountCreate           = 1
	AccountEnable           = 2
	AccountPasswordChange   = 3
	AccountPasswordReset    = 4
	AccountDisable          = 5
	AccountDelete           = 6
	AccountAttachPolicy     = 7
	AccountDetachPolicy     = 8
	AccountMFAFactorDisable = 11

	AuthLogon  = 1
	AuthLogoff = 2

	APICreate = 1
	APIRead   = 2
	APIUpdate = 3
	APIDelete = 4
)

// Product is what metadata.product says produced the events.
type Product struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

// Class is where an event type lands in OCSF: its class and activity.
type Class struct {
	ClassUID   int
	ActivityID int
	Activity   string // activity_name
}

// accountTypes are the event types about a user account, with their
// Account Change activity.
var accountTypes = map[domain.EventType]Class{
	"USER_CREATED":                   {ClassAccountChange, AccountCreate, "Create"},
	"USER_ACTIVATED":                 {ClassAccountChange, AccountEnable, "Enable"},
	"USER_CHANGED_PASSWORD":          {ClassAccountChange, AccountPasswordChange, "Password Change"},
	"USER_FORGOTTEN_PASSWORD":        {ClassAccountChange, AccountPasswordReset, "Password Reset"},
	"USER_ACCOUNT_RESET":             {ClassAccountChange, AccountPasswordReset, "Password Reset"},
	"USER_DELETED":                   {ClassAccountChange, AccountDelete, "Delete"},
	"USER_MFA_RESET":                 {ClassAccountChange, AccountMFAFactorDisable, "MFA Factor Disable"},
	"USER_ROLE_SET":                  {ClassAccountChange, AccountAttachPolicy, "Attach Policy"},
	"USER_TO_ORG_PRODUCT_CREATED":    {ClassAccountChange, AccountAttachPolicy, "Attach Policy"},
	"USER_TO_ORG_PRODUCT_DELETED":    {ClassAccountChange, AccountDetachPolicy, "Detach Policy"},
	"USER_UPDATED":                   {ClassAccountChange, ActivityOther, "Other"},
	"USER_CHANGED_SECURITY_QUESTION": {ClassAccountChange, ActivityOther, "Other"},
	"USER_ACTIVATION_RESENT":         {ClassAccountChange, ActivityOther, "Other"},
	"USER_MOVED":                     {ClassAccountChange, ActivityOther, "Other"},
	"USER_CUSTOMER_MOVED":            {ClassAccountChange, ActivityOther, "Other"},
	"USER_LOGOUT":                    {ClassAuthentication, AuthLogoff, "Logoff"},
}

// apiVerbs give API Activity's activity from the end of an event type's
// name; the first match wins.
var apiVerbs = []struct {
	suffix string
	class  Class
}{
	{"_CREATED", Class{ClassAPIActivity, APICreate, "Create"}},
	{"_ADDED", Class{ClassAPIActivity, APICreate, "Create"}},
	{"_UPLOADED", Class{ClassAPIActivity, APICreate, "Create"}},
	{"_OPT_IN", Class{ClassAPIActivity, APICreate, "Create"}},
	{"_DELETED", Class{ClassAPIActivity, APIDelete, "Delete"}},
	{"_REMOVED", Class{ClassAPIActivity, APIDelete, "Delete"}},
	{"_OPT_OUT", Class{ClassAPIActivity, APIDelete, "Delete"}},
	{"_VIEWED", Class{ClassAPIActivity, APIRead, "Read"}},
	{"_EXPORTED", Class{ClassAPIActivity, APIRead, "Read"}},
	{"_NAVIGATION", Class{ClassAPIActivity, APIRead, "Read"}},
	{"_UPDATED", Class{ClassAPIActivity, APIUpdate, "Update"}},
	{"_ENABLED", Class{ClassAPIActivity, APIUpdate, "Update"}},
	{"_DISABLED", Class{ClassAPIActivity, APIUpdate, "Update"}},
	{"_MOVED", Class{ClassAPIActivity, APIUpdate, "Update"}},
	{"_MERGED", Class{ClassAPIActivity, APIUpdate, "Update"}},
	{"_SET", Class{ClassAPIActivity, APIUpdate, "Update"}},
}

// ClassOf is the OCSF class and activity of event type t. Types not in the
// table, including ones added to the catalog later, are API Activity: Other.
func ClassOf(t domain.EventType) Class {
	if c, ok := accountTypes[t]; ok {
		return c
	}
	for _, v := range apiVerbs {
		if strings.HasSuffix(string(t), v.suffix) {
			return v.class
		}
	}
	return Class{ClassAPIActivity, ActivityOther, "Other"}
}

// category is the OCSF category of a class.
func category(classUID int) (uid int, name string) {
	if classUID == ClassAPIActivity {
		return CategoryApplication, "Application Activity"
	}
	return CategoryIAM, "Identity & Access Management"
}

func className(classUID int) string {
	switch classUID {
	case ClassAccountChange:
		return "Account Change"
	case ClassAuthentication:
		return "Authentication"
	}
	return "API Activity"
}

// Event is an OCSF event of one of the three classes; fields a class does
// not have are left empty and omitted.
type Event struct {
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	// Time is when the event happened, in milliseconds since the epoch.
	Time        int64        `json:"time"`
	SeverityID  int          `json:"severity_id"`
	Severity    string       `json:"severity"`
	StatusID    int          `json:"status_id"`
	Status      string       `json:"status"`
	Message     string       `json:"message,omitempty"`
	Metadata    Metadata     `json:"metadata"`
	Actor       Actor        `json:"actor"`
	SrcEndpoint Endpoint     `json:"src_endpoint"`
	HTTPRequest *HTTPRequest `json:"http_request,omitempty"`
	API         *API         `json:"api,omitempty"`
	Resources   []Resource   `json:"resources,omitempty"`
	User        *User        `json:"user,omitempty"`
	Unmapped    Unmapped     `json:"unmapped"`
}

// Metadata is OCSF's metadata object. UID is the event's id, which a
// receiver de-duplicates on; Sequence is its leaf index in the
// organization's log, which an inclusion proof is asked for by.
type Metadata struct {
	Version        string  `json:"version"`
	Product        Product `json:"product"`
	UID            string  `json:"uid"`
	Sequence       *int64  `json:"sequence,omitempty"`
	LoggedTime     int64   `json:"logged_time"`
	CorrelationUID string  `json:"correlation_uid,omitempty"`
	TenantUID      string  `json:"tenant_uid,omitempty"`
}

// Actor is who did it.
type Actor struct {
	User User `json:"user"`
}

// User is an OCSF user: the actor, or the account an event acted on.
type User struct {
	UID       string `json:"uid,omitempty"`
	Name      string `json:"name,omitempty"`
	EmailAddr string `json:"email_addr,omitempty"`
	TypeID    int    `json:"type_id"`
	Type      string `json:"type"`
}

// Endpoint is where the request came from.
type Endpoint struct {
	IP string `json:"ip,omitempty"`
}

// HTTPRequest holds the caller's user agent.
type HTTPRequest struct {
	UserAgent string `json:"user_agent,omitempty"`
}

// API is the operation an API Activity event records.
type API struct {
	Operation string     `json:"operation"`
	Service   APIService `json:"service"`
	Request   *Request   `json:"request,omitempty"`
}

// APIService is the product that served the call.
type APIService struct {
	Name string `json:"name"`
}

// Request identifies the call.
type Request struct {
	UID string `json:"uid"`
}

// Resource is the thing an event acted on.
type Resource struct {
	UID  string `json:"uid"`
	Type string `json:"type,omitempty"`
	Name string `json:"name,omitempty"`
}

// Unmapped keeps what OCSF has no attribute for, under the service's own
// names, so nothing recorded is lost in translation.
type Unmapped struct {
	OrgID     string           `json:"org_id"`
	Source    domain.Source    `json:"source"`
	EventType domain.EventType `json:"event_type"`
	Category  domain.Category  `json:"category"`
	LeafIndex *int64           `json:"leaf_index"`
	Details   json.RawMessage  `json:"details"`
}

// userType is OCSF's user.type_id and type for an actor kind.
func userType(k domain.ActorKind) (int, string) {
	switch k {
	case domain.ActorUser:
		return 1, "User"
	case domain.ActorSystem:
		return 3, "System"
	case domain.ActorAPIKey:
		return 99, "API Key"
	}
	return 0, "Unknown"
}

// FromEvent maps e to OCSF. It fails only for an event without an id, which
// a receiver could not de-duplicate; an unknown actor kind maps to Unknown.
func FromEvent(e *domain.Event, p Product) (*Event, error) {
	if e == nil || e.ID == "" {
		return nil, fmt.Errorf("ocsf: an event without an id")
	}
	c := ClassOf(e.Type)
	catUID, catName := category(c.ClassUID)
	details := e.Details
	if len(details) == 0 {
		details = json.RawMessage("{}")
	}
	out := &Event{
		ClassUID: c.ClassUID, ClassName: className(c.ClassUID),
		CategoryUID: catUID, CategoryName: catName,
		ActivityID: c.ActivityID, ActivityName: c.Activity,
		TypeUID:    c.ClassUID*100 + c.ActivityID,
		TypeName:   className(c.ClassUID) + ": " + c.Activity,
		Time:       e.OccurredAt.UnixMilli(),
		SeverityID: 1, Severity: "Informational",
		StatusID: 1, Status: "Success",
		Message: e.Description(),
		Metadata: Metadata{
			Version: Version, Product: p, UID: e.ID, Sequence: e.LeafIndex,
			LoggedTime: e.RecordedAt.UnixMilli(), CorrelationUID: e.RequestID, TenantUID: e.OrgID,
		},
		SrcEndpoint: Endpoint{IP: e.IPAddress},
		Unmapped: Unmapped{
			OrgID: e.OrgID, Source: e.Source, EventType: e.Type, Category: e.Category(),
			LeafIndex: e.LeafIndex, Details: details,
		},
	}
	tid, tname := userType(e.Actor.Kind)
	out.Actor.User = User{UID: e.Actor.ID, Name: e.Actor.Name, EmailAddr: e.Actor.Email, TypeID: tid, Type: tname}
	if e.UserAgent != "" {
		out.HTTPRequest = &HTTPRequest{UserAgent: e.UserAgent}
	}
	if e.Type == domain.TypeAuditLogSettingsDenied {
		// Someone tried what they may not: worth a look.
		out.SeverityID, out.Severity = 3, "Medium"
		out.StatusID, out.Status = 2, "Failure"
	}
	if e.Target != nil {
		out.Resources = []Resource{{UID: e.Target.ID, Type: e.Target.Kind, Name: e.Target.Name}}
	}
	switch c.ClassUID {
	case ClassAPIActivity:
		out.API = &API{Operation: string(e.Type), Service: APIService{Name: string(e.Source)}}
		if e.RequestID != "" {
			out.API.Request = &Request{UID: e.RequestID}
		}
	case ClassAccountChange:
		out.User = subject(e)
	case ClassAuthentication:
		// The user whose session it was: the one acted on if the details
		// name one, else the actor.
		out.User = subject(e)
		if out.User.UID == "" {
			u := out.Actor.User
			out.User = &u
		}
	}
	return out, nil
}

// subject is the account an IAM event acted on: the catalog's userId,
// userEmail and userName details, or the target.
func subject(e *domain.Event) *User {
	var d struct {
		UserID    string `json:"userId"`
		UserEmail string `json:"userEmail"`
		UserName  string `json:"userName"`
	}
	_ = json.Unmarshal(e.Details, &d) // details that are not an object name nobody
	u := &User{UID: d.UserID, Name: d.UserName, EmailAddr: d.UserEmail, TypeID: 1, Type: "User"}
	if u.UID == "" && e.Target != nil {
		u.UID, u.Name = e.Target.ID, e.Target.Name
	}
	return u
}

// Marshal is FromEvent encoded as JSON.
func Marshal(e *domain.Event, p Product) ([]byte, error) {
	o, err := FromEvent(e, p)
	if err != nil {
		return nil, err
	}
	return json.Marshal(o)
}

package domain

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Settings is the audit log configuration of one organization, folded from
// its settings changes. The zero value is an organization that never opted in.
type Settings struct {
	OrgID   string
	Enabled bool
	Region  Region // fixed by the first opt-in; empty before it
	Version uint64 // sequence of the last change in the settings stream
	// Changes is the organization's own settings version: how many changes
	// it has made. Unlike Version it counts nobody else's changes.
	Changes   uint64
	UpdatedAt time.Time
	UpdatedBy *Actor
}

// SettingsChange is one opt-in or opt-out: the event of the settings aggregate.
type SettingsChange struct {
	OrgID  string    `json:"orgId"`
	Type   EventType `json:"type"` // AUDIT_LOG_OPT_IN or AUDIT_LOG_OPT_OUT
	Region Region    `json:"region"`
	Actor  Actor     `json:"actor"`
	At     time.Time `json:"at"`
	// Version is the organization's own settings version this change
	// creates (1 for its first change). Changes written before it existed
	// have none.
	Version uint64 `json:"version,omitempty"`
}

// Enable decides an opt-in. It returns ok=false when the organization is
// already enabled in that region: enabling twice records nothing.
func (s Settings) Enable(region Region, by Actor, at time.Time) (c SettingsChange, ok bool, err error) {
	if err := by.Validate(); err != nil {
		return c, false, err
	}
	if !region.Valid() {
		return c, false, BadInput("region", "unknown region %q", region)
	}
	if s.Region != "" && s.Region != region {
		return c, false, Errorf(CodeRegionImmutable, "region",
			"audit data of this organization is stored in %s; the region cannot change", s.Region)
	}
	if s.Enabled {
		return c, false, nil
	}
	return SettingsChange{OrgID: s.OrgID, Type: TypeAuditLogOptIn, Region: region, Actor: by, At: at, Version: s.Changes + 1}, true, nil
}

// Disable decides an opt-out. It returns ok=false when collection is already
// off, and an error when by cannot be recorded as the change's actor.
func (s Settings) Disable(by Actor, at time.Time) (c SettingsChange, ok bool, err error) {
	if err := by.Validate(); err != nil {
		return c, false, err
	}
	if !s.Enabled {
		return c, false, nil
	}
	return SettingsChange{OrgID: s.OrgID, Type: TypeAuditLogOptOut, Region: s.Region, Actor: by, At: at, Version: s.Changes + 1}, true, nil
}

// Apply folds change c, stored at stream sequence seq, into s.
func (s Settings) Apply(c SettingsChange, seq uint64) Settings {
	s.OrgID = c.OrgID
	s.Enabled = c.Type == TypeAuditLogOptIn
	if s.Region == "" {
		s.Region = c.Region
	}
	s.Version = seq
	if c.Version > 0 {
		s.Changes = c.Version
	} else {
		s.Changes++ // a change from before versions; the caller may know better
	}
	s.UpdatedAt = c.At
	by := c.Actor
	s.UpdatedBy = &by
	return s
}

// settingsEventNamespace derives the ids of opt-in and opt-out audit events.
var settingsEventNamespace = uuid.MustParse("6f1c3c52-3a43-4d5e-9a6b-8d1f0b2c7e10")

// SettingsEventID is the id of the audit event that records version of
// org's settings. It is derived from the organization and its own version,
// so re-publishing it is a duplicate in that organization only, and nothing
// another organization does can predict or take it.
func SettingsEventID(org string, version uint64) string {
	return uuid.NewSHA1(settingsEventNamespace, []byte("auditctl:"+org+":"+strconv.FormatUint(version, 10))).String()
}

// ReservedEventID reports whether id is a name-based (version 5) UUID: the
// audit log derives the ids of its own events that way, so producers may
// not use them, lest one take the id of an opt-out before it happens.
func ReservedEventID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && len(id) == 36 && u.Version() == 5
}

// AuditEvent is the event c leaves in the organization's own audit log. Its id
// derives from the settings version so re-publishing it is idempotent.
func (c SettingsChange) AuditEvent(id string) Event {
	details := `{"region":"` + string(c.Region) + `"}`
	return Event{
		ID: id, OrgID: c.OrgID, Source: SourcePlatform, Type: c.Type,
		OccurredAt: c.At, RecordedAt: c.At, Actor: c.Actor,
		Target:  &Target{Kind: "AUDIT_LOG_SETTINGS", ID: c.OrgID},
		Details: []byte(details),
	}
}

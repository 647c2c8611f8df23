package domain

import "time"

// Settings is the audit log configuration of one organization, folded from
// its settings changes. The zero value is an organization that never opted in.
type Settings struct {
	OrgID     string
	Enabled   bool
	Region    Region // fixed by the first opt-in; empty before it
	Version   uint64 // sequence of the last change in the settings stream
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
}

// Enable decides an opt-in. It returns ok=false when the organization is
// already enabled in that region: enabling twice records nothing.
func (s Settings) Enable(region Region, by Actor, at time.Time) (c SettingsChange, ok bool, err error) {
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
	return SettingsChange{OrgID: s.OrgID, Type: TypeAuditLogOptIn, Region: region, Actor: by, At: at}, true, nil
}

// Disable decides an opt-out. It returns ok=false when collection is already off.
func (s Settings) Disable(by Actor, at time.Time) (c SettingsChange, ok bool) {
	if !s.Enabled {
		return c, false
	}
	return SettingsChange{OrgID: s.OrgID, Type: TypeAuditLogOptOut, Region: s.Region, Actor: by, At: at}, true
}

// Apply folds change c, stored at stream sequence seq, into s.
func (s Settings) Apply(c SettingsChange, seq uint64) Settings {
	s.OrgID = c.OrgID
	s.Enabled = c.Type == TypeAuditLogOptIn
	if s.Region == "" {
		s.Region = c.Region
	}
	s.Version = seq
	s.UpdatedAt = c.At
	by := c.Actor
	s.UpdatedBy = &by
	return s
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

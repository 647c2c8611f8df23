package domain

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Region is where an organization's audit data is stored. It never changes
// after the first opt-in.
type Region string

// Regions an organization may choose.
const (
	RegionUS Region = "US"
	RegionEU Region = "EU"
	RegionCA Region = "CA"
	RegionAU Region = "AU"
	RegionAP Region = "AP"
)

// Regions lists every region, in a stable order.
var Regions = []Region{RegionUS, RegionEU, RegionCA, RegionAU, RegionAP}

// Valid reports whether r is a known region.
func (r Region) Valid() bool { return slices.Contains(Regions, r) }

// Lower is the region as it appears in subjects and schema names.
func (r Region) Lower() string { return strings.ToLower(string(r)) }

// Source is the product an event happened in.
type Source string

// Products that record audit events.
const (
	SourcePlatform      Source = "PLATFORM"
	SourceInsightIDR    Source = "INSIGHT_IDR"
	SourceInsightAppSec Source = "INSIGHT_APPSEC"
	SourceInsightVM     Source = "INSIGHT_VM"
)

// Sources lists every product, in a stable order.
var Sources = []Source{SourcePlatform, SourceInsightIDR, SourceInsightAppSec, SourceInsightVM}

// Valid reports whether s is a known source.
func (s Source) Valid() bool { return slices.Contains(Sources, s) }

// ActorKind tells a person from a key or the platform itself.
type ActorKind string

// Kinds of actor.
const (
	ActorUser   ActorKind = "USER"
	ActorAPIKey ActorKind = "API_KEY"
	ActorSystem ActorKind = "SYSTEM"
)

// Valid reports whether k is a known actor kind.
func (k ActorKind) Valid() bool {
	return k == ActorUser || k == ActorAPIKey || k == ActorSystem
}

// Actor is who did it. Name and email are captured when the event is recorded
// because users are renamed and deleted later.
type Actor struct {
	Kind  ActorKind `json:"kind"`
	ID    string    `json:"id"`
	Name  string    `json:"name,omitempty"`
	Email string    `json:"email,omitempty"`
}

// Target is the resource an event acted on.
type Target struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Event is one recorded audit event, as appended to the log.
type Event struct {
	ID         string          `json:"id"`
	OrgID      string          `json:"orgId"`
	Source     Source          `json:"source"`
	Type       EventType       `json:"type"`
	OccurredAt time.Time       `json:"occurredAt"`
	RecordedAt time.Time       `json:"recordedAt"`
	Actor      Actor           `json:"actor"`
	Target     *Target         `json:"target,omitempty"`
	IPAddress  string          `json:"ipAddress,omitempty"`
	UserAgent  string          `json:"userAgent,omitempty"`
	RequestID  string          `json:"requestId,omitempty"`
	Details    json.RawMessage `json:"details"`
	// Seq is the event's position in its region's stream, known once it is
	// stored there; it is where a live subscription resumes.
	Seq uint64 `json:"-"`
	// Record is the event's leaf in its organization's Merkle tree: the
	// message data exactly as the stream holds it.
	Record []byte `json:"-"`
	// LeafIndex is the event's leaf index in that tree, nil until the event
	// is projected.
	LeafIndex *int64 `json:"-"`
}

// Category is the event's category from the catalog.
func (e *Event) Category() Category { return e.Type.Category() }

// Description is the event type's human description from the catalog.
func (e *Event) Description() string { return e.Type.Description() }

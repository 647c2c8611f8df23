package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/logstream"
	"github.com/auditlog/auditlog/logstream/streamstore"
	"github.com/auditlog/auditlog/ocsf"
	"github.com/auditlog/auditlog/query"
	"github.com/auditlog/auditlog/secretbox"
)

// SettingsReader reads an organization's audit log settings: a stream
// delivers from the org's region, so the org must have opted in.
type SettingsReader interface {
	Get(ctx context.Context, org string) (domain.Settings, error)
}

// StreamStart tells when a region's stream's oldest event was stored, to
// refuse a start time retention no longer holds events of.
type StreamStart func(ctx context.Context, r domain.Region) (time.Time, error)

// Service is what the API asks of log streams. Box nil makes every call
// UNAVAILABLE: without an encryption key no secret can be stored.
type Service struct {
	Store    *streamstore.Store
	Box      *secretbox.Box
	Policy   *egress.Policy
	Settings SettingsReader
	Own      OwnRecorder
	Senders  SenderFactory
	// Options are the base of a tested sender's options, as Engine's.
	Options logstream.Options
	Product ocsf.Product
	// First is the region stream's oldest event time; nil checks nothing.
	First StreamStart
	// Nudge, if set, is called after a change so deliverers start or stop
	// at once rather than at the engine's next tick.
	Nudge func(ctx context.Context)
	// Unavailable explains why Box is nil.
	Unavailable string
	Now         func() time.Time
}

// Input is a stream as an admin creates or changes it. On update, nil
// fields stay as they are.
type Input struct {
	Name        *string
	Destination *Destination
	Filter      *streamstore.Filter
	StartAt     *time.Time
	Enabled     *bool
}

// View is a stream as the API shows it: its destination with secrets
// [redacted], and whether secrets are set.
type View struct {
	*streamstore.Stream
	Destination Destination
	SecretSet   bool
}

func (sv *Service) available() error {
	if sv.Box == nil {
		msg := sv.Unavailable
		if msg == "" {
			msg = "log streams need AUDITD_ENCRYPTION_KEY to store destination secrets, and it is not set"
		}
		return domain.Unavailable(msg, nil)
	}
	return nil
}

func (sv *Service) now() time.Time {
	if sv.Now != nil {
		return sv.Now().UTC()
	}
	return time.Now().UTC()
}

func view(s *streamstore.Stream) (*View, error) {
	d, err := Redacted(s.Kind, s.Config)
	if err != nil {
		return nil, err
	}
	return &View{Stream: s, Destination: d, SecretSet: len(s.Sealed) > 0}, nil
}

func views(ss []*streamstore.Stream) ([]*View, error) {
	out := make([]*View, 0, len(ss))
	for _, s := range ss {
		v, err := view(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// MaxNameLen bounds a stream's name.
const MaxNameLen = 100

func validName(n string) error {
	switch {
	case strings.TrimSpace(n) == "":
		return domain.BadInput("name", "a name is required")
	case len(n) > MaxNameLen:
		return domain.BadInput("name", "at most %d characters", MaxNameLen)
	case strings.ContainsFunc(n, unicode.IsControl):
		return domain.BadInput("name", "no control characters")
	}
	return nil
}

func validFilter(f *streamstore.Filter) error {
	if f == nil {
		return nil
	}
	df := f.Domain()
	for _, t := range df.Types {
		if !t.Valid() {
			return domain.BadInput("filter.types", "unknown event type %q", t)
		}
	}
	if err := query.ValidateFilter(df); err != nil {
		return err
	}
	return nil
}

// List returns org's streams.
func (sv *Service) List(ctx context.Context, org string) ([]*View, error) {
	if err := sv.available(); err != nil {
		return nil, err
	}
	ss, err := sv.Store.List(ctx, org)
	if err != nil {
		return nil, err
	}
	return views(ss)
}

// Create makes a stream of p's org delivering from in.StartAt (default
// now), records AUDIT_LOG_STREAM_CREATED, and returns it.
func (sv *Service) Create(ctx context.Context, p *domain.Principal, in Input) (*View, error) {
	if err := sv.available(); err != nil {
		return nil, err
	}
	if in.Name == nil || in.Destination == nil {
		return nil, domain.BadInput("", "name and destination are required")
	}
	if err := validName(*in.Name); err != nil {
		return nil, err
	}
	dest := in.Destination.withKind()
	if err := dest.Validate(sv.Policy); err != nil {
		return nil, err
	}
	if err := validFilter(in.Filter); err != nil {
		return nil, err
	}
	st, err := sv.Settings.Get(ctx, p.OrgID)
	if err != nil {
		return nil, err
	}
	if !st.Enabled || st.Region == "" {
		return nil, domain.Errorf(domain.CodeAuditLogDisabled, "", "turn the audit log on (enableAuditLog) before creating a log stream")
	}
	now := sv.now()
	start := now
	if in.StartAt != nil {
		if start, err = sv.checkStart(ctx, st.Region, *in.StartAt, now); err != nil {
			return nil, err
		}
	}
	s := &streamstore.Stream{
		ID: ulid.Make().String(), OrgID: p.OrgID, Region: st.Region, Name: *in.Name, Kind: string(dest.Kind),
		StartAt: start, Status: streamstore.Active, CreatedAt: now,
	}
	if in.Filter != nil {
		s.Filter = *in.Filter
	}
	if s.Config, err = dest.config(); err != nil {
		return nil, err
	}
	if s.Sealed, err = dest.seal(sv.Box, s.OrgID, s.ID); err != nil {
		return nil, err
	}
	if err := sv.Store.Create(ctx, s); err != nil {
		return nil, err
	}
	if err := recordChange(ctx, sv.Own, domain.TypeAuditLogStreamCreated, s, p.Actor(), now, nil); err != nil {
		// Not recorded, so not created: the log must show where it goes.
		_, _ = sv.Store.Delete(context.WithoutCancel(ctx), s.OrgID, s.ID)
		return nil, err
	}
	sv.nudge(ctx)
	return view(s)
}

// checkStart refuses a start in the future or before the region's stream's
// oldest event.
func (sv *Service) checkStart(ctx context.Context, r domain.Region, t, now time.Time) (time.Time, error) {
	t = t.UTC()
	if t.After(now) {
		return t, domain.BadInput("startAt", "the start is in the future")
	}
	if sv.First != nil {
		first, err := sv.First(ctx, r)
		if err != nil {
			return t, err
		}
		if !first.IsZero() && t.Before(first) {
			return t, domain.BadInput("startAt", "the region keeps events from %s on; start there or later", first.UTC().Format(time.RFC3339))
		}
	}
	return t, nil
}

// Update changes org's stream id and records AUDIT_LOG_STREAM_UPDATED with
// the names of what changed. A new destination replaces the secrets too;
// its secrets may be left empty to keep the stored ones if the kind stays.
func (sv *Service) Update(ctx context.Context, p *domain.Principal, id string, in Input) (*View, error) {
	if err := sv.available(); err != nil {
		return nil, err
	}
	cur, err := sv.Store.Get(ctx, p.OrgID, id)
	if err != nil {
		return nil, err
	}
	var c streamstore.Change
	var changes []string
	if in.Name != nil {
		if err := validName(*in.Name); err != nil {
			return nil, err
		}
		c.Name, changes = in.Name, append(changes, "name")
	}
	if in.StartAt != nil {
		return nil, domain.BadInput("startAt", "a stream's start cannot change; create another stream")
	}
	if in.Destination != nil {
		dest := in.Destination.withKind()
		if dest.Kind == logstream.Kind(cur.Kind) && len(dest.secrets()) > 0 && allEmpty(dest.secrets()) {
			// Keep the stored secrets: the admin changed only the rest.
			old, err := open(sv.Box, cur.OrgID, cur.ID, cur.Kind, cur.Config, cur.Sealed)
			if err != nil {
				return nil, domain.BadInput("destination", "the stored secrets do not open; give them again")
			}
			switch {
			case dest.Webhook != nil && old.Webhook != nil:
				dest.Webhook.Secrets = old.Webhook.Secrets
			case dest.Splunk != nil && old.Splunk != nil:
				dest.Splunk.Token = old.Splunk.Token
			}
		} else {
			changes = append(changes, "secrets")
		}
		if err := dest.Validate(sv.Policy); err != nil {
			return nil, err
		}
		if c.Config, err = dest.config(); err != nil {
			return nil, err
		}
		if c.Sealed, err = dest.seal(sv.Box, cur.OrgID, cur.ID); err != nil {
			return nil, err
		}
		if c.Sealed == nil {
			c.Sealed = []byte{} // syslog: no secrets
		}
		changes = append(changes, "destination")
	}
	if in.Filter != nil {
		if err := validFilter(in.Filter); err != nil {
			return nil, err
		}
		c.Filter, changes = in.Filter, append(changes, "filter")
	}
	if in.Enabled != nil {
		c.Enabled, changes = in.Enabled, append(changes, "enabled")
	}
	if len(changes) == 0 {
		return nil, domain.BadInput("", "nothing to change")
	}
	s, err := sv.Store.Update(ctx, p.OrgID, id, c, sv.now())
	if err != nil {
		return nil, err
	}
	slices.Sort(changes)
	if err := recordChange(ctx, sv.Own, domain.TypeAuditLogStreamUpdated, s, p.Actor(), sv.now(), map[string]any{"changedFields": changes}); err != nil {
		return nil, err
	}
	sv.nudge(ctx)
	return view(s)
}

func allEmpty(ss []string) bool {
	for _, s := range ss {
		if s != "" {
			return false
		}
	}
	return true
}

// Pause stops org's stream id where it is, as an admin.
func (sv *Service) Pause(ctx context.Context, p *domain.Principal, id string) (*View, error) {
	if err := sv.available(); err != nil {
		return nil, err
	}
	s, changed, err := sv.Store.Pause(ctx, p.OrgID, id, streamstore.PausedByAdmin, sv.now())
	if err != nil {
		return nil, err
	}
	if changed {
		if err := recordChange(ctx, sv.Own, domain.TypeAuditLogStreamPaused, s, p.Actor(), sv.now(), map[string]any{"pausedBy": streamstore.PausedByAdmin}); err != nil {
			return nil, err
		}
		sv.nudge(ctx)
	}
	return view(s)
}

// Resume makes org's paused stream id deliver again from where it stopped.
func (sv *Service) Resume(ctx context.Context, p *domain.Principal, id string) (*View, error) {
	if err := sv.available(); err != nil {
		return nil, err
	}
	s, changed, err := sv.Store.Resume(ctx, p.OrgID, id, sv.now())
	if err != nil {
		return nil, err
	}
	if changed {
		if err := recordChange(ctx, sv.Own, domain.TypeAuditLogStreamResumed, s, p.Actor(), sv.now(), nil); err != nil {
			return nil, err
		}
		sv.nudge(ctx)
	}
	return view(s)
}

// Delete removes org's stream id.
func (sv *Service) Delete(ctx context.Context, p *domain.Principal, id string) (*View, error) {
	if err := sv.available(); err != nil {
		return nil, err
	}
	s, err := sv.Store.Delete(ctx, p.OrgID, id)
	if err != nil {
		return nil, err
	}
	if err := recordChange(ctx, sv.Own, domain.TypeAuditLogStreamDeleted, s, p.Actor(), sv.now(), nil); err != nil {
		return nil, err
	}
	sv.nudge(ctx)
	return view(s)
}

// Test sends one test event to org's stream id and returns what the
// destination answered; a failure to deliver is an answer too (err is
// then the delivery's, for the admin, and TestResult what came back).
func (sv *Service) Test(ctx context.Context, p *domain.Principal, id string) (logstream.TestResult, error) {
	if err := sv.available(); err != nil {
		return logstream.TestResult{}, err
	}
	s, err := sv.Store.Get(ctx, p.OrgID, id)
	if err != nil {
		return logstream.TestResult{}, err
	}
	dest, err := open(sv.Box, s.OrgID, s.ID, s.Kind, s.Config, s.Sealed)
	if err != nil {
		return logstream.TestResult{}, domain.Errorf(domain.CodeConflict, "id", "%s", safeMessage(err))
	}
	opts := sv.Options
	opts.OrgID, opts.StreamID, opts.Policy, opts.Product = s.OrgID, s.ID, sv.Policy, sv.Product
	sender, err := sv.Senders(dest, opts)
	if err != nil {
		return logstream.TestResult{}, err
	}
	return sender.Test(ctx)
}

func (sv *Service) nudge(ctx context.Context) {
	if sv.Nudge != nil {
		sv.Nudge(ctx)
	}
}

// systemActor is auditd acting on its own, as when it pauses a stream.
var systemActor = domain.Actor{Kind: domain.ActorSystem, ID: "auditlog", Name: "Audit Log"}

// recordChange records typ about s in its org's log. Details name the
// stream and where it points, never a secret.
func recordChange(ctx context.Context, own OwnRecorder, typ domain.EventType, s *streamstore.Stream, actor domain.Actor, now time.Time, more map[string]any) error {
	if own == nil {
		return nil
	}
	details := map[string]any{"streamId": s.ID, "streamName": s.Name, "streamKind": s.Kind}
	if d, err := Redacted(s.Kind, s.Config); err == nil {
		if where := d.where(); where != "" {
			details["destination"] = where
		}
	}
	for k, v := range more {
		details[k] = v
	}
	raw, err := json.Marshal(details)
	if err != nil {
		return err
	}
	_, err = own.RecordOwn(ctx, &domain.Event{
		ID: ulid.Make().String(), OrgID: s.OrgID, Source: domain.SourcePlatform, Type: typ,
		OccurredAt: now, Actor: actor, Target: &domain.Target{Kind: "AUDIT_LOG_STREAM", ID: s.ID, Name: s.Name},
		Details: raw,
	})
	if err != nil {
		return fmt.Errorf("record %s: %w", typ, err)
	}
	return nil
}

// where is the destination's address for the log: a URL without its
// query (which may carry a token), or host:port.
func (d Destination) where() string {
	var raw string
	switch {
	case d.Webhook != nil:
		raw = d.Webhook.URL
	case d.Splunk != nil:
		raw = d.Splunk.URL
	case d.Syslog != nil:
		return d.Syslog.Address()
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

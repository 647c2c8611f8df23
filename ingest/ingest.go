// Package ingest records audit events: it validates each event, gates it on
// its organization's settings, and appends it to the organization's regional
// stream, answering per event.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/eventjson"
	"github.com/auditlog/auditlog/natsx"
)

// MaxBatch is the most events one call may record.
const MaxBatch = 1000

// Status is the outcome of recording one event.
type Status string

// Outcomes of recording an event.
const (
	Recorded        Status = "RECORDED"
	Duplicate       Status = "DUPLICATE"
	DroppedDisabled Status = "DROPPED_DISABLED"
	Rejected        Status = "REJECTED"
)

// Result answers for one event of a batch, in input order.
type Result struct {
	ID     string
	Status Status
	Code   domain.Code // why it was rejected
	// Field is the input field a rejection concerns, if any; Reason names
	// it too.
	Field  string
	Reason string
}

// SettingsReader tells whether and where an organization collects events.
type SettingsReader interface {
	Get(ctx context.Context, org string) (domain.Settings, error)
}

// Tally counts what became of recorded events, for metrics.
type Tally interface {
	// Count adds n events of one batch that ended with status.
	Count(status Status, n int)
	// Refused adds n events of a call refused as overloaded, for reason
	// org_share (the organization's appends filled its share of the
	// publish window) or window (the whole window stayed full).
	Refused(reason string, n int)
}

// Recorder records batches of events.
type Recorder struct {
	js       jetstream.JetStream
	settings SettingsReader
	now      func() time.Time
	tally    Tally
	// MaxFutureSkew is how far in the future an event's occurredAt may
	// lie; zero means domain.MaxClockSkew.
	MaxFutureSkew time.Duration
	// PublishWait bounds how long one call waits for room in the window
	// of appends awaiting JetStream's acknowledgement (the connection's
	// async publish limit) before it is refused as overloaded; zero means
	// DefaultPublishWait. Waiting slows producers to the rate the stream
	// takes; refusing past the bound keeps a call from hanging.
	PublishWait time.Duration
	// RetryAfter is what an overloaded refusal tells the client to wait;
	// zero means DefaultRetryAfter.
	RetryAfter time.Duration

	shares *shares
}

// Defaults of Recorder's backpressure: a call waits up to 2 s for the
// publish window (a full window of 16,384 appends drains in about a second
// at the rates the stream takes on small machines), then is refused with a
// retry hint of 1 s.
const (
	DefaultPublishWait = 2 * time.Second
	DefaultRetryAfter  = time.Second
)

// NewRecorder returns a Recorder appending through js and counting outcomes
// in tally, which may be nil.
func NewRecorder(js jetstream.JetStream, settings SettingsReader, now func() time.Time, tally Tally) *Recorder {
	return &Recorder{js: js, settings: settings, now: now, tally: tally, shares: newShares(DefaultOrgShare)}
}

// SetOrgShare sets how many of one organization's appends may await
// acknowledgement at once (default DefaultOrgShare).
func (r *Recorder) SetOrgShare(n int) { r.shares = newShares(n) }

// Record validates and appends events on behalf of p. A bad event rejects
// only itself; the error return is for failures of the whole call (too large
// a batch, NATS or settings unavailable), after which nothing is promised
// about the events not yet answered and the caller should retry with the
// same ids.
func (r *Recorder) Record(ctx context.Context, p *domain.Principal, events []domain.Event) ([]Result, error) {
	return r.recordTallied(ctx, p, events, false)
}

// RecordJSON is Record for events given as JSON texts, as NATS producers
// send them: each is read once by domain.DecodeEvent, so a key given twice,
// a NUL or a lone surrogate anywhere in it, or a field spelled otherwise,
// rejects that event alone, naming the field, before anything is validated
// or appended.
func (r *Recorder) RecordJSON(ctx context.Context, p *domain.Principal, raws []json.RawMessage) ([]Result, error) {
	if len(raws) > MaxBatch {
		return nil, domain.BadInput("events", "at most %d events per call, got %d", MaxBatch, len(raws))
	}
	results := make([]Result, len(raws))
	events := make([]domain.Event, 0, len(raws))
	at := make([]int, 0, len(raws))
	for i, raw := range raws {
		e, err := eventjson.DecodeEvent(raw) // domain.DecodeEvent's answer, without reflection
		if err != nil {
			results[i].ID = echoID(raw)
			results[i].reject(err)
			continue
		}
		events = append(events, e)
		at = append(at, i)
	}
	decoded, err := r.recordTallied(ctx, p, events, false)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		results[i] = decoded[j]
	}
	if refused := len(raws) - len(at); refused > 0 && r.tally != nil {
		r.tally.Count(Rejected, refused)
	}
	return results, nil
}

// echoID is the id a refused event text gives, if it reads as one, so the
// producer can tell which event was refused.
func echoID(raw []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &e) != nil || !domain.ValidEventID(e.ID) {
		return ""
	}
	return e.ID
}

// recordTallied is Record; own says the events are the audit log's own,
// whose ids may be name-based UUIDs.
func (r *Recorder) recordTallied(ctx context.Context, p *domain.Principal, events []domain.Event, own bool) ([]Result, error) {
	results, err := r.record(ctx, p, events, own)
	if err != nil && domain.CodeOf(err) == domain.CodeInternal {
		// The stream or the settings could not be reached: nothing the
		// caller sent was wrong, and ids make sending it again safe.
		err = domain.Unavailable("the audit log could not store this batch just now; send the same events again (their ids make that safe)", err)
	}
	if err == nil && r.tally != nil {
		counts := map[Status]int{}
		for _, res := range results {
			counts[res.Status]++
		}
		for status, n := range counts {
			r.tally.Count(status, n)
		}
	}
	return results, err
}

func (r *Recorder) record(ctx context.Context, p *domain.Principal, events []domain.Event, own bool) ([]Result, error) {
	if len(events) > MaxBatch {
		return nil, domain.BadInput("events", "at most %d events per call, got %d", MaxBatch, len(events))
	}
	now := r.now().UTC()
	results := make([]Result, len(events))
	settings := map[string]domain.Settings{}
	var pending []int
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			e.ID = ulid.Make().String()
		}
		e.RecordedAt = now
		e.OccurredAt = e.OccurredAt.UTC()
		results[i].ID = e.ID
		if err := p.CanRecord(e.OrgID, e.Source); err != nil {
			results[i].reject(err)
			continue
		}
		if !own && e.Type.System() {
			results[i].reject(domain.Errorf(domain.CodeForbidden, "type", "%s events are recorded by the audit log itself, never by a service", e.Type))
			continue
		}
		maxFuture := r.MaxFutureSkew
		if maxFuture <= 0 {
			maxFuture = domain.MaxClockSkew
		}
		if err := e.ValidateWithin(now, maxFuture); err != nil {
			results[i].reject(err)
			continue
		}
		if !own && domain.ReservedEventID(e.ID) {
			results[i].reject(domain.BadInput("id", "version-5 (name-based) UUIDs are reserved for events the audit log derives itself; use a ULID or a random UUID"))
			continue
		}
		s, ok := settings[e.OrgID]
		if !ok {
			var err error
			if s, err = r.settings.Get(ctx, e.OrgID); err != nil {
				return nil, err
			}
			settings[e.OrgID] = s
		}
		if !s.Enabled {
			results[i].Status = DroppedDisabled
			results[i].Reason = "audit logging is disabled for org " + e.OrgID + "; the event was not stored"
			continue
		}
		pending = append(pending, i)
	}
	if len(pending) == 0 {
		return results, nil
	}

	wait, retry := r.PublishWait, r.RetryAfter
	if wait <= 0 {
		wait = DefaultPublishWait
	}
	if retry <= 0 {
		retry = DefaultRetryAfter
	}
	deadline := time.Now().Add(wait)
	// The whole call shares one bound on waiting: first for its
	// organizations' shares of the window, then for the window.
	counts := map[string]int{}
	for _, i := range pending {
		counts[events[i].OrgID]++
	}
	release, err := r.shares.take(ctx, counts, deadline)
	if errors.Is(err, errShareFull) {
		r.refused("org_share", len(pending))
		return nil, domain.Overloaded(fmt.Sprintf("this organization's events fill its share of the audit log's publish window (%d awaiting storage); "+
			"other organizations are not held back. Send the same events again after retryAfter seconds (their ids make that safe)", r.shares.limit), retry, err)
	}
	if err != nil {
		return nil, err
	}
	// The share counts appends in flight, not calls: one that returns
	// early (its client left, an append failed, the window filled) gives
	// it back only once JetStream has settled what it appended.
	futures := make([]jetstream.PubAckFuture, 0, len(pending))
	waited := 0 // futures whose outcome this call has taken
	defer func() { settle(futures[waited:], release) }()
	for _, i := range pending {
		e := &events[i]
		region := settings[e.OrgID].Region
		f, err := r.publishAsync(e, region, max(time.Until(deadline), time.Millisecond))
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			r.refused("window", len(pending))
			return nil, domain.Overloaded(fmt.Sprintf("the audit log is busy: no room to append within %s; send the same events again after retryAfter seconds (their ids make that safe)", wait), retry, err)
		}
		if err != nil {
			return nil, err
		}
		futures = append(futures, f)
	}
	for j, i := range pending {
		select {
		case ack := <-futures[j].Ok():
			waited++
			results[i].Status = Recorded
			if ack.Duplicate {
				results[i].Status = Duplicate
			}
		case err := <-futures[j].Err():
			waited++
			return nil, fmt.Errorf("append event %s: %w", events[i].ID, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return results, nil
}

func (r *Recorder) refused(reason string, n int) {
	if r.tally != nil {
		r.tally.Refused(reason, n)
	}
}

// MsgID is the JetStream message id of event id of org: identity is
// (org, id), so the same id in two organizations is two events, and a
// duplicate tells an organization only about its own ids.
func MsgID(org, id string) string { return org + ":" + id }

// message is e as the append to region's stream: its org and id make the
// message id, so JetStream de-duplicates re-sends within the organization,
// and the stream is named so a subject mapped elsewhere fails instead of
// landing outside the region.
func message(region domain.Region, e *domain.Event) (*nats.Msg, error) {
	data, err := Encode(e)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(natsx.AuditSubject(region, e))
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, MsgID(e.OrgID, e.ID))
	m.Header.Set(jetstream.ExpectedStreamHeader, natsx.AuditStream(region))
	return m, nil
}

// Encode is e as the stream stores it, the record every projector reads:
// one encoding, so what was validated is what is stored.
func Encode(e *domain.Event) ([]byte, error) {
	data, err := eventjson.Marshal(e) // json.Marshal's bytes, without reflection
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return data, nil
}

// publishAsync appends e to region's stream without waiting for the
// acknowledgement, waiting at most stall for room in the window.
func (r *Recorder) publishAsync(e *domain.Event, region domain.Region, stall time.Duration) (jetstream.PubAckFuture, error) {
	m, err := message(region, e)
	if err != nil {
		return nil, err
	}
	f, err := r.js.PublishMsgAsync(m, jetstream.WithStallWait(stall))
	if err != nil {
		return nil, fmt.Errorf("append event %s: %w", e.ID, err)
	}
	return f, nil
}

// Append appends one already validated event to region's stream, bypassing
// the settings gate. The settings projection uses it for the opt-in and
// opt-out events, which must land even when collection is off.
func (r *Recorder) Append(ctx context.Context, region domain.Region, e *domain.Event) error {
	m, err := message(region, e)
	if err != nil {
		return err
	}
	if _, err := r.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("append event %s: %w", e.ID, err)
	}
	return nil
}

func (res *Result) reject(err error) {
	res.Status = Rejected
	res.Code = domain.CodeOf(err)
	res.Reason = err.Error()
	var de *domain.Error
	if !errors.As(err, &de) {
		res.Code, res.Reason = domain.CodeInternal, "internal error"
		return
	}
	res.Field = de.Field
}

// RecordOwn records an event the audit log emits about itself through
// Record, as a principal allowed exactly that event's org and source: the
// same validation and settings gate as any event, so nothing is stored for
// an org that opted out. A repeated id is a duplicate, which is how callers
// rate-limit.
func (r *Recorder) RecordOwn(ctx context.Context, e *domain.Event) (Status, error) {
	self := &domain.Principal{Subject: "auditd", Kind: domain.PrincipalService,
		Sources: []domain.Source{e.Source}, Orgs: []string{e.OrgID}}
	results, err := r.recordTallied(ctx, self, []domain.Event{*e}, true)
	if err != nil {
		return "", err
	}
	if res := results[0]; res.Status == Rejected {
		return Rejected, errors.New(res.Reason)
	}
	return results[0].Status, nil
}

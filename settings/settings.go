// Package settings is the command side of the audit log settings aggregate:
// it folds an organization's settings from stream AUDITCTL and appends
// opt-ins and opt-outs with optimistic concurrency.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
)

// maxAttempts bounds retries when another writer changed the settings
// between our read and our append.
const maxAttempts = 5

// Service reads and changes settings. The stream is the source of truth, so
// reads through Service see every committed change at once.
type Service struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	now    func() time.Time
}

// New returns a Service over js's control stream; now stamps changes.
func New(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*Service, error) {
	stream, err := js.Stream(ctx, natsx.ControlStream)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return &Service{js: js, stream: stream, now: now}, nil
}

// Get folds org's settings. Every change carries the region, so the last
// change alone determines the state.
func (s *Service) Get(ctx context.Context, org string) (domain.Settings, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, natsx.ControlSubject(org))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return domain.Settings{OrgID: org}, nil
	}
	if err != nil {
		return domain.Settings{}, fmt.Errorf("load settings of %s: %w", org, err)
	}
	var c domain.SettingsChange
	if err := json.Unmarshal(msg.Data, &c); err != nil {
		return domain.Settings{}, fmt.Errorf("decode settings of %s at %d: %w", org, msg.Sequence, err)
	}
	st := domain.Settings{OrgID: org}.Apply(c, msg.Sequence)
	if c.Version == 0 {
		// Written before changes carried the org's own version: the count
		// of the org's changes is that version (the stream denies deletes).
		info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(natsx.ControlSubject(org)))
		if err != nil {
			return domain.Settings{}, fmt.Errorf("count settings changes of %s: %w", org, err)
		}
		st.Changes = info.State.Subjects[natsx.ControlSubject(org)]
	}
	return st, nil
}

// Enable opts p's organization in, in region. Enabling an enabled org is a
// no-op; naming another region than the first opt-in's is REGION_IMMUTABLE.
func (s *Service) Enable(ctx context.Context, p *domain.Principal, region domain.Region) (domain.Settings, error) {
	return s.change(ctx, p.OrgID, func(cur domain.Settings) (domain.SettingsChange, bool, error) {
		return cur.Enable(region, p.Actor(), s.now())
	})
}

// Disable opts p's organization out. Disabling a disabled org is a no-op.
func (s *Service) Disable(ctx context.Context, p *domain.Principal) (domain.Settings, error) {
	return s.change(ctx, p.OrgID, func(cur domain.Settings) (domain.SettingsChange, bool, error) {
		return cur.Disable(p.Actor(), s.now())
	})
}

// change runs decide against the current state and appends its change only
// if nobody appended since we read; on a lost race it decides again.
func (s *Service) change(ctx context.Context, org string, decide func(domain.Settings) (domain.SettingsChange, bool, error)) (domain.Settings, error) {
	for range maxAttempts {
		cur, err := s.Get(ctx, org)
		if err != nil {
			return cur, err
		}
		c, ok, err := decide(cur)
		if err != nil || !ok {
			return cur, err
		}
		data, err := json.Marshal(c)
		if err != nil {
			return cur, fmt.Errorf("encode settings change: %w", err)
		}
		ack, err := s.js.Publish(ctx, natsx.ControlSubject(org), data,
			jetstream.WithExpectStream(natsx.ControlStream),
			jetstream.WithExpectLastSequencePerSubject(cur.Version))
		if isWrongLastSequence(err) {
			continue
		}
		if err != nil {
			return cur, fmt.Errorf("append settings change of %s: %w", org, err)
		}
		return cur.Apply(c, ack.Sequence), nil
	}
	return domain.Settings{}, domain.Errorf(domain.CodeConflict, "",
		"audit log settings changed concurrently %d times; try again", maxAttempts)
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/natsx"
)

// Request is the body internal services publish to auditlog.ingest.<source>:
// the same input as the recordAuditEvents mutation.
type Request struct {
	Events []domain.Event `json:"events"`
}

// Reply answers a Request: one result per event, or an error for the call.
type Reply struct {
	Results []ReplyResult `json:"results,omitempty"`
	Error   *ReplyError   `json:"error,omitempty"`
}

// ReplyResult is Result as JSON.
type ReplyResult struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// ReplyError is a failure of the whole request.
type ReplyError struct {
	Code    domain.Code `json:"code"`
	Message string      `json:"message"`
}

// ServeNATS exposes r as the NATS micro service "auditlog-ingest" on
// auditlog.ingest.<source>. Connections that reach the subject are trusted
// internal services: NATS, not a token, authorizes them, and each may record
// only for the source its subject names. The returned service is stopped by
// the caller.
func ServeNATS(ctx context.Context, nc *nats.Conn, r *Recorder, log zerolog.Logger) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "auditlog-ingest",
		Version:     "1.0.0",
		Description: "records audit events published as JSON requests",
		QueueGroup:  "auditd",
	})
	if err != nil {
		return nil, err
	}
	handler := micro.HandlerFunc(func(req micro.Request) {
		reply := r.handle(ctx, req.Subject(), req.Data(), log)
		if err := req.RespondJSON(reply); err != nil {
			log.Warn().Err(err).Msg("ingest reply failed")
		}
	})
	err = svc.AddEndpoint("record", handler, micro.WithEndpointSubject(natsx.IngestSubjectPrefix+"*"))
	if err != nil {
		_ = svc.Stop()
		return nil, err
	}
	return svc, nil
}

func (r *Recorder) handle(ctx context.Context, subject string, data []byte, log zerolog.Logger) Reply {
	source := domain.Source(strings.TrimPrefix(subject, natsx.IngestSubjectPrefix))
	if !source.Valid() {
		return Reply{Error: &ReplyError{Code: domain.CodeBadUserInput, Message: "unknown source in subject " + subject}}
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Reply{Error: &ReplyError{Code: domain.CodeBadUserInput, Message: "body is not a JSON {\"events\": [...]} request: " + err.Error()}}
	}
	p := &domain.Principal{Subject: "nats:" + subject, Kind: domain.PrincipalService, Sources: []domain.Source{source}}
	results, err := r.Record(ctx, p, req.Events)
	if err != nil {
		code := domain.CodeOf(err)
		msg := "internal error"
		if code != domain.CodeInternal {
			msg = err.Error()
		} else {
			log.Error().Err(err).Str("subject", subject).Msg("nats ingest failed")
		}
		return Reply{Error: &ReplyError{Code: code, Message: msg}}
	}
	out := make([]ReplyResult, len(results))
	for i, res := range results {
		out[i] = ReplyResult{ID: res.ID, Status: res.Status, Reason: res.Reason}
	}
	return Reply{Results: out}
}

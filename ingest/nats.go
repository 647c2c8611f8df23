package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/auditlog/auditlog/auth"
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

// ReplyResult is Result as JSON. Code says why an event was rejected
// (FORBIDDEN, BAD_USER_INPUT, …).
type ReplyResult struct {
	ID     string      `json:"id"`
	Status Status      `json:"status"`
	Code   domain.Code `json:"code,omitempty"`
	Reason string      `json:"reason,omitempty"`
}

// ReplyError is a failure of the whole request. RetryAfter, in seconds, is
// set when the log was too busy to take the request: send the same request
// again after that long.
type ReplyError struct {
	Code       domain.Code `json:"code"`
	Message    string      `json:"message"`
	RetryAfter float64     `json:"retryAfter,omitempty"`
}

// TokenVerifier turns a bearer token into the principal it names, or an
// UNAUTHENTICATED error.
type TokenVerifier interface {
	Verify(token string) (*domain.Principal, error)
}

// AuthorizationHeader carries the caller's service token on an ingest
// request, as on HTTP: "Authorization: Bearer <jwt>".
const AuthorizationHeader = "Authorization"

// DropCounter counts ingest requests dropped unanswered, by reason.
type DropCounter interface {
	Dropped(reason string)
}

// Reasons an ingest request is dropped without an answer.
const (
	DropNoReply      = "no_reply"
	DropReplySubject = "reply_subject"
)

// ServeNATS exposes r as the NATS micro service "auditlog-ingest" on
// auditlog.ingest.<source>. Reaching the subject proves nothing: every
// request carries a service token in its Authorization header, verified by
// v, and records only for the source its subject names and the sources and
// orgs the token allows.
//
// A request is answered only on a reply subject under _INBOX
// (natsx.ValidReply), checked before anything else: the caller chooses the
// reply subject, and an answer anywhere else would be auditd publishing a
// message of the caller's making on a subject of the caller's choosing.
// Others are dropped, counted in drops and logged (sampled). nc should be a
// connection whose user may publish under _INBOX only, so NATS refuses such
// an answer too. The returned service is stopped by the caller.
func ServeNATS(ctx context.Context, nc *nats.Conn, r *Recorder, v TokenVerifier, drops DropCounter, log zerolog.Logger) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "auditlog-ingest",
		Version:     "1.0.0",
		Description: "records audit events published as JSON requests",
		QueueGroup:  "auditd",
	})
	if err != nil {
		return nil, err
	}
	dropLog := log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Minute})
	handler := micro.HandlerFunc(func(req micro.Request) {
		if to := req.Reply(); !natsx.ValidReply(to) {
			reason := DropReplySubject
			if to == "" {
				reason = DropNoReply
			}
			drops.Dropped(reason)
			dropLog.Warn().Str("subject", req.Subject()).Str("reply", truncate(to, 128)).Str("reason", reason).
				Msg("nats ingest request dropped: its reply subject is not an inbox")
			return
		}
		reply := r.handle(ctx, v, req.Subject(), nats.Header(req.Headers()), req.Data(), log)
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

// truncate cuts s to at most n bytes for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// handle answers one ingest request: authenticate, authorize the subject's
// source, check the body is UTF-8 JSON, then record as the token's
// principal narrowed to that source.
func (r *Recorder) handle(ctx context.Context, v TokenVerifier, subject string, hdr nats.Header, data []byte, log zerolog.Logger) Reply {
	p, err := authenticate(v, hdr)
	if err != nil {
		return errorReply(err)
	}
	if p.Kind != domain.PrincipalService {
		return errorReply(domain.Errorf(domain.CodeForbidden, "", "requires a service token"))
	}
	source := domain.Source(strings.TrimPrefix(subject, natsx.IngestSubjectPrefix))
	if !source.Valid() {
		return errorReply(domain.BadInput("", "unknown source in subject %s", subject))
	}
	if !slices.Contains(p.Sources, source) {
		return errorReply(domain.Errorf(domain.CodeForbidden, "", "token may not record events for source %s", source))
	}
	if !utf8.Valid(data) {
		return errorReply(domain.BadInput("", "body is not valid UTF-8"))
	}
	raws, err := splitRequest(data)
	if err != nil {
		return errorReply(err)
	}
	// The subject names one source: events of any other are forbidden even
	// when the token allows them.
	narrowed := *p
	narrowed.Sources = []domain.Source{source}
	results, err := r.RecordJSON(ctx, &narrowed, raws)
	if err != nil {
		if domain.CodeOf(err) == domain.CodeInternal {
			log.Error().Err(err).Str("subject", subject).Str("principal", p.Subject).Msg("nats ingest failed")
		}
		return errorReply(err)
	}
	out := make([]ReplyResult, len(results))
	for i, res := range results {
		out[i] = ReplyResult{ID: res.ID, Status: res.Status, Code: res.Code, Reason: res.Reason}
	}
	return Reply{Results: out}
}

// splitRequest reads a {"events": [...]} body into its events, each still
// raw: a bad event is refused alone by RecordJSON, while a body that is not
// such an object (another key, "events" twice, trailing data) is refused
// whole.
func splitRequest(data []byte) ([]json.RawMessage, error) {
	const shape = "body is not a JSON {\"events\": [...]} request"
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, domain.BadInput("", "%s", shape)
	}
	var events []json.RawMessage
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, domain.BadInput("", "%s: %v", shape, err)
		}
		switch key, _ := tok.(string); {
		case key != "events":
			return nil, domain.BadInput(key, "is not a field of an ingest request; %s", shape)
		case seen:
			return nil, domain.BadInput("events", "is given twice in one object; a key may appear once")
		}
		seen = true
		if err := dec.Decode(&events); err != nil {
			return nil, domain.BadInput("events", "must be a list of events: %v", err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, domain.BadInput("", "%s: %v", shape, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, domain.BadInput("", "%s: data after the object", shape)
	}
	return events, nil
}

// authenticate verifies the bearer token of hdr.
func authenticate(v TokenVerifier, hdr nats.Header) (*domain.Principal, error) {
	token := auth.BearerToken(hdr.Get(AuthorizationHeader))
	if token == "" {
		return nil, domain.Errorf(domain.CodeUnauthenticated, "", "no bearer token in the %s header", AuthorizationHeader)
	}
	return v.Verify(token)
}

// errorReply answers a failure of the whole request; internal errors keep
// their detail to the log.
func errorReply(err error) Reply {
	code := domain.CodeOf(err)
	msg := "internal error"
	if code != domain.CodeInternal {
		msg = err.Error()
	}
	reply := Reply{Error: &ReplyError{Code: code, Message: msg}}
	var de *domain.Error
	if errors.As(err, &de) && de.RetryAfter > 0 {
		reply.Error.RetryAfter = de.RetryAfter.Seconds()
	}
	return reply
}

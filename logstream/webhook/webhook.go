// Package webhook delivers log streams to an HTTPS endpoint, each request
// signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com), which many receivers verify with a
// stock library.
//
// A request is a POST of one JSON object,
//
//	{"type":"auditlog.events","timestamp":"…","data":{"orgId":"…","streamId":"…","format":"JSON","events":[…]}}
//
// with the headers webhook-id, webhook-timestamp (Unix seconds) and
// webhook-signature: "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one
// such signature per configured secret, separated by spaces, so a receiver
// rotating its secret accepts either.
//
// webhook-id is derived from the stream, the format and the batch's first
// and last event ids and size (see MessageID), so a retried batch carries
// the same id and a receiver can drop the duplicate. Each event also
// carries its own id and leaf index.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/logstream"
)

// Default limits of one request: receivers commonly cap bodies at a few
// megabytes, and a smaller request is retried more cheaply.
const (
	DefaultMaxEvents = 100
	DefaultMaxBytes  = 1 << 20
)

// Payload types.
const (
	TypeEvents = "auditlog.events"
	TypeTest   = "auditlog.test"
)

// Sender posts batches to one webhook. Build it with New; it is safe for
// concurrent use.
type Sender struct {
	cfg     logstream.WebhookConfig
	opts    logstream.Options
	keys    [][]byte
	secrets []logstream.Secret
	client  *http.Client
}

// New validates cfg and returns its sender. opts.Policy is required.
func New(cfg logstream.WebhookConfig, opts logstream.Options) (*Sender, error) {
	opts, err := opts.WithDefaults(logstream.Limits{MaxEvents: DefaultMaxEvents, MaxBytes: DefaultMaxBytes})
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(opts.Policy); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, opts: opts, secrets: cfg.Secrets, client: opts.HTTPClient()}
	for _, sec := range cfg.Secrets {
		k, err := logstream.WebhookKey(sec)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

// payload is the request body.
type payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      data      `json:"data"`
}

type data struct {
	OrgID    string            `json:"orgId"`
	StreamID string            `json:"streamId"`
	Format   logstream.Format  `json:"format"`
	Events   []json.RawMessage `json:"events"`
}

// encoded is an event with its rendering.
type encoded struct {
	e *domain.Event
	b json.RawMessage
}

// Send posts batch in requests within the limits, in order, and stops at the
// first failure.
func (s *Sender) Send(ctx context.Context, batch []*domain.Event) (logstream.Result, error) {
	var res logstream.Result
	enc, err := logstream.NewEncoder(s.cfg.Format, s.opts.Product)
	if err != nil {
		return res, err
	}
	items := make([]encoded, len(batch))
	for i, e := range batch {
		b, err := enc.Encode(e)
		if err != nil {
			return res, &logstream.Error{Class: logstream.Permanent, Message: "an event could not be encoded", Cause: err}
		}
		items[i] = encoded{e, b}
	}
	for _, part := range logstream.Split(items, s.opts.Limits, func(it encoded) int { return len(it.b) + 1 }) {
		first, last := part[0].e, part[len(part)-1].e
		p := payload{Type: TypeEvents, Timestamp: last.RecordedAt.UTC(), Data: s.data(len(part))}
		for _, it := range part {
			p.Data.Events = append(p.Data.Events, it.b)
		}
		id := MessageID(s.opts.StreamID, s.cfg.Format, first.ID, last.ID, len(part))
		_, _, n, err := s.post(ctx, id, p)
		res.Requests++
		if err != nil {
			return res, err
		}
		res.Delivered += len(part)
		res.Bytes += n
	}
	return res, nil
}

func (s *Sender) data(n int) data {
	return data{OrgID: s.opts.OrgID, StreamID: s.opts.StreamID, Format: s.cfg.Format, Events: make([]json.RawMessage, 0, n)}
}

// Test posts one test event (type auditlog.test) and returns the answer.
func (s *Sender) Test(ctx context.Context) (logstream.TestResult, error) {
	now := s.opts.Now()
	e := logstream.TestEvent(s.opts.OrgID, now)
	b, err := logstream.EncodeOne(s.cfg.Format, s.opts.Product, e)
	if err != nil {
		return logstream.TestResult{}, err
	}
	p := payload{Type: TypeTest, Timestamp: now.UTC(), Data: s.data(1)}
	p.Data.Events = append(p.Data.Events, b)
	status, body, _, err := s.post(ctx, MessageID(s.opts.StreamID, s.cfg.Format, e.ID, e.ID, 1), p)
	return logstream.TestResult{Status: status, Body: logstream.Snippet(body, s.secrets...)}, err
}

// post sends one signed request; it returns the status, the start of the
// answer and the body size, and a *logstream.Error unless the answer was
// a 2xx.
func (s *Sender) post(ctx context.Context, id string, p payload) (int, []byte, int, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return 0, nil, 0, &logstream.Error{Class: logstream.Permanent, Message: "the batch could not be encoded", Cause: err}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, &logstream.Error{Class: logstream.Permanent, Message: "the webhook URL is not usable"}
	}
	ts := s.opts.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "auditlog-logstream/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(s.keys, id, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, len(body), logstream.TransportError(err)
	}
	defer resp.Body.Close()
	// The status decides; an answer cut short after a 2xx does not undo
	// the delivery, so a read error is not reported.
	answer, _ := logstream.ReadCapped(resp.Body, s.opts.MaxResponseBytes)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, answer, len(body), logstream.StatusError(resp.StatusCode, resp.Header, s.opts.Now(),
			"the webhook endpoint did not accept the batch")
	}
	return resp.StatusCode, answer, len(body), nil
}

// Sign is the webhook-signature header for body: one "v1,<signature>" per
// key, separated by spaces.
func Sign(keys [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		m := hmac.New(sha256.New, k)
		fmt.Fprintf(m, "%s.%d.", id, ts.Unix())
		m.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	return strings.Join(sigs, " ")
}

// MessageID is the webhook-id of a batch: "msg_" and a hash of the stream,
// format, first and last event ids and event count. The same batch retried
// has the same id; a batch cut differently (other limits) has another, as
// its body differs.
func MessageID(streamID string, f logstream.Format, firstID, lastID string, n int) string {
	h := sha256.New()
	for _, part := range []string{streamID, string(f), firstID, lastID, strconv.Itoa(n)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "msg_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

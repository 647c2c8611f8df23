// Package splunk delivers log streams to a Splunk HTTP Event Collector
// (HEC): a batch is one POST to /services/collector/event of concatenated
// event envelopes ({"time","host","source","sourcetype","index","event"}),
// authenticated with "Authorization: Splunk <token>".
//
// With indexer acknowledgement (SplunkConfig.Ack) each request carries a
// channel GUID (X-Splunk-Request-Channel), Splunk answers with an ackId,
// and the batch counts as delivered only once /services/collector/ack
// reports that id indexed; without it, once HEC accepted it. Either way a
// batch may arrive twice after a retry: each event carries its id for
// de-duplication, and its leaf index.
package splunk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/logstream"
)

// Default limits of one request: HEC refuses bodies over its
// max_content_length (1 MB by default in Splunk Cloud).
const (
	DefaultMaxEvents = 500
	DefaultMaxBytes  = 800_000
)

// Defaults of AckTiming.
const (
	DefaultAckPoll    = time.Second
	DefaultAckTimeout = 2 * time.Minute
)

// Envelope defaults when the stream leaves them empty.
const (
	DefaultSource     = "auditlog"
	DefaultSourceType = "_json"
)

// AckTiming is how often indexer acknowledgement is polled and how long a
// batch may wait for it before it counts as failed (retryable).
type AckTiming struct {
	Poll, Timeout time.Duration
}

// Sender posts batches to one collector. Build it with New; it is safe for
// concurrent use.
type Sender struct {
	cfg     logstream.SplunkConfig
	opts    logstream.Options
	ack     AckTiming
	client  *http.Client
	channel string
	// fields are the envelope's fields after time, up to event:
	// `"host":…,"source":…,"sourcetype":…,"index":…,`, empty ones left out.
	fields   []byte
	eventURL string
	ackURL   string
}

// New validates cfg and returns its sender; zero fields of ack take the
// defaults. opts.Policy is required.
func New(cfg logstream.SplunkConfig, opts logstream.Options, ack AckTiming) (*Sender, error) {
	opts, err := opts.WithDefaults(logstream.Limits{MaxEvents: DefaultMaxEvents, MaxBytes: DefaultMaxBytes})
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(opts.Policy); err != nil {
		return nil, err
	}
	if ack.Poll <= 0 {
		ack.Poll = DefaultAckPoll
	}
	if ack.Timeout <= 0 {
		ack.Timeout = DefaultAckTimeout
	}
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if cfg.SourceType == "" {
		cfg.SourceType = DefaultSourceType
	}
	base := strings.TrimRight(cfg.URL, "/")
	base = strings.TrimSuffix(strings.TrimSuffix(base, "/services/collector/event"), "/services/collector")
	channel := uuid.NewString()
	fields, err := json.Marshal(envelope{Host: cfg.Host, Source: cfg.Source, SourceType: cfg.SourceType, Index: cfg.Index})
	if err != nil {
		return nil, err
	}
	// {"host":…,"event":null} → "host":…,
	fields = bytes.TrimSuffix(bytes.TrimPrefix(fields, []byte(`{`)), []byte(`"event":null}`))
	return &Sender{
		cfg: cfg, opts: opts, ack: ack, client: opts.HTTPClient(), channel: channel, fields: fields,
		eventURL: base + "/services/collector/event",
		ackURL:   base + "/services/collector/ack?channel=" + url.QueryEscape(channel),
	}, nil
}

// envelope is one event as HEC takes it; Sender.envelope writes it, but
// for the fields every event of a sender shares, marshaled once from it.
type envelope struct {
	Time       json.Number     `json:"time,omitempty"`
	Host       string          `json:"host,omitempty"`
	Source     string          `json:"source,omitempty"`
	SourceType string          `json:"sourcetype,omitempty"`
	Index      string          `json:"index,omitempty"`
	Event      json.RawMessage `json:"event"`
}

// answer is HEC's reply.
type answer struct {
	Text  string `json:"text"`
	Code  *int   `json:"code"`
	AckID *int64 `json:"ackId"`
}

// envelope wraps b, the encoded event (one compact JSON object from
// logstream.Encoder), in e's envelope. The fields other than time and
// event are the same for every event of the sender, marshaled once
// (fields); b is appended as it is, not scanned and compacted again as
// json.Marshal would.
func (s *Sender) envelope(e *domain.Event, b []byte) []byte {
	t := e.OccurredAt.UnixMilli()
	out := make([]byte, 0, len(s.fields)+len(b)+32)
	out = fmt.Appendf(out, `{"time":%d.%03d,`, t/1000, t%1000)
	out = append(out, s.fields...)
	out = append(out, `"event":`...)
	out = append(out, b...)
	return append(out, '}')
}

// Send posts batch in requests within the limits, in order, waiting for
// each to be acknowledged if the stream asks for it, and stops at the first
// failure.
func (s *Sender) Send(ctx context.Context, batch []*domain.Event) (logstream.Result, error) {
	var res logstream.Result
	enc, err := logstream.NewEncoder(s.cfg.Format, s.opts.Product)
	if err != nil {
		return res, err
	}
	envs := make([][]byte, len(batch))
	for i, e := range batch {
		b, err := enc.Encode(e)
		if err != nil {
			return res, &logstream.Error{Class: logstream.Permanent, Message: "an event could not be encoded", Cause: err}
		}
		envs[i] = s.envelope(e, b)
	}
	for _, part := range logstream.Split(envs, s.opts.Limits, func(b []byte) int { return len(b) }) {
		body := bytes.Join(part, nil)
		_, _, err := s.deliver(ctx, body)
		res.Requests++
		if err != nil {
			return res, err
		}
		res.Delivered += len(part)
		res.Bytes += len(body)
	}
	return res, nil
}

// Test posts one test event (acknowledged if the stream asks for it) and
// returns HEC's answer.
func (s *Sender) Test(ctx context.Context) (logstream.TestResult, error) {
	e := logstream.TestEvent(s.opts.OrgID, s.opts.Now())
	b, err := logstream.EncodeOne(s.cfg.Format, s.opts.Product, e)
	if err != nil {
		return logstream.TestResult{}, err
	}
	b = s.envelope(e, b)
	status, raw, err := s.deliver(ctx, b)
	res := logstream.TestResult{Status: status, Body: logstream.Snippet(raw, s.cfg.Token)}
	var a answer
	if json.Unmarshal(raw, &a) == nil && a.Code != nil {
		res.Code = strconv.Itoa(*a.Code)
	}
	return res, err
}

// deliver posts one body and, with Ack, waits until it is indexed. It
// returns the event request's status and answer.
func (s *Sender) deliver(ctx context.Context, body []byte) (int, []byte, error) {
	status, raw, a, err := s.post(ctx, s.eventURL, body)
	if err != nil || !s.cfg.Ack {
		return status, raw, err
	}
	if a.AckID == nil {
		return status, raw, &logstream.Error{Class: logstream.Permanent, Status: status,
			Message: "Splunk gave no ackId: enable indexer acknowledgement on the HEC token, or turn it off for the stream"}
	}
	return status, raw, s.waitAck(ctx, *a.AckID)
}

// waitAck polls the ack endpoint until id is indexed or AckTiming.Timeout
// passes.
func (s *Sender) waitAck(ctx context.Context, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, s.ack.Timeout)
	defer cancel()
	body := fmt.Appendf(nil, `{"acks":[%d]}`, id)
	key := strconv.FormatInt(id, 10)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return &logstream.Error{Class: logstream.Retryable, Message: "Splunk did not confirm the batch was indexed in time", Cause: ctx.Err()}
		case <-t.C:
		}
		_, raw, _, err := s.post(ctx, s.ackURL, body)
		if err != nil {
			return err
		}
		var acks struct {
			Acks map[string]bool `json:"acks"`
		}
		if err := json.Unmarshal(raw, &acks); err != nil {
			return &logstream.Error{Class: logstream.Retryable, Message: "Splunk's acknowledgement answer is not JSON"}
		}
		if acks.Acks[key] {
			return nil
		}
		t.Reset(s.ack.Poll)
	}
}

// post sends one request to HEC and reads its answer; a *logstream.Error
// unless HEC said success.
func (s *Sender) post(ctx context.Context, u string, body []byte) (int, []byte, answer, error) {
	var a answer
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, a, &logstream.Error{Class: logstream.Permanent, Message: "the collector URL is not usable"}
	}
	req.Header.Set("Authorization", "Splunk "+s.cfg.Token.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "auditlog-logstream/1")
	if s.cfg.Ack {
		req.Header.Set("X-Splunk-Request-Channel", s.channel)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, a, logstream.TransportError(err)
	}
	defer resp.Body.Close()
	raw, _ := logstream.ReadCapped(resp.Body, s.opts.MaxResponseBytes)
	_ = json.Unmarshal(raw, &a)
	if resp.StatusCode == http.StatusOK && (a.Code == nil || *a.Code == 0) {
		return resp.StatusCode, raw, a, nil
	}
	status := resp.StatusCode
	msg := "Splunk refused the batch"
	if a.Text != "" {
		msg = "Splunk: " + logstream.Snippet([]byte(a.Text[:min(len(a.Text), 200)]), s.cfg.Token)
	}
	if status == http.StatusOK {
		// A 200 with a non-zero code is not a delivery; HEC does not do
		// this, but a proxy in front of it might.
		status = http.StatusBadGateway
	}
	e := logstream.StatusError(status, resp.Header, s.opts.Now(), msg)
	e.Status = resp.StatusCode
	if a.Code != nil {
		e.Code = strconv.Itoa(*a.Code)
	}
	return resp.StatusCode, raw, a, e
}

// Package syslog delivers log streams to a syslog receiver: RFC 5424
// messages over TLS (RFC 5425), each framed by octet counting
// ("<length> <message>", RFC 5425 section 4.3 and RFC 6587 section 3.4.1).
//
// A message is
//
//	<110>1 2026-03-01T12:00:00.123456Z auditd.example auditlog - USER_CREATED [auditlog@32473 id="…" leafIndex="17" org="…"] {…event…}
//
// facility 13 (log audit), severity informational (warning for a refused
// settings change), the event's time, the sending host, app-name
// "auditlog", the event type as MSGID, the event's id, leaf index and
// organization as structured data, and the event in the stream's format
// as MSG (UTF-8 JSON, without a byte order mark).
//
// Syslog over TLS has no acknowledgement of its own: a batch counts as
// delivered once it is written, our close_notify sent, and the receiver has
// closed its side in answer, which rsyslog does once it has read everything
// before the alert. Until then the batch is sent again whole, with the same
// event ids. Receivers must accept messages of the size of an event
// (rsyslog: maxMessageSize, 8 KiB by default in many distributions).
package syslog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/logstream"
)

// Default limits of one write: events are framed one by one, so these only
// bound how much is written before the next deadline check.
const (
	DefaultMaxEvents = 500
	DefaultMaxBytes  = 1 << 20
)

// SDID is the structured data element id of the event's identity. 32473 is
// the private enterprise number reserved for documentation (RFC 5612);
// replace it with the vendor's own when one is registered.
const SDID = "auditlog@32473"

// AppName is the syslog APP-NAME of every message.
const AppName = "auditlog"

// facilityLogAudit is syslog facility 13, "log audit".
const facilityLogAudit = 13

// Sender writes batches to one syslog receiver. Build it with New; it is
// safe for concurrent use (each Send has its own connection).
type Sender struct {
	cfg      logstream.SyslogConfig
	opts     logstream.Options
	hostname string
}

// New validates cfg and returns its sender; hostname is the HOSTNAME field
// of the messages (the auditd instance's name). opts.Policy is required.
func New(cfg logstream.SyslogConfig, opts logstream.Options, hostname string) (*Sender, error) {
	opts, err := opts.WithDefaults(logstream.Limits{MaxEvents: DefaultMaxEvents, MaxBytes: DefaultMaxBytes})
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName = cfg.Host
	}
	return &Sender{cfg: cfg, opts: opts, hostname: headerField(hostname, 255)}, nil
}

// Send writes batch over one TLS connection, in parts within the limits,
// each under a write deadline, and closes the connection.
func (s *Sender) Send(ctx context.Context, batch []*domain.Event) (logstream.Result, error) {
	var res logstream.Result
	if len(batch) == 0 {
		return res, nil
	}
	enc, err := logstream.NewEncoder(s.cfg.Format, s.opts.Product)
	if err != nil {
		return res, err
	}
	frames := make([][]byte, len(batch))
	for i, e := range batch {
		b, err := enc.Encode(e)
		if err != nil {
			return res, &logstream.Error{Class: logstream.Permanent, Message: "an event could not be encoded", Cause: err}
		}
		frames[i] = Frame(Message(e, s.hostname, b))
	}
	n, written, err := s.write(ctx, logstream.Split(frames, s.opts.Limits, func(f []byte) int { return len(f) }))
	res.Requests, res.Delivered, res.Bytes = 1, n, written
	return res, err
}

// write sends the parts over one connection and returns how many frames
// the receiver confirmed (all or none) and how many bytes were written.
// Bytes in the kernel's buffers are not delivered: the receiver confirms
// by closing its side once it has read up to our close_notify, and a
// batch it never confirms is sent again whole.
func (s *Sender) write(ctx context.Context, parts [][][]byte) (frames, written int, err error) {
	conn, err := s.opts.DialTLS(ctx, s.cfg.Address(), s.cfg.ServerName)
	if err != nil {
		return 0, 0, logstream.TransportError(err)
	}
	defer conn.Close()
	// Closing the connection ends a write the context no longer wants.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	w := bufio.NewWriterSize(conn, 64<<10)
	for _, part := range parts {
		if err := conn.SetWriteDeadline(s.opts.Now().Add(s.opts.RequestTimeout)); err != nil {
			return 0, written, logstream.TransportError(err)
		}
		n := 0
		for _, f := range part {
			_, _ = w.Write(f) // a failure shows in Flush
			n += len(f)
		}
		if err := w.Flush(); err != nil {
			return 0, written, logstream.TransportError(contextErr(ctx, err))
		}
		frames, written = frames+len(part), written+n
	}
	if err := conn.CloseWrite(); err != nil {
		return 0, written, logstream.TransportError(contextErr(ctx, err))
	}
	if err := conn.SetReadDeadline(s.opts.Now().Add(s.opts.RequestTimeout)); err != nil {
		return 0, written, logstream.TransportError(err)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(conn, maxAnswer)); err != nil {
		return 0, written, logstream.TransportError(fmt.Errorf("the receiver did not confirm the batch by closing: %w", contextErr(ctx, err)))
	}
	return frames, written, nil
}

// maxAnswer bounds what is read from a receiver, which has nothing to say
// but its close.
const maxAnswer = 64 << 10

// contextErr prefers the context's error, which says why a write failed
// when the context closed the connection.
func contextErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Test writes one test event. A syslog receiver answers nothing but its
// close; the result says what was written and confirmed.
func (s *Sender) Test(ctx context.Context) (logstream.TestResult, error) {
	e := logstream.TestEvent(s.opts.OrgID, s.opts.Now())
	b, err := logstream.EncodeOne(s.cfg.Format, s.opts.Product, e)
	if err != nil {
		return logstream.TestResult{}, err
	}
	_, n, err := s.write(ctx, [][][]byte{{Frame(Message(e, s.hostname, b))}})
	if err != nil {
		return logstream.TestResult{}, err
	}
	return logstream.TestResult{Body: fmt.Sprintf("wrote %d bytes over TLS to %s and it closed the connection after reading them; syslog receivers say nothing more, check that the test event %s arrived", n, s.cfg.Address(), e.ID)}, nil
}

// Message is the RFC 5424 message of e, with msg as its MSG.
func Message(e *domain.Event, hostname string, msg []byte) []byte {
	severity := 6 // informational
	if e.Type == domain.TypeAuditLogSettingsDenied {
		severity = 4 // warning
	}
	var b strings.Builder
	b.Grow(len(msg) + 200)
	fmt.Fprintf(&b, "<%d>1 %s %s %s - %s [%s id=\"%s\"", facilityLogAudit*8+severity,
		e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		headerField(hostname, 255), AppName, headerField(string(e.Type), 32), SDID, paramValue(e.ID))
	if e.LeafIndex != nil {
		fmt.Fprintf(&b, " leafIndex=\"%d\"", *e.LeafIndex)
	}
	fmt.Fprintf(&b, " org=\"%s\"] ", paramValue(e.OrgID))
	b.Write(msg)
	return []byte(b.String())
}

// Frame is msg framed by octet counting: its length in bytes, a space, msg.
func Frame(msg []byte) []byte {
	out := strconv.AppendInt(nil, int64(len(msg)), 10)
	out = append(out, ' ')
	return append(out, msg...)
}

// headerField makes s a valid RFC 5424 header field of at most max
// printable US-ASCII characters without spaces; empty is "-" (NILVALUE).
func headerField(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max]
	}
	if s == "" {
		return "-"
	}
	return s
}

// paramValue escapes an SD-PARAM value: '"', '\' and ']' take a backslash.
func paramValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

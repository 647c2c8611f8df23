package logstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditlog/auditlog/egress"
)

// Class tells the delivery engine what to do after a failed Send.
type Class int

// Failure classes.
const (
	// Retryable failures may pass if the same batch is sent again later:
	// 5xx, 408, 429, time-outs, refused or reset connections.
	Retryable Class = iota + 1
	// Permanent failures will not pass until someone changes the stream's
	// configuration or the destination: other 4xx, a certificate that does
	// not verify, an address the egress policy refuses, a redirect.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "RETRYABLE"
	case Permanent:
		return "PERMANENT"
	}
	return "UNKNOWN"
}

// Error is a failed delivery. Its message is short and safe to show an
// admin: it never holds a secret, a token, a URL's query or the payload.
type Error struct {
	Class Class
	// Status is the HTTP status the destination answered, 0 if none.
	Status int
	// Code is the destination's own error code (Splunk's "code"), "" if none.
	Code string
	// Message says what went wrong, for an admin.
	Message string
	// RetryAfter is how long the destination asked to be left alone
	// (Retry-After), 0 if it did not say.
	RetryAfter time.Duration
	// Cause is the underlying error, for logs and errors.Is; it is
	// stripped of URLs before it is kept.
	Cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Code != "" {
			fmt.Fprintf(&b, ", code %s", e.Code)
		}
		b.WriteString(")")
	} else if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	}
	return b.String()
}

// Unwrap is the cause.
func (e *Error) Unwrap() error { return e.Cause }

// ClassOf is err's class: that of the first *Error in its chain, else
// Retryable, since an unexplained failure may be passing.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Retryable
}

// StatusError classifies an HTTP answer that was not a success. header may
// be nil. A 3xx is permanent: redirects are never followed.
func StatusError(status int, header http.Header, now time.Time, message string) *Error {
	e := &Error{Status: status, Message: message, Class: Permanent}
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		e.Class = Retryable
		if header != nil {
			e.RetryAfter = RetryAfter(header.Get("Retry-After"), now)
		}
	case status >= 300 && status < 400:
		e.Message = "the destination redirected; redirects are not followed, configure the final URL"
	}
	return e
}

// RetryAfter reads a Retry-After header: seconds or an HTTP date. It
// returns 0 for an absent or unreadable value and caps the wait at a day,
// so a hostile destination cannot park a stream forever.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		d = time.Duration(min(s, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 24*time.Hour)
}

// TransportError classifies a failure to reach the destination or read its
// answer: dialing, TLS, writing, time-outs.
func TransportError(err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error's text holds the URL, whose query may hold a token.
		err = ue.Err
	}
	var (
		refused *egress.RefusedError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		alert   tls.AlertError
		rec     tls.RecordHeaderError
		dnsErr  *net.DNSError
	)
	e := &Error{Class: Retryable, Cause: err}
	switch {
	case errors.As(err, &refused):
		e.Class, e.Message = Permanent, refused.Error()
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		e.Class, e.Message = Permanent, "the destination's TLS certificate does not verify: "+certReason(err)
	case errors.As(err, &rec):
		e.Class, e.Message = Permanent, "the destination does not speak TLS on that port"
	case errors.As(err, &alert):
		e.Class, e.Message = Permanent, "the destination refused the TLS handshake: "+alert.Error()
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		e.Message = "the destination did not answer in time"
	case errors.Is(err, context.Canceled):
		e.Message = "the delivery was cancelled"
	case errors.As(err, &dnsErr):
		e.Message = "the destination's name does not resolve: " + dnsErr.Name
		if dnsErr.IsNotFound {
			// A name that does not exist is a configuration error.
			e.Class = Permanent
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Message = "the destination refused the connection"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		e.Message = "the destination closed the connection"
	default:
		e.Message = "the destination could not be reached"
	}
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// certReason is why a certificate failed, without the URL.
func certReason(err error) string {
	var host x509.HostnameError
	if errors.As(err, &host) {
		return host.Error()
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return "signed by an unknown authority"
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		return invalid.Error()
	}
	return "verification failed"
}

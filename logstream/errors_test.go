package logstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditlog/auditlog/egress"
)

func TestStatusError(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		retryAfter string
		class      Class
		wait       time.Duration
	}{
		{400, "", Permanent, 0},
		{401, "", Permanent, 0},
		{403, "", Permanent, 0},
		{404, "", Permanent, 0},
		{413, "", Permanent, 0},
		{408, "", Retryable, 0},
		{429, "", Retryable, 0},
		{429, "30", Retryable, 30 * time.Second},
		{429, now.Add(2 * time.Minute).Format(http.TimeFormat), Retryable, 2 * time.Minute},
		{503, "5", Retryable, 5 * time.Second},
		{500, "", Retryable, 0},
		{502, "soon", Retryable, 0},
		{301, "", Permanent, 0},
		{302, "", Permanent, 0},
		{307, "", Permanent, 0},
		{400, "30", Permanent, 0}, // Retry-After means nothing on a permanent failure
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.retryAfter != "" {
			h.Set("Retry-After", tt.retryAfter)
		}
		e := StatusError(tt.status, h, now, "the destination refused the batch")
		if e.Class != tt.class || e.RetryAfter != tt.wait || e.Status != tt.status {
			t.Errorf("%d Retry-After %q: class %v wait %v, want %v %v", tt.status, tt.retryAfter, e.Class, e.RetryAfter, tt.class, tt.wait)
		}
		if ClassOf(fmt.Errorf("send: %w", e)) != tt.class {
			t.Errorf("%d: ClassOf does not see through wrapping", tt.status)
		}
	}
	if !strings.Contains(StatusError(302, nil, now, "x").Message, "redirect") {
		t.Error("a redirect's message does not say so")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"abc", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"99999999999", 24 * time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.v, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestTransportError(t *testing.T) {
	refused := &egress.RefusedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private address"}
	secretURL := "https://siem.example.com/hook?token=s3cr3t-token"
	tests := []struct {
		name  string
		err   error
		class Class
	}{
		{"egress", &net.OpError{Op: "dial", Err: refused}, Permanent},
		{"deadline", context.DeadlineExceeded, Retryable},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Retryable},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, Retryable},
		{"no such host", &net.DNSError{Name: "nope.example", IsNotFound: true}, Permanent},
		{"dns timeout", &net.DNSError{Name: "slow.example", IsTimeout: true}, Retryable},
		{"unknown", errors.New("something"), Retryable},
		{"in a url.Error", &url.Error{Op: "Post", URL: secretURL, Err: context.DeadlineExceeded}, Retryable},
	}
	for _, tt := range tests {
		e := TransportError(tt.err)
		if e.Class != tt.class {
			t.Errorf("%s: class %v, want %v (%v)", tt.name, e.Class, tt.class, e)
		}
		if e.Message == "" {
			t.Errorf("%s: no message", tt.name)
		}
		if strings.Contains(e.Error(), "s3cr3t") || (e.Cause != nil && strings.Contains(e.Cause.Error(), "s3cr3t")) {
			t.Errorf("%s: the error shows the URL's token: %v / %v", tt.name, e, e.Cause)
		}
	}
	if !errors.Is(TransportError(&url.Error{URL: secretURL, Err: context.DeadlineExceeded}), context.DeadlineExceeded) {
		t.Error("the cause is lost")
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Class: Permanent, Status: 403, Code: "4", Message: "Invalid token"}
	if got := e.Error(); got != "Invalid token (HTTP 403, code 4)" {
		t.Errorf("Error() = %q", got)
	}
	if ClassOf(errors.New("plain")) != Retryable {
		t.Error("an unexplained error is not retryable")
	}
	if Retryable.String() != "RETRYABLE" || Permanent.String() != "PERMANENT" {
		t.Error("class names")
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("é", TestBodyBytes)
	tests := []struct {
		name, body string
		secrets    []Secret
		want       string
	}{
		{"plain", `{"text":"Success","code":0}`, nil, `{"text":"Success","code":0}`},
		{"echoed token", "bad token abcd-1234 given", []Secret{"abcd-1234"}, "bad token [redacted] given"},
		{"control bytes", "a\x00b\x1bc", nil, "a\uFFFDb\uFFFDc"},
		{"invalid utf-8", "a\xffb", nil, "a\uFFFDb"},
	}
	for _, tt := range tests {
		if got := Snippet([]byte(tt.body), tt.secrets...); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	got := Snippet([]byte(long))
	if len(got) > TestBodyBytes || !strings.HasPrefix(long, got) || len(got) < TestBodyBytes-2 {
		t.Errorf("long body cut to %d bytes, or mid-character", len(got))
	}
}

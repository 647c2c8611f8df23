package logstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/auditlog/auditlog/egress"
	"github.com/auditlog/auditlog/ocsf"
)

// Defaults of Options.
const (
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxResponseBytes = 64 << 10
)

// Options are what every destination's sender needs besides its config.
type Options struct {
	// OrgID and StreamID name the stream; webhook ids are derived from
	// StreamID, so two streams to one endpoint do not collide.
	OrgID, StreamID string
	// Policy decides which addresses may be dialed. Required.
	Policy *egress.Policy
	// RootCAs verifies destinations' certificates; nil means the system's
	// roots. Tests pass the CA of their receiver here: certificates are
	// always verified.
	RootCAs *x509.CertPool
	// Product is the producer named in OCSF events.
	Product ocsf.Product
	// DialTimeout, HandshakeTimeout and RequestTimeout bound connecting,
	// the TLS handshake and a whole request (or, for syslog, a batch's
	// writes); zero takes the defaults above.
	DialTimeout, HandshakeTimeout, RequestTimeout time.Duration
	// MaxResponseBytes caps how much of an answer is read; zero takes
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Limits bound one request; zero fields take the destination's
	// defaults.
	Limits Limits
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// WithDefaults returns o with zero fields set to their defaults (lim for
// Limits), or an error if a required one is missing.
func (o Options) WithDefaults(lim Limits) (Options, error) {
	if o.Limits.MaxEvents <= 0 {
		o.Limits.MaxEvents = lim.MaxEvents
	}
	if o.Limits.MaxBytes <= 0 {
		o.Limits.MaxBytes = lim.MaxBytes
	}
	if o.Policy == nil {
		return o, errors.New("logstream: Options.Policy is required")
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// TLSConfig verifies the destination's certificate for serverName against
// o.RootCAs (nil: the system roots), TLS 1.2 at least.
func (o Options) TLSConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: o.RootCAs, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// HTTPClient is the client HTTP destinations send with: it dials only
// where o.Policy allows (checked on the resolved address), never through
// a proxy, verifies TLS, follows no redirect, and gives up after
// RequestTimeout. Call it on Options that went through WithDefaults.
func (o Options) HTTPClient() *http.Client {
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            o.Policy.Dialer(o.DialTimeout).DialContext,
		TLSClientConfig:        o.TLSConfig(""),
		TLSHandshakeTimeout:    o.HandshakeTimeout,
		ResponseHeaderTimeout:  o.RequestTimeout,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: t,
		Timeout:   o.RequestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			// Return the 3xx as it is; StatusError makes it permanent.
			return http.ErrUseLastResponse
		},
	}
}

// DialTLS connects to address over TLS, verifying the certificate for
// serverName, dialing only where o.Policy allows.
func (o Options) DialTLS(ctx context.Context, address, serverName string) (*tls.Conn, error) {
	d := tls.Dialer{NetDialer: o.Policy.Dialer(o.DialTimeout), Config: o.TLSConfig(serverName)}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout+o.HandshakeTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// ReadCapped reads at most limit bytes of r, then drains up to as much
// again so the connection can be reused, and never more.
func ReadCapped(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, limit))
	return b, err
}

// Snippet is the start of a destination's answer for an admin: at most
// TestBodyBytes, printable text only, with any of secrets it echoes
// replaced by [redacted].
func Snippet(body []byte, secrets ...Secret) string {
	s := strings.ToValidUTF8(string(body), "\uFFFD")
	for _, sec := range secrets {
		if v := sec.Reveal(); len(v) >= 4 {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || unicode.IsPrint(r) {
			return r
		}
		return '\uFFFD'
	}, s)
	if len(s) > TestBodyBytes {
		cut := TestBodyBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

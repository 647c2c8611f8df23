package logstream

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
)

// Kind is a destination's protocol.
type Kind string

// Destination kinds.
const (
	KindWebhook   Kind = "WEBHOOK"
	KindSplunkHEC Kind = "SPLUNK_HEC"
	KindSyslog    Kind = "SYSLOG"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == KindWebhook || k == KindSplunkHEC || k == KindSyslog }

// Format is how each event is rendered.
type Format string

// Event formats.
const (
	// FormatJSON is the event as the API and NDJSON exports show it, with
	// its leafIndex.
	FormatJSON Format = "JSON"
	// FormatOCSF is the event mapped to OCSF (package ocsf).
	FormatOCSF Format = "OCSF"
)

// Valid reports whether f is a known format.
func (f Format) Valid() bool { return f == FormatJSON || f == FormatOCSF }

// Secret is a credential (a signing secret, a token). It prints, logs and
// marshals as [redacted] whatever verb or logger is used, so a config can
// be logged whole; Reveal is the one way to its value.
type Secret string

const redacted = "[redacted]"

// Reveal is the secret's value, for signing or authenticating, and for
// sealing it before it is stored.
func (s Secret) Reveal() string { return string(s) }

// Format prints [redacted] for every fmt verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// String is [redacted].
func (s Secret) String() string { return redacted }

// GoString is [redacted].
func (s Secret) GoString() string { return redacted }

// LogValue is [redacted], for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON is "[redacted]": a config marshaled for a log or an API
// answer never carries the secret. Store secrets sealed (secretbox), apart.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText is [redacted], for encoders that prefer text.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// WebhookConfig is a webhook destination: an HTTPS endpoint that receives
// batches signed per the Standard Webhooks specification.
type WebhookConfig struct {
	// URL is the endpoint; https, or http only to an address
	// AUDITD_EGRESS_ALLOW allows.
	URL string `json:"url"`
	// Secrets sign each request: whsec_ and the base64 of 24 to 64 random
	// bytes. The first is the current one; more than one while the
	// receiver rotates, each giving one signature.
	Secrets []Secret `json:"secrets"`
	Format  Format   `json:"format"`
}

// SplunkConfig is a Splunk HTTP Event Collector destination.
type SplunkConfig struct {
	// URL is the collector's base URL, e.g. https://splunk.example.com:8088;
	// the sender adds /services/collector/event.
	URL   string `json:"url"`
	Token Secret `json:"token"`
	// Index, Source, SourceType and Host go in each event's envelope; empty
	// leaves the token's defaults.
	Index      string `json:"index,omitempty"`
	Source     string `json:"source,omitempty"`
	SourceType string `json:"sourcetype,omitempty"`
	Host       string `json:"host,omitempty"`
	// Ack asks for indexer acknowledgement: a batch counts as delivered
	// only once Splunk says it is indexed. The token must have it enabled.
	Ack    bool   `json:"ack"`
	Format Format `json:"format"`
}

// SyslogConfig is a syslog receiver reached over TLS (RFC 5425).
type SyslogConfig struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// ServerName is the name the receiver's certificate must carry; empty
	// means Host.
	ServerName string `json:"serverName,omitempty"`
	Format     Format `json:"format"`
}

// Validate checks c; policy decides whether plain http may be used. Errors
// are BAD_USER_INPUT and name the field.
func (c WebhookConfig) Validate(policy *egress.Policy) error {
	if err := validateURL("webhook.url", c.URL, policy); err != nil {
		return err
	}
	if len(c.Secrets) == 0 {
		return domain.BadInput("webhook.secrets", "a signing secret is required")
	}
	if len(c.Secrets) > MaxWebhookSecrets {
		return domain.BadInput("webhook.secrets", "at most %d secrets, the current one and those being rotated out", MaxWebhookSecrets)
	}
	for i, s := range c.Secrets {
		if _, err := WebhookKey(s); err != nil {
			return domain.BadInput(fmt.Sprintf("webhook.secrets[%d]", i), "%s", err.Error())
		}
	}
	return validateFormat("webhook.format", c.Format)
}

// MaxWebhookSecrets caps how many secrets sign a webhook at once.
const MaxWebhookSecrets = 3

// WebhookKey decodes a Standard Webhooks secret (whsec_ and base64 of 24 to
// 64 bytes) to its HMAC key. Its error never holds the secret.
func WebhookKey(s Secret) ([]byte, error) {
	v, ok := strings.CutPrefix(s.Reveal(), "whsec_")
	if !ok {
		return nil, fmt.Errorf("a webhook secret starts with whsec_")
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("a webhook secret is whsec_ followed by standard base64")
	}
	if len(k) < 24 || len(k) > 64 {
		return nil, fmt.Errorf("a webhook secret encodes 24 to 64 bytes, this one %d", len(k))
	}
	return k, nil
}

// Validate checks c; policy decides whether plain http may be used.
func (c SplunkConfig) Validate(policy *egress.Policy) error {
	if err := validateURL("splunk.url", c.URL, policy); err != nil {
		return err
	}
	tok := c.Token.Reveal()
	switch {
	case tok == "":
		return domain.BadInput("splunk.token", "an HEC token is required")
	case len(tok) > 128 || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }):
		// Splunk tokens are GUIDs; anything else cannot go in a header.
		return domain.BadInput("splunk.token", "an HEC token is printable ASCII without spaces, at most 128 characters")
	}
	for _, f := range []struct{ name, v string }{
		{"splunk.index", c.Index}, {"splunk.source", c.Source},
		{"splunk.sourcetype", c.SourceType}, {"splunk.host", c.Host},
	} {
		if len(f.v) > 256 || strings.ContainsFunc(f.v, unicode.IsControl) {
			return domain.BadInput(f.name, "at most 256 characters, without control characters")
		}
	}
	return validateFormat("splunk.format", c.Format)
}

// Validate checks c. Syslog always uses TLS, so any host is fine here; the
// egress policy is applied to the address when it is dialed.
func (c SyslogConfig) Validate() error {
	if err := validateHost("syslog.host", c.Host); err != nil {
		return err
	}
	if c.Port < 1 || c.Port > 65535 {
		return domain.BadInput("syslog.port", "a port is 1 to 65535 (RFC 5425's is 6514)")
	}
	if c.ServerName != "" {
		if err := validateHost("syslog.serverName", c.ServerName); err != nil {
			return err
		}
	}
	return validateFormat("syslog.format", c.Format)
}

// Address is host:port.
func (c SyslogConfig) Address() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

func validateFormat(field string, f Format) error {
	if !f.Valid() {
		return domain.BadInput(field, "the format is JSON or OCSF")
	}
	return nil
}

func validateHost(field, h string) error {
	if h == "" {
		return domain.BadInput(field, "a host name or address is required")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 || strings.ContainsFunc(h, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return domain.BadInput(field, "not a host name or IP address")
	}
	return nil
}

// validateURL accepts an absolute https URL, or http to an IP address the
// policy's allow list covers (tests, private deployments). It refuses
// credentials in the URL, where they would be logged and shown; the
// secret goes in its own field.
func validateURL(field, raw string, policy *egress.Policy) error {
	if raw == "" {
		return domain.BadInput(field, "a URL is required")
	}
	if len(raw) > 2048 {
		return domain.BadInput(field, "at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return domain.BadInput(field, "not an absolute URL")
	}
	if u.User != nil {
		return domain.BadInput(field, "no user or password in the URL; put the secret in its own field")
	}
	if u.Fragment != "" {
		return domain.BadInput(field, "no #fragment")
	}
	if err := validateHost(field, u.Hostname()); err != nil {
		return err
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return domain.BadInput(field, "the port is 1 to 65535")
		}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && policy != nil && policy.Allows(a) {
			return nil
		}
		return domain.BadInput(field, "the URL must be https")
	}
	return domain.BadInput(field, "the URL must be https")
}

package logstream

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/auditlog/auditlog/domain"
	"github.com/auditlog/auditlog/egress"
)

var (
	loopbackPolicy = egress.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	strictPolicy   = egress.NewPolicy(nil)
	goodSecret     = Secret("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
)

// wantField checks err is BAD_USER_INPUT naming field ("" for no error).
func wantField(t *testing.T, name string, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("%s: %v, want valid", name, err)
		}
		return
	}
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeBadUserInput || de.Field != field {
		t.Errorf("%s: %v, want BAD_USER_INPUT on %s", name, err, field)
	}
}

func TestWebhookConfigValidate(t *testing.T) {
	ok := WebhookConfig{URL: "https://siem.example.com/hooks/audit?x=1", Secrets: []Secret{goodSecret}, Format: FormatJSON}
	with := func(f func(*WebhookConfig)) WebhookConfig {
		c := ok
		c.Secrets = append([]Secret(nil), ok.Secrets...)
		f(&c)
		return c
	}
	tests := []struct {
		name   string
		c      WebhookConfig
		policy *egress.Policy
		field  string
	}{
		{"valid", ok, strictPolicy, ""},
		{"ocsf", with(func(c *WebhookConfig) { c.Format = FormatOCSF }), strictPolicy, ""},
		{"rotation", with(func(c *WebhookConfig) { c.Secrets = append(c.Secrets, goodSecret) }), strictPolicy, ""},
		{"http to allowed loopback", with(func(c *WebhookConfig) { c.URL = "http://127.0.0.1:8080/x" }), loopbackPolicy, ""},
		{"http to allowed v6 loopback", with(func(c *WebhookConfig) { c.URL = "http://[::1]:8080/x" }), loopbackPolicy, ""},
		{"http to loopback, not allowed", with(func(c *WebhookConfig) { c.URL = "http://127.0.0.1:8080/x" }), strictPolicy, "webhook.url"},
		{"http to a name", with(func(c *WebhookConfig) { c.URL = "http://localhost:8080/x" }), loopbackPolicy, "webhook.url"},
		{"http to public", with(func(c *WebhookConfig) { c.URL = "http://siem.example.com/x" }), loopbackPolicy, "webhook.url"},
		{"no url", with(func(c *WebhookConfig) { c.URL = "" }), strictPolicy, "webhook.url"},
		{"relative", with(func(c *WebhookConfig) { c.URL = "/hooks" }), strictPolicy, "webhook.url"},
		{"ftp", with(func(c *WebhookConfig) { c.URL = "ftp://siem.example.com/" }), strictPolicy, "webhook.url"},
		{"javascript", with(func(c *WebhookConfig) { c.URL = "javascript:alert(1)" }), strictPolicy, "webhook.url"},
		{"credentials", with(func(c *WebhookConfig) { c.URL = "https://u:p@siem.example.com/" }), strictPolicy, "webhook.url"},
		{"fragment", with(func(c *WebhookConfig) { c.URL = "https://siem.example.com/#x" }), strictPolicy, "webhook.url"},
		{"bad host", with(func(c *WebhookConfig) { c.URL = "https://si em.example.com/" }), strictPolicy, "webhook.url"},
		{"bad port", with(func(c *WebhookConfig) { c.URL = "https://siem.example.com:99999/" }), strictPolicy, "webhook.url"},
		{"too long", with(func(c *WebhookConfig) { c.URL = "https://siem.example.com/" + strings.Repeat("a", 2048) }), strictPolicy, "webhook.url"},
		{"no secret", with(func(c *WebhookConfig) { c.Secrets = nil }), strictPolicy, "webhook.secrets"},
		{"too many secrets", with(func(c *WebhookConfig) { c.Secrets = []Secret{goodSecret, goodSecret, goodSecret, goodSecret} }), strictPolicy, "webhook.secrets"},
		{"no prefix", with(func(c *WebhookConfig) { c.Secrets = []Secret{Secret(strings.TrimPrefix(string(goodSecret), "whsec_"))} }), strictPolicy, "webhook.secrets[0]"},
		{"not base64", with(func(c *WebhookConfig) { c.Secrets = append(c.Secrets, "whsec_!!!not base64!!!") }), strictPolicy, "webhook.secrets[1]"},
		{"too short", with(func(c *WebhookConfig) {
			c.Secrets = []Secret{Secret("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)))}
		}), strictPolicy, "webhook.secrets[0]"},
		{"too long secret", with(func(c *WebhookConfig) {
			c.Secrets = []Secret{Secret("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)))}
		}), strictPolicy, "webhook.secrets[0]"},
		{"no format", with(func(c *WebhookConfig) { c.Format = "" }), strictPolicy, "webhook.format"},
		{"bad format", with(func(c *WebhookConfig) { c.Format = "XML" }), strictPolicy, "webhook.format"},
	}
	for _, tt := range tests {
		err := tt.c.Validate(tt.policy)
		wantField(t, tt.name, err, tt.field)
		for _, s := range tt.c.Secrets {
			if err != nil && len(s) > 8 && strings.Contains(err.Error(), s.Reveal()) {
				t.Errorf("%s: the error shows the secret", tt.name)
			}
		}
	}
}

func TestSplunkConfigValidate(t *testing.T) {
	ok := SplunkConfig{URL: "https://splunk.example.com:8088", Token: "11111111-2222-3333-4444-555555555555",
		Index: "audit", SourceType: "_json", Format: FormatOCSF}
	with := func(f func(*SplunkConfig)) SplunkConfig { c := ok; f(&c); return c }
	tests := []struct {
		name  string
		c     SplunkConfig
		field string
	}{
		{"valid", ok, ""},
		{"ack", with(func(c *SplunkConfig) { c.Ack = true }), ""},
		{"http loopback allowed", with(func(c *SplunkConfig) { c.URL = "http://127.0.0.1:8088" }), ""},
		{"http public", with(func(c *SplunkConfig) { c.URL = "http://splunk.example.com:8088" }), "splunk.url"},
		{"no url", with(func(c *SplunkConfig) { c.URL = "" }), "splunk.url"},
		{"no token", with(func(c *SplunkConfig) { c.Token = "" }), "splunk.token"},
		{"token with space", with(func(c *SplunkConfig) { c.Token = "abc def" }), "splunk.token"},
		{"token with newline", with(func(c *SplunkConfig) { c.Token = "abc\r\nX-Evil: 1" }), "splunk.token"},
		{"index with control", with(func(c *SplunkConfig) { c.Index = "a\x00b" }), "splunk.index"},
		{"sourcetype too long", with(func(c *SplunkConfig) { c.SourceType = strings.Repeat("s", 257) }), "splunk.sourcetype"},
		{"host with newline", with(func(c *SplunkConfig) { c.Host = "a\nb" }), "splunk.host"},
		{"bad format", with(func(c *SplunkConfig) { c.Format = "json" }), "splunk.format"},
	}
	for _, tt := range tests {
		err := tt.c.Validate(loopbackPolicy)
		wantField(t, tt.name, err, tt.field)
		if err != nil && strings.Contains(err.Error(), tt.c.Token.Reveal()) && tt.c.Token != "" {
			t.Errorf("%s: the error shows the token", tt.name)
		}
	}
}

func TestSyslogConfigValidate(t *testing.T) {
	ok := SyslogConfig{Host: "logs.example.com", Port: 6514, Format: FormatJSON}
	with := func(f func(*SyslogConfig)) SyslogConfig { c := ok; f(&c); return c }
	tests := []struct {
		name  string
		c     SyslogConfig
		field string
	}{
		{"valid", ok, ""},
		{"ip", with(func(c *SyslogConfig) { c.Host = "203.0.113.9" }), ""},
		{"v6", with(func(c *SyslogConfig) { c.Host = "2001:db8::1" }), ""},
		{"server name", with(func(c *SyslogConfig) { c.Host = "203.0.113.9"; c.ServerName = "logs.example.com" }), ""},
		{"no host", with(func(c *SyslogConfig) { c.Host = "" }), "syslog.host"},
		{"host with port", with(func(c *SyslogConfig) { c.Host = "logs.example.com:6514" }), "syslog.host"},
		{"host with slash", with(func(c *SyslogConfig) { c.Host = "logs.example.com/x" }), "syslog.host"},
		{"port 0", with(func(c *SyslogConfig) { c.Port = 0 }), "syslog.port"},
		{"port too big", with(func(c *SyslogConfig) { c.Port = 65536 }), "syslog.port"},
		{"bad server name", with(func(c *SyslogConfig) { c.ServerName = "a b" }), "syslog.serverName"},
		{"bad format", with(func(c *SyslogConfig) { c.Format = "CEF" }), "syslog.format"},
	}
	for _, tt := range tests {
		wantField(t, tt.name, tt.c.Validate(), tt.field)
	}
	if got := with(func(c *SyslogConfig) { c.Host = "2001:db8::1" }).Address(); got != "[2001:db8::1]:6514" {
		t.Errorf("Address = %s", got)
	}
}

// A secret does not leak through any of the ways a config gets printed.
func TestSecretRedacted(t *testing.T) {
	const value = "whsec_super-secret-value"
	c := WebhookConfig{URL: "https://x.example.com", Secrets: []Secret{value}}
	s := SplunkConfig{Token: value}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "webhook", c, "splunk", s, "token", s.Token)
	j, _ := json.Marshal(c)
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", c),
		"%s": fmt.Sprintf("%s", s.Token), "%q": fmt.Sprintf("%q", s.Token), "%x": fmt.Sprintf("%x", s.Token),
		"%d": fmt.Sprintf("%d", s.Token), "json": string(j), "slog": logged.String(),
		"error": fmt.Errorf("sending with %v: %w", s.Token, errors.New("x")).Error(),
	}
	for how, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("%s shows the secret: %s", how, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not say the secret is redacted: %s", how, out)
		}
	}
	if s.Token.Reveal() != value {
		t.Error("Reveal lost the value")
	}
	var back SplunkConfig
	if err := json.Unmarshal([]byte(`{"token":"abc"}`), &back); err != nil || back.Token.Reveal() != "abc" {
		t.Errorf("a token does not unmarshal: %v %q", err, back.Token.Reveal())
	}
}
